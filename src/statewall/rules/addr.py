"""Addresses and masks the way libxtables reads and iptables-save writes them.

Owns: ``-s``/``-d``-style ``address[/mask]`` parsing (``xtables_ipparse_multiple`` /
``xtables_ip6parse_multiple``: comma lists, partial dotted quads as network addresses,
base-0 octets, ``/N`` or dotted/colon masks, the address masked), host addresses
(``XTTYPE_HOST``), and the text forms (``save_ipv4_addr``'s ``/N`` or dotted mask, glibc
``inet_ntop`` for IPv6 including the embedded-IPv4 forms). Must not know: rules. Host names
are refused: the core does no DNS.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from .errors import OptionError
from .numbers import try_uint

V4_ALL: Final = b"\xff" * 4
V6_ALL: Final = b"\xff" * 16


def addr_len(family: int) -> int:
    return 4 if family == 4 else 16


def _v4_numeric(text: str, is_mask: bool) -> bytes | None:
    """``__numeric_to_ipaddr``: up to four base-0 octets; fewer complete a network address
    (``10`` -> 10.0.0.0) unless it is a mask."""
    parts = text.split(".")
    if len(parts) > 4 or (is_mask and len(parts) != 4):
        return None
    out = []
    for p in parts:
        v = try_uint(p, 0, 255)
        if v is None:
            return None
        out.append(v)
    return bytes(out + [0] * (4 - len(out)))


def _v6_numeric(text: str) -> bytes | None:
    if not text or "%" in text:
        return None
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        return None


def plen_mask(bits: int, family: int) -> bytes:
    n = addr_len(family) * 8
    return ((((1 << bits) - 1) << (n - bits)) if bits else 0).to_bytes(n // 8, "big")


def mask_plen(mask: bytes) -> int:
    """Prefix length of a contiguous mask, -1 when not contiguous."""
    v = int.from_bytes(mask, "big")
    n = len(mask) * 8
    inv = ((1 << n) - 1) ^ v
    if inv & (inv + 1):
        return -1
    return n - inv.bit_length()


def apply_mask(a: bytes, m: bytes) -> bytes:
    return bytes(x & y for x, y in zip(a, m))


def parse_addr(text: str, family: int, what: str) -> bytes:
    """One numeric address (``XTTYPE_HOST``)."""
    a = _v4_numeric(text, False) if family == 4 else _v6_numeric(text)
    if a is None:
        raise OptionError(f'{what}: host/network "{text}" not found '
                          "(statewall takes numeric addresses only)")
    return a


def parse_mask(text: str | None, family: int, what: str) -> bytes:
    """``parse_ipmask`` / ``parse_ip6mask``: none -> all ones, dotted/colon form, or /N."""
    if text is None:
        return V4_ALL if family == 4 else V6_ALL
    m = _v4_numeric(text, True) if family == 4 else _v6_numeric(text)
    if m is not None:
        return m
    bits = try_uint(text, 0, 32 if family == 4 else 128)
    if bits is None:
        raise OptionError(f"{what}: invalid mask `{text}' specified")
    return plen_mask(bits, family)


def parse_host_mask(text: str, family: int, what: str) -> tuple[bytes, bytes]:
    """``address[/mask]`` (``XTTYPE_HOSTMASK``): the address is *not* masked."""
    host, _, m = text.partition("/")
    return parse_addr(host, family, what), parse_mask(m if "/" in text else None, family, what)


def parse_multiple(text: str, family: int, what: str) -> list[tuple[bytes, bytes]]:
    """``xtables_ipparse_multiple``: a comma list of ``address[/mask]``; each address is
    masked; duplicates (after masking) are dropped."""
    out: list[tuple[bytes, bytes]] = []
    for item in text.split(","):
        a, m = parse_host_mask(item, family, what)
        a = apply_mask(a, m)
        if (a, m) not in out:
            out.append((a, m))
    return out


def ntop(a: bytes) -> str:
    """``inet_ntop``: dotted quad, or glibc's IPv6 form (longest zero run of two or more
    groups compressed, first on a tie; ``::a.b.c.d`` and ``::ffff:a.b.c.d``)."""
    if len(a) == 4:
        return "%d.%d.%d.%d" % (a[0], a[1], a[2], a[3])
    words = [a[i] << 8 | a[i + 1] for i in range(0, 16, 2)]
    best, blen, cur, clen = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur < 0:
                cur, clen = i, 1
            else:
                clen += 1
            if clen > blen:
                best, blen = cur, clen
        else:
            cur, clen = -1, 0
    if blen < 2:
        best = -1
    out = []
    i = 0
    while i < 8:
        if i == best:
            out.append(":" if i == 0 else "")
            i += blen
            if i == 8:
                out.append("")
            continue
        if i == 6 and best == 0 and (blen == 6 or (blen == 5 and words[5] == 0xFFFF)):
            out.append("%d.%d.%d.%d" % (a[12], a[13], a[14], a[15]))
            break
        out.append("%x" % words[i])
        i += 1
    return ":".join(out)


def save_mask(mask: bytes) -> str:
    """The ``/...`` suffix iptables-save prints: ``N`` for a contiguous mask, else the mask
    as an address."""
    n = mask_plen(mask)
    return str(n) if n >= 0 else ntop(mask)


def numeric_mask_suffix(mask: bytes) -> str:
    """``xtables_ipmask_to_numeric`` / ``xtables_ip6mask_to_numeric``: "" for a host mask,
    "/N", or "/mask" when not contiguous (listing form)."""
    n = mask_plen(mask)
    if n == len(mask) * 8:
        return ""
    return f"/{n}" if n >= 0 else f"/{ntop(mask)}"


def parse_range(text: str, family: int, what: str) -> tuple[bytes, bytes]:
    """``a-b`` (iprange, NAT address ranges); a single address is ``a-a``."""
    lo, sep, hi = text.partition("-")
    a = parse_addr(lo, family, what)
    b = parse_addr(hi, family, what) if sep else a
    return a, b
