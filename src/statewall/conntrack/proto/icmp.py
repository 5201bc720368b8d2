"""ICMP tracking and ICMP/ICMPv6 errors (``nf_conntrack_proto_icmp.c``, ``nf_conntrack_inet_error``).

Owns: request/reply pairing (the ``invmap``), the types that may start an entry, the ICMP
pre-checks, and matching an error's embedded packet to an existing entry (RELATED, with the
outer-destination check). Must not know: tables beyond ``tracker.lookup``, rules.

Tuple: a = identifier (bytes 4-5, for every type), b = type << 8 | code (code is part of the
tuple). linux-2.4: an entry dies once every request has had its reply.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from ...packet.checksum import l4_checksum_ok
from ...packet.packet import AF_INET, IPPROTO_ICMP, IPPROTO_ICMPV6
from ..conn import IP_CT_RELATED, IP_CT_RELATED_REPLY, Tuple
from .base import CONTINUE, DONE, INVALID, NF_ACCEPT, NF_INET_PRE_ROUTING, BaseTracker

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker

# invmap: type -> reply type (echo, timestamp, info, address mask)
ICMP_INVMAP: Final[dict[int, int]] = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP_VALID_NEW: Final = frozenset({8, 13, 15, 17})
ICMP_ERRORS: Final = frozenset({3, 4, 5, 11, 12})
NR_ICMP_TYPES: Final = 18

_PORTS: Final = struct.Struct("!HH")
_PORT_PROTOS: Final = frozenset({6, 17, 132, 33, 136})   # tcp udp sctp dccp udplite


def inner_tuple(tracker: Tracker, buf: bytes, off: int, l3num: int) -> Tuple | None:
    """``nf_ct_get_tuplepr`` on the packet embedded in an ICMP error at ``buf[off:]``.

    None when it cannot be parsed: truncated, non-first fragment, or an L4 header the
    tracker cannot make a tuple from.
    """
    n = len(buf)
    if l3num == AF_INET:
        if off + 20 > n:
            return None
        if ((buf[off + 6] << 8) | buf[off + 7]) & 0x1FFF:
            return None                                   # not the first fragment
        proto = buf[off + 9]
        src = bytes(buf[off + 12:off + 16])
        dst = bytes(buf[off + 16:off + 20])
        l4 = off + (buf[off] & 0x0F) * 4
        if l4 > n:
            return None
    else:
        if off + 40 > n:
            return None
        src = bytes(buf[off + 8:off + 24])
        dst = bytes(buf[off + 24:off + 40])
        found = _skip_ipv6_ext(buf, off + 40, buf[off + 6])
        if found is None:
            return None
        proto, l4 = found
    if proto in _PORT_PROTOS:
        if l4 + 4 > n:
            return None
        a, b = _PORTS.unpack_from(buf, l4)
    elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
        if l4 + 8 > n:
            return None
        t = buf[l4]
        a = (buf[l4 + 4] << 8) | buf[l4 + 5]
        b = t << 8 | buf[l4 + 1]
    else:
        a = b = 0
    return (src, dst, proto, a, b, 0)


def _skip_ipv6_ext(buf: bytes, off: int, nexthdr: int) -> tuple[int, int] | None:
    """``ipv6_skip_exthdr`` for an embedded header: (protocol, l4 offset) or None."""
    n = len(buf)
    for _ in range(16):
        if nexthdr in (0, 43, 60):                        # hop-by-hop, routing, dstopts
            if off + 2 > n:
                return None
            nexthdr, off = buf[off], off + (buf[off + 1] + 1) * 8
        elif nexthdr == 44:                               # fragment
            if off + 8 > n:
                return None
            if ((buf[off + 2] << 8) | buf[off + 3]) & 0xFFF8:
                return None                               # not the first fragment
            nexthdr, off = buf[off], off + 8
        elif nexthdr == 51:                               # AH
            if off + 2 > n:
                return None
            nexthdr, off = buf[off], off + (buf[off + 1] + 2) * 4
        elif nexthdr == 59:
            return None
        else:
            return nexthdr, off
    return None


def inet_error(tracker: Tracker, pkt: Packet, inner_off: int, now: float) -> int:
    """``nf_conntrack_inet_error``: attach the entry the error is about as RELATED."""
    orig = inner_tuple(tracker, pkt.buf, inner_off, pkt.l3num)
    if orig is None:
        pkt.reason = "cannot parse the packet inside the ICMP error"
        return INVALID
    l4 = tracker.l4[orig[2]]
    inv = l4.invert(orig[3], orig[4])
    if inv is None:
        pkt.reason = "packet inside the ICMP error cannot be inverted"
        return INVALID
    key: Tuple = (orig[1], orig[0], orig[2], inv[0], inv[1], 0)
    ct = tracker.lookup(key, now)
    if ct is None:
        pkt.reason = "no connection for ICMP error"
        return INVALID
    dir = 0 if key == ct.orig else 1
    ct_daddr = ct.reply[1] if dir else ct.orig[1]
    if pkt.dst != ct_daddr:
        pkt.reason = "outer daddr != inner daddr of the connection"
        return INVALID
    pkt.ct = ct
    pkt.ctinfo = IP_CT_RELATED_REPLY if dir else IP_CT_RELATED
    return DONE


class IcmpBase(BaseTracker):
    """Shared by ICMP and ICMPv6: the tuple is (identifier, type << 8 | code) and only the
    request/reply types of ``invmap`` can be inverted."""

    __slots__ = ("invmap",)

    def __init__(self, name: str, invmap: dict[int, int]) -> None:
        super().__init__(name)
        self.invmap = invmap

    def invert(self, a: int, b: int) -> tuple[int, int] | None:
        rt = self.invmap.get(b >> 8)
        if rt is None:
            return None
        return (a, rt << 8 | (b & 0xFF))


class Icmp(IcmpBase):
    __slots__ = ("v24",)

    def __init__(self, v24: bool = False) -> None:
        super().__init__("icmp", ICMP_INVMAP)
        self.v24 = v24

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        """``nf_conntrack_icmpv4_error``."""
        if pkt.l4len < 8:
            pkt.reason = "short packet"
            return INVALID
        if (hook == NF_INET_PRE_ROUTING and tracker.settings.nf_conntrack_checksum
                and not l4_checksum_ok(pkt.buf, pkt.l4off, pkt.src, pkt.dst, -1)):
            pkt.reason = "bad hw icmp checksum"
            return INVALID
        t = pkt.icmp_type
        if t > NR_ICMP_TYPES:
            pkt.reason = "invalid icmp type"
            return INVALID
        if t not in ICMP_ERRORS:
            return CONTINUE
        return inet_error(tracker, pkt, pkt.l4off + 8, now)

    def new(self, tracker: Tracker, ct: Conn, pkt: Packet, now: float) -> bool:
        if self.v24:
            ct.l4 = 0          # outstanding requests
        return True

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        if (ct.orig[4] >> 8) not in ICMP_VALID_NEW:
            pkt.reason = f"can't create new conn with type {ct.orig[4] >> 8}"
            return INVALID
        if self.v24:
            # 2.4.0: count requests; the entry dies once every request has had its reply
            if dir:
                ct.l4 -= 1
                tracker.acct(ct, pkt, dir)
                if ct.l4 <= 0:
                    tracker.kill(ct, now)
            else:
                ct.l4 += 1
                tracker.refresh_acct(ct, pkt, dir, now, tracker.settings.nf_conntrack_icmp_timeout)
            return NF_ACCEPT
        tracker.refresh_acct(ct, pkt, dir, now, tracker.settings.nf_conntrack_icmp_timeout)
        return NF_ACCEPT
