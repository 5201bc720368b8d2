"""ICMPv6 tracking (``nf_conntrack_proto_icmpv6.c``).

Owns: echo / node-information pairing, the types the kernel leaves UNTRACKED (MLD, router
and neighbour discovery), the redirect checks, and errors (types < 128) matched through
``icmp.inet_error``. Must not know: tables, rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...packet.checksum import l4_checksum_ok
from ...packet.packet import IPPROTO_ICMPV6
from ..conn import IP_CT_UNTRACKED, IPS_CONFIRMED
from .base import CONTINUE, DONE, INVALID, NF_ACCEPT, NF_INET_PRE_ROUTING
from .icmp import IcmpBase, inet_error

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker

ICMPV6_INVMAP: Final[dict[int, int]] = {128: 129, 129: 128, 139: 140, 140: 139}
ICMPV6_VALID_NEW: Final = frozenset({128, 139})
# MLD query/report/done, RS, RA, NS, NA, MLDv2 report, multicast router advert/solicit
ICMPV6_NOCT: Final = frozenset({130, 131, 132, 133, 134, 135, 136, 143, 151, 152})
NDISC_REDIRECT: Final = 137
_LINK_LOCAL: Final = b"\xfe\x80"


class Icmpv6(IcmpBase):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("icmpv6", ICMPV6_INVMAP)

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        """``nf_conntrack_icmpv6_error``."""
        if pkt.l4len < 8:
            pkt.reason = "short packet"
            return INVALID
        if (hook == NF_INET_PRE_ROUTING and tracker.settings.nf_conntrack_checksum
                and not l4_checksum_ok(pkt.buf, pkt.l4off, pkt.src, pkt.dst, IPPROTO_ICMPV6)):
            pkt.reason = "ICMPv6 checksum failed"
            return INVALID
        t = pkt.icmp_type
        if t in ICMPV6_NOCT:
            pkt.ct = None
            pkt.ctinfo = IP_CT_UNTRACKED
            pkt.untracked = True
            return DONE
        if t == NDISC_REDIRECT:
            return self._redirect(tracker, pkt, now)
        if t >= 128:
            return CONTINUE
        return inet_error(tracker, pkt, pkt.l4off + 8, now)

    def _redirect(self, tracker: Tracker, pkt: Packet, now: float) -> int:
        """``ndisc_check_redirect``: a well-formed redirect is handled like an error about
        the packet in its "redirected header" option."""
        if pkt.icmp_code != 0:
            return CONTINUE
        if pkt.ttl != 255:
            pkt.reason = "invalid hop limit for redirect"
            return INVALID
        if pkt.src[:2] != _LINK_LOCAL:
            pkt.reason = "invalid saddr for redirect"
            return INVALID
        buf = pkt.buf
        off = pkt.l4off + 8 + 32          # icmp header, target and destination addresses
        if off + 2 > len(buf):
            pkt.reason = "redirect without options"
            return INVALID
        optlen = buf[off + 1] * 8
        if optlen == 0:
            pkt.reason = "redirect with zero-length option"
            return INVALID
        if buf[off] != 4:                  # ND_OPT_REDIRECT_HDR
            return CONTINUE
        return inet_error(tracker, pkt, off + 8, now)

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        if not ct.status & IPS_CONFIRMED and (ct.orig[4] >> 8) not in ICMPV6_VALID_NEW:
            pkt.reason = f"invalid new with type {ct.orig[4] >> 8}"
            return INVALID
        tracker.refresh_acct(ct, pkt, dir, now, tracker.settings.nf_conntrack_icmpv6_timeout)
        return NF_ACCEPT
