"""Numbers, ports and ranges the way libxtables reads them (C ``strtoul`` semantics).

Owns: ``xtables_strtoui``-style integers (base 0: ``0x1f`` hex, ``017`` octal, decimal),
ports by number or service name (``xtables_parse_port``), ``a:b`` ranges with open ends
and the ``min > max`` check, ``value[/mask]`` pairs. Must not know: which option uses them.
Every failure raises ``OptionError`` with a message naming the option.
"""

from __future__ import annotations

from typing import Final

from .errors import OptionError
from .netdb import service_port

U8: Final = 0xFF
U16: Final = 0xFFFF
U32: Final = 0xFFFFFFFF
U64: Final = 0xFFFFFFFFFFFFFFFF


def strtoul(text: str, base: int = 0) -> tuple[int, str] | None:
    """C ``strtoull``: the value and the unparsed rest, or None when no digits were read.
    Leading blanks and '+' are accepted; a '-' sign is refused (libxtables rejects
    negative input for unsigned options)."""
    s = text.lstrip(" \t\n\r\f\v")
    if s.startswith("+"):
        s = s[1:]
    if s.startswith("-"):
        return None
    if base == 0:
        if s[:2] in ("0x", "0X") and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
            base, s = 16, s[2:]
        elif s.startswith("0"):
            base = 8
        else:
            base = 10
    elif base == 16 and s[:2] in ("0x", "0X") and len(s) > 2:
        s = s[2:]
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    n = 0
    while n < len(s) and s[n].lower() in digits:
        n += 1
    if n == 0:
        return None
    return int(s[:n], base), s[n:]


def uint(text: str, lo: int, hi: int, what: str, base: int = 0) -> int:
    """A whole-string unsigned number in [lo, hi] (``xtables_strtoui``)."""
    r = strtoul(text, base)
    if r is None or r[1] != "" or not lo <= r[0] <= hi:
        raise OptionError(f'{what}: bad value "{text}" (expected {lo}-{hi})')
    return r[0]


def try_uint(text: str, lo: int, hi: int, base: int = 0) -> int | None:
    r = strtoul(text, base)
    if r is None or r[1] != "" or not lo <= r[0] <= hi:
        return None
    return r[0]


def port(text: str, proto: str | None, what: str) -> int:
    """``xtables_parse_port``: a number 0-65535 or a service name for ``proto``."""
    n = try_uint(text, 0, U16)
    if n is None:
        n = service_port(text, proto)
    if n is None:
        raise OptionError(f'{what}: invalid port/service "{text}" specified')
    return n


def port_range(text: str, proto: str | None, what: str) -> tuple[int, int]:
    """``a``, ``a:b``, ``a:``, ``:b``, ``:`` (tcp/udp/multiport/conntrack style); a reversed
    range is an error."""
    if ":" not in text:
        p = port(text, proto, what)
        return p, p
    a, b = text.split(":", 1)
    lo = port(a, proto, what) if a else 0
    hi = port(b, proto, what) if b else U16
    if lo > hi:
        raise OptionError(f"{what}: invalid port range {text} (min > max)")
    return lo, hi


def uint_range(text: str, hi: int, what: str, sep: str = ":") -> tuple[int, int]:
    """``XTTYPE_UINT*RC``: ``a``, ``a:b``, ``a:``, ``:b`` with 0..hi; reversed is an error."""
    if sep not in text:
        n = uint(text, 0, hi, what)
        return n, n
    a, b = text.split(sep, 1)
    lo = uint(a, 0, hi, what) if a else 0
    top = uint(b, 0, hi, what) if b else hi
    if lo > top:
        raise OptionError(f"{what}: invalid range {text} (min > max)")
    return lo, top


def value_mask(text: str, what: str, bits: int = 32) -> tuple[int, int]:
    """``XTTYPE_MARKMASK32``: ``value[/mask]``; the mask defaults to all ones."""
    top = (1 << bits) - 1
    if "/" in text:
        v, m = text.split("/", 1)
        return uint(v, 0, top, what), uint(m, 0, top, what)
    return uint(text, 0, top, what), top
