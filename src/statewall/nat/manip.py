"""Packet rewriting for NAT: addresses, ports, ICMP ids, checksums, ICMP errors, TTL.

Owns: the kernel's incremental checksum arithmetic (``csum_replace4``,
``inet_proto_csum_replace4/16`` on a CHECKSUM_NONE packet: RFC 1624 eqn. 3 with the
kernel's representation of zero - never 0xFFFF), rewriting one IPv4/IPv6 header and its
transport header towards a target tuple (``nf_nat_ipv4_manip_pkt``,
``nf_nat_ipv6_manip_pkt``, ``l4proto_manip_pkt``: TCP (checksum only when the whole
header is there), UDP (only a non-zero checksum; a result of 0 becomes 0xFFFF), UDP-Lite,
ICMP query ids, ICMPv6), ICMP errors about a NATed connection (``nf_nat_icmp_reply_
translation``: the quoted header rewritten as the other direction, the ICMP checksum
recomputed, then the outer header), the checksum of a packet left CHECKSUM_PARTIAL
(computed in full, as ``skb_checksum_help`` does on output: 0 becomes 0xFFFF), and
``ip_decrease_ttl``.
Must not know: conntrack tables, rules, bindings (the caller passes the target tuple).
Follows net/netfilter/nf_nat_proto.c, net/core/utils.c (``inet_proto_csum_replace*``),
include/net/checksum.h, include/net/ip.h (``ip_decrease_ttl``), net/ipv6/exthdrs_core.c.

Work happens on a ``bytearray`` holding the whole datagram from the network header;
offsets are into it. Functions return False where the kernel's returns false (the packet is
too short to be written: NF_DROP).
"""

from __future__ import annotations

from typing import Final

from ..conntrack.conn import Tuple
from ..packet.checksum import inet_checksum, ones_sum, pseudo_sum, add

NF_NAT_MANIP_SRC: Final = 0
NF_NAT_MANIP_DST: Final = 1

_M16: Final = 0xFFFF
# ICMP query types whose identifier NAT maps (icmp_manip_pkt)
ICMP_QUERY_TYPES: Final = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
ICMPV6_ECHO: Final = frozenset((128, 129))
ICMP_REDIRECT: Final = 5
NDISC_REDIRECT: Final = 137
_IPV6_EXT: Final = frozenset((0, 43, 44, 51, 59, 60))


# -- checksum arithmetic -----------------------------------------------------------------
def _words(b: bytes | bytearray) -> int:
    """Sum of the 16-bit big-endian words (even length) mod 0xFFFF."""
    return int.from_bytes(b, "big") % _M16 if b else 0


def csum_replace(check: int, old: bytes | bytearray, new: bytes | bytearray) -> int:
    """``csum_replace4`` / ``inet_proto_csum_replace4/16`` on a CHECKSUM_NONE packet: the
    checksum field after ``old`` (even length) became ``new``. The kernel folds
    ``~check + ~old + new`` (a sum that is never zero, since ``~check`` is a 32-bit value
    with its top half set) and complements it: the result is never 0xFFFF."""
    r = (-check - _words(old) + _words(new)) % _M16
    if r == 0:
        r = _M16
    return _M16 - r


def get16(b: bytearray, off: int) -> int:
    return b[off] << 8 | b[off + 1]


def put16(b: bytearray, off: int, v: int) -> None:
    b[off] = (v >> 8) & 0xFF
    b[off + 1] = v & 0xFF


def l4_full_checksum(b: bytearray, l4off: int, proto: int, v6: bool) -> None:
    """What ``skb_checksum_help`` writes for a CHECKSUM_PARTIAL TCP/UDP packet: the full
    checksum over pseudo-header and segment, 0 written as 0xFFFF (CSUM_MANGLED_0)."""
    if proto == 6:
        coff = l4off + 16
    elif proto == 17 or proto == 136:
        coff = l4off + 6
    else:
        return
    if len(b) < coff + 2:
        return
    b[coff] = b[coff + 1] = 0
    if v6:
        src, dst = bytes(b[8:24]), bytes(b[24:40])
    else:
        src, dst = bytes(b[12:16]), bytes(b[16:20])
    s = add(ones_sum(b, l4off), pseudo_sum(src, dst, proto, len(b) - l4off))
    c = ~s & _M16
    put16(b, coff, c or _M16)


def ipv4_header_checksum(b: bytearray, off: int = 0) -> None:
    """``ip_send_check``: the IPv4 header checksum computed in full."""
    ihl = (b[off] & 15) * 4
    b[off + 10] = b[off + 11] = 0
    put16(b, off + 10, inet_checksum(b, off, off + ihl))


def ip_decrease_ttl(b: bytearray) -> None:
    """``ip_decrease_ttl`` (IPv4) / ``hop_limit--`` (IPv6) as ``ip_forward`` does it. The
    IPv4 checksum update is the kernel's: on x86 it adds ``htons(0x0100)`` to the checksum
    read as a little-endian u16, with its own end-around carry."""
    if b[0] >> 4 == 6:
        b[7] = (b[7] - 1) & 0xFF
        return
    x = b[11] << 8 | b[10]                    # the field as the CPU reads it
    x += 1
    x = (x + (1 if x >= 0xFFFF else 0)) & _M16
    b[10] = x & 0xFF
    b[11] = x >> 8
    b[8] = (b[8] - 1) & 0xFF


# -- headers -----------------------------------------------------------------------------
def ipv6_skip_exthdr(b: bytearray, start: int, nexthdr: int) -> tuple[int, int, int]:
    """``ipv6_skip_exthdr``: (offset of the upper-layer header or -1, its protocol,
    fragment offset field of a fragment header or 0)."""
    off = start
    frag = 0
    n = len(b)
    while nexthdr in _IPV6_EXT:
        if nexthdr == 59:
            return -1, nexthdr, frag
        if off + 2 > n or (nexthdr == 44 and off + 4 > n):
            return -1, nexthdr, frag
        if nexthdr == 44:
            frag = get16(b, off + 2) & ~0x7
            if frag:
                return off, b[off], frag       # a non-first fragment: stop here
            hdrlen = 8
        elif nexthdr == 51:
            hdrlen = (b[off + 1] + 2) << 2
        else:
            hdrlen = (b[off + 1] + 1) << 3
        nexthdr = b[off]
        off += hdrlen
    return off, nexthdr, frag


def _pseudo_update(b: bytearray, iphoff: int, coff: int, t: Tuple, manip: int) -> None:
    """``nf_csum_update``: a transport checksum follows the address change (pseudo-header)."""
    v6 = b[iphoff] >> 4 == 6
    if v6:
        a = iphoff + (8 if manip == NF_NAT_MANIP_SRC else 24)
        old = bytes(b[a:a + 16])
    else:
        a = iphoff + (12 if manip == NF_NAT_MANIP_SRC else 16)
        old = bytes(b[a:a + 4])
    new = t[0] if manip == NF_NAT_MANIP_SRC else t[1]
    put16(b, coff, csum_replace(get16(b, coff), old, new))


def l4proto_manip(b: bytearray, iphoff: int, hdroff: int, t: Tuple, manip: int,
                  partial: bool) -> bool:
    """``l4proto_manip_pkt`` for the protocol of the target tuple ``t``. ``partial``: the
    checksum is recomputed in full afterwards (CHECKSUM_PARTIAL), no incremental update."""
    proto = t[2]
    n = len(b)
    if proto == 6:
        if n < hdroff + 8:
            return False
        full = n >= hdroff + 20         # an ICMP error may quote only the first 8 bytes
        po = hdroff if manip == NF_NAT_MANIP_SRC else hdroff + 2
        newport = t[3] if manip == NF_NAT_MANIP_SRC else t[4]
        oldport = bytes(b[po:po + 2])
        put16(b, po, newport)
        if full and not partial:
            _pseudo_update(b, iphoff, hdroff + 16, t, manip)
            put16(b, hdroff + 16, csum_replace(get16(b, hdroff + 16), oldport, b[po:po + 2]))
        return True
    if proto == 17 or proto == 136:
        if n < hdroff + 8:
            return False
        po = hdroff if manip == NF_NAT_MANIP_SRC else hdroff + 2
        newport = t[3] if manip == NF_NAT_MANIP_SRC else t[4]
        do_csum = proto == 136 or get16(b, hdroff + 6) != 0
        if do_csum and not partial:
            _pseudo_update(b, iphoff, hdroff + 6, t, manip)
            nb = bytes(((newport >> 8) & 0xFF, newport & 0xFF))
            c = csum_replace(get16(b, hdroff + 6), b[po:po + 2], nb)
            put16(b, hdroff + 6, c or _M16)           # CSUM_MANGLED_0
        put16(b, po, newport)
        return True
    if proto == 1:
        if n < hdroff + 8:
            return False
        if b[hdroff] not in ICMP_QUERY_TYPES:
            return True
        nb = bytes(((t[3] >> 8) & 0xFF, t[3] & 0xFF))
        put16(b, hdroff + 2, csum_replace(get16(b, hdroff + 2), b[hdroff + 4:hdroff + 6], nb))
        b[hdroff + 4:hdroff + 6] = nb
        return True
    if proto == 58:
        if n < hdroff + 8:
            return False
        _pseudo_update(b, iphoff, hdroff + 2, t, manip)
        if b[hdroff] in ICMPV6_ECHO:
            nb = bytes(((t[3] >> 8) & 0xFF, t[3] & 0xFF))
            put16(b, hdroff + 2,
                  csum_replace(get16(b, hdroff + 2), b[hdroff + 4:hdroff + 6], nb))
            b[hdroff + 4:hdroff + 6] = nb
        return True
    # SCTP/DCCP have no ports in statewall's tuples (generic tracker) and their checksum
    # does not cover the addresses; GRE is changed only under a PPTP master: nothing to do
    return True


def manip_ip(b: bytearray, iphoff: int, t: Tuple, manip: int, partial: bool = False) -> bool:
    """``nf_nat_ipv4_manip_pkt`` / ``nf_nat_ipv6_manip_pkt``: rewrite the header at
    ``iphoff`` (the packet, or the one an ICMP error quotes) to match ``t``."""
    if len(b) < iphoff + 20:
        return False
    if b[iphoff] >> 4 == 6:
        if len(b) < iphoff + 40:
            return False
        hdroff, _nh, frag = ipv6_skip_exthdr(b, iphoff + 40, b[iphoff + 6])
        if hdroff >= 0 and frag == 0:
            if not l4proto_manip(b, iphoff, hdroff, t, manip, partial):
                return False
        if manip == NF_NAT_MANIP_SRC:
            b[iphoff + 8:iphoff + 24] = t[0]
        else:
            b[iphoff + 24:iphoff + 40] = t[1]
        return True
    hdroff = iphoff + (b[iphoff] & 15) * 4
    if not l4proto_manip(b, iphoff, hdroff, t, manip, partial):
        return False
    a = iphoff + (12 if manip == NF_NAT_MANIP_SRC else 16)
    new = t[0] if manip == NF_NAT_MANIP_SRC else t[1]
    put16(b, iphoff + 10, csum_replace(get16(b, iphoff + 10), b[a:a + 4], new))
    b[a:a + 4] = new
    return True


def icmp_checksum_ok(b: bytearray, hdrlen: int, v6: bool) -> bool:
    """``nf_ip_checksum`` / ``nf_ip6_checksum`` of an ICMP(v6) message."""
    s = ones_sum(b, hdrlen)
    if v6:
        s = add(s, pseudo_sum(bytes(b[8:24]), bytes(b[24:40]), 58, len(b) - hdrlen))
    return s == _M16


def icmp_reply_translation(b: bytearray, hdrlen: int, ct_other: Tuple, inv_other: Tuple,
                           manip: int) -> bool:
    """``nf_nat_icmp_reply_translation`` / ``nf_nat_icmpv6_reply_translation`` after the
    status check: ``ct_other`` is the entry's tuple of the other direction (the quoted
    packet is rewritten to it, as the other manip), ``inv_other`` its inverse (the outer
    header is rewritten to it). The ICMP checksum is recomputed in full."""
    v6 = b[0] >> 4 == 6
    inner = hdrlen + 8
    if not manip_ip(b, inner, ct_other, 1 - manip):
        return False
    if v6:
        b[hdrlen + 2] = b[hdrlen + 3] = 0
        s = add(ones_sum(b, hdrlen), pseudo_sum(bytes(b[8:24]), bytes(b[24:40]), 58,
                                               len(b) - hdrlen))
        put16(b, hdrlen + 2, ~s & _M16)
        outer: Tuple = (inv_other[0], inv_other[1], 58, inv_other[3], inv_other[4],
                        inv_other[5])
    else:
        b[hdrlen + 2] = b[hdrlen + 3] = 0
        put16(b, hdrlen + 2, inet_checksum(b, hdrlen))
        outer = (inv_other[0], inv_other[1], 1, inv_other[3], inv_other[4], inv_other[5])
    return manip_ip(b, 0, outer, manip)
