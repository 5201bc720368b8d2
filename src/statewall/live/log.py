"""Logging for the daemon: one line per event on stderr, in the form journald reads.

Owns: the ``<N>`` syslog-priority prefix of sd-daemon(3) (journald turns it into the
entry's PRIORITY; systemd's ``SyslogLevelPrefix=`` is on by default), the process tag
(``supervisor`` / ``q0``...), ``key=value`` fields after the message. On a terminal the
prefix is left out. Must not know: what is logged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

_PRIO: Final = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}
LOGGER: Final = "statewall"


class _Formatter(logging.Formatter):
    def __init__(self, tag: str, prefix: bool) -> None:
        super().__init__()
        self.tag = tag
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields:
            msg += " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        if record.exc_info:
            msg += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        line = f"{self.tag}: {msg}"
        if self.prefix:
            line = f"<{_PRIO.get(record.levelno, 6)}>{line}"
        return line


def _value(v: Any) -> str:
    s = str(v)
    return f'"{s}"' if (" " in s or not s) else s


def setup(tag: str, level: str = "info", stream: Any = None) -> logging.Logger:
    """(Re)configure the ``statewall`` logger for this process."""
    out = stream if stream is not None else sys.stderr
    log = logging.getLogger(LOGGER)
    for h in list(log.handlers):
        log.removeHandler(h)
    h = logging.StreamHandler(out)
    prefix = not (hasattr(out, "isatty") and out.isatty())
    h.setFormatter(_Formatter(tag, prefix))
    log.addHandler(h)
    log.setLevel(getattr(logging, level.upper(), logging.INFO))
    log.propagate = False
    return log


def get() -> logging.Logger:
    return logging.getLogger(LOGGER)


def event(level: int, msg: str, **fields: Any) -> None:
    """Log ``msg`` with ``key=value`` fields."""
    logging.getLogger(LOGGER).log(level, msg, extra={"fields": fields})
