"""Words in and out of a rule line: iptables' own quoting, both ways.

Owns: splitting a rule line into words the way iptables-restore does
(``add_param_to_argv`` in iptables/xshared.c: blanks separate words; a double-quoted
string is one word, ``\\`` escapes the next character inside it, a closing quote ends the
word; single quotes are ordinary characters) and writing a string the way
``xtables_save_string`` does (bare when it is only ``[A-Za-z0-9_-]``, otherwise
double-quoted with ``"``, ``\\`` and ``'`` escaped). Must not know: options.
"""

from __future__ import annotations

from typing import Final

from .errors import OptionError

_BARE: Final = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
PARAM_MAX: Final = 1023          # struct xt_param_buf buffer[1024]


def tokenize(text: str) -> list[str]:
    words: list[str] = []
    buf: list[str] = []
    quote_open = escaped = False
    have = False                 # a word is being built (possibly empty, from "")
    for ch in text:
        if quote_open:
            if escaped:
                buf.append(ch)
                escaped = False
                continue
            if ch == "\\":
                escaped = True
                continue
            if ch == '"':
                quote_open = False
                words.append("".join(buf))
                buf, have = [], False
                continue
            buf.append(ch)
            continue
        if ch == '"':
            quote_open = True
            have = True
            continue
        if ch in " \t\n\r":
            if buf or have:
                words.append("".join(buf))
                buf, have = [], False
            continue
        buf.append(ch)
        have = True
        if len(buf) > PARAM_MAX:
            raise OptionError("parameter too long")
    if buf or have:                # an unterminated quote ends the line, as in iptables
        words.append("".join(buf))
    return words


def save_string(value: str) -> str:
    """`` value`` or `` "va\\"lue"`` (with the leading space, as iptables prints it)."""
    if value and all(c in _BARE for c in value):
        return " " + value
    out = []
    for c in value:
        if c in "\"\\'":
            out.append("\\")
        out.append(c)
    return ' "' + "".join(out) + '"'
