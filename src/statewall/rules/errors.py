"""The one error a rule set can raise: ``ConfigError`` (file, line, what is wrong).

Owns: the error vocabulary of the rules package. ``OptionError`` is raised deep inside an
option or extension parser, which knows *what* is wrong but not *where*; the restore parser
catches it and re-raises it as ``ConfigError`` with the file and line. Nothing else in
``rules/`` may escape to callers as an error about the input (STYLE.md: errors at one
boundary).
"""

from __future__ import annotations


class OptionError(Exception):
    """What is wrong with one option or rule, without the location (internal)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(Exception):
    """A rule set statewall cannot load: ``FILE:LINE: message``.

    ``line`` is 1-based; 0 when the problem is not tied to one line (e.g. a missing COMMIT
    is reported at the last line instead).
    """

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message
