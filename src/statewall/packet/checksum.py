"""Internet checksums (RFC 1071) and the transport checksum check conntrack performs.

Owns: one's-complement sums over bytes, the IPv4/IPv6 pseudo-header, ``l4_checksum_ok``
(the kernel's ``nf_checksum``: over the whole rest of the datagram from the L4 header, with
the pseudo-header length equal to that byte count), incremental update (RFC 1624) for
rewriting. Must not know: conntrack, rules. Follows RFC 1071/1624, net/netfilter/utils.c
(nf_ip_checksum, nf_ip6_checksum).

Speed: the data is read as one big-endian integer and reduced modulo 0xFFFF, both in C.
Because 2**16 == 1 (mod 0xFFFF), that remainder is the end-around-carry sum of the 16-bit
words; one's-complement arithmetic only differs in writing a non-zero multiple of 0xFFFF as
0xFFFF ("negative zero") instead of 0. About 2 us for 1500 bytes on CPython 3.11.

Accelerated: when the optional C module ``statewall._speedups`` is built (and STATEWALL_PURE
is not set), ``l4_checksum_ok`` is its C version (~0.1 us for 1500 bytes); the Python one
stays available as ``l4_checksum_ok_py``, the reference the C one is tested against, and the
C one hands it every argument shape it does not handle itself.
"""

from __future__ import annotations

from typing import Final

try:
    from .. import _speedups
except ImportError:                 # not built, or disabled by STATEWALL_PURE
    _speedups = None  # type: ignore[assignment]

Buffer = bytes | bytearray | memoryview

_M16: Final = 0xFFFF


def ones_sum(data: Buffer, start: int = 0, end: int | None = None) -> int:
    """Folded 16-bit one's-complement sum of ``data[start:end]`` in network byte order
    (an odd trailing byte is padded with zero). 0 only when every byte is zero."""
    chunk = data[start:end] if (start or end is not None) else data
    v = int.from_bytes(chunk, "big")
    if len(chunk) & 1:
        v <<= 8
    if not v:
        return 0
    return v % _M16 or _M16


def inet_checksum(data: Buffer, start: int = 0, end: int | None = None) -> int:
    """The checksum field value for ``data[start:end]`` (0 when the data already sums ok)."""
    return ~ones_sum(data, start, end) & _M16


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Folded sum of the IPv4 (4-byte addresses) or IPv6 (16-byte) pseudo-header."""
    v = (int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length)
    if not v:
        return 0
    return v % _M16 or _M16


def add(a: int, b: int) -> int:
    """One's-complement addition of two folded sums."""
    s = a + b
    return (s & _M16) + (s >> 16)


def l4_checksum_ok_py(buf: Buffer, l4off: int, src: bytes, dst: bytes, proto: int,
                      length: int | None = None) -> bool:
    """Does the transport checksum verify (pseudo-header + ``buf[l4off:l4off+length]``)?

    ``length`` defaults to the rest of the datagram (what ``nf_checksum`` covers); UDP-Lite
    passes its coverage. ``proto`` is the pseudo-header protocol (ICMP over IPv4 has no
    pseudo-header: pass ``proto=-1``). The pseudo-header length is always the rest of the
    datagram.
    """
    total = len(buf) - l4off
    n = total if length is None else length
    chunk = buf[l4off:l4off + n]
    v = int.from_bytes(chunk, "big")
    if len(chunk) & 1:
        v <<= 8
    if proto >= 0:
        v += int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + total
    # valid <=> the one's-complement sum is 0xFFFF <=> a non-zero multiple of 0xFFFF
    return v != 0 and v % _M16 == 0


ACCELERATED: Final = _speedups is not None
if _speedups is not None:
    _speedups.set_fallbacks(l4_checksum_ok=l4_checksum_ok_py)
    l4_checksum_ok = _speedups.l4_checksum_ok
else:
    l4_checksum_ok = l4_checksum_ok_py


def l4_checksum(buf: Buffer, l4off: int, src: bytes, dst: bytes, proto: int,
                length: int | None = None) -> int:
    """The checksum field value for the transport segment at ``l4off`` (whose checksum field
    must hold zero while computing), with the same coverage rules as ``l4_checksum_ok``."""
    total = len(buf) - l4off
    n = total if length is None else length
    s = ones_sum(buf, l4off, l4off + n)
    if proto >= 0:
        s = add(s, pseudo_sum(src, dst, proto, total))
    return ~s & _M16


def update(csum: int, old: Buffer, new: Buffer) -> int:
    """RFC 1624 incremental update: the new checksum field after the covered bytes ``old``
    were replaced by ``new`` (equal, even lengths, aligned on 16-bit boundaries)."""
    s = add(~csum & _M16, ~ones_sum(old) & _M16)
    s = add(s, ones_sum(new))
    return ~s & _M16
