"""UDP and UDP-Lite tracking (``nf_conntrack_proto_udp.c``; 2.4.0 ``ip_conntrack_proto_udp.c``).

Owns: the UDP header checks (length, checksum at PREROUTING), the UNREPLIED / stream timeouts
and the ASSURED rule. Must not know: tables, other protocols.

Current kernel: the first packet stamps ``stream_ts = now + 2 s``; once a reply was seen, a
packet after ``stream_ts`` refreshes to ``nf_conntrack_udp_timeout_stream`` and sets ASSURED,
earlier ones to ``nf_conntrack_udp_timeout``. SEEN_REPLY is set by the core after this
handler, so the first reply itself still gets the short timeout. UDP-Lite: ASSURED as soon
as a packet follows a reply. linux-2.4: any packet after a reply gives 180 s and ASSURED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...packet.checksum import l4_checksum_ok
from ...packet.packet import IPPROTO_UDP
from ..conn import IPCT_ASSURED, IPS_ASSURED, IPS_CONFIRMED, IPS_NAT_CLASH, IPS_SEEN_REPLY
from .base import CONTINUE, INVALID, NF_ACCEPT, NF_INET_PRE_ROUTING, BaseTracker

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker

STREAM_DELAY = 2.0


class Udp(BaseTracker):
    """``lite``: UDP-Lite rules (checksum coverage, mandatory checksum). ``v24``: 2.4.0."""

    __slots__ = ("lite", "v24")

    def __init__(self, lite: bool = False, v24: bool = False) -> None:
        super().__init__("udplite" if lite else "udp")
        self.lite = lite
        self.v24 = v24

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        """The kernel runs these checks at the top of the packet handler; doing them before
        the lookup gives the same outcome (INVALID, no state change)."""
        bad = self._bad(tracker, pkt, hook)
        if bad is not None:
            pkt.reason = bad
            return INVALID
        return CONTINUE

    def _bad(self, tracker: Tracker, pkt: Packet, hook: int) -> str | None:
        """``udp_error`` / ``udplite_error``: the reason the header is unusable, or None."""
        buf = pkt.buf
        off = pkt.l4off
        udplen = len(buf) - off
        if udplen < 8:
            return "short packet"
        hlen = (buf[off + 4] << 8) | buf[off + 5]
        check = (buf[off + 6] << 8) | buf[off + 7]
        cover = udplen
        if self.lite:
            if hlen != 0:
                if hlen < 8 or hlen > udplen:
                    return "invalid checksum coverage"
                cover = hlen
            if check == 0:
                return "checksum missing"
        else:
            if hlen > udplen or hlen < 8:
                return "truncated/malformed packet"
            if check == 0:
                return None
        if (hook == NF_INET_PRE_ROUTING and tracker.settings.nf_conntrack_checksum
                and not l4_checksum_ok(buf, off, pkt.src, pkt.dst,
                                       pkt.proto if self.lite else IPPROTO_UDP, cover)):
            return "bad checksum"
        return None

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        s = tracker.settings
        status = ct.status
        if self.v24:
            if status & IPS_SEEN_REPLY:
                tracker.refresh_acct(ct, pkt, dir, now, s.nf_conntrack_udp_timeout_stream)
                if not status & IPS_ASSURED:
                    tracker.set_assured(ct)
            else:
                tracker.refresh_acct(ct, pkt, dir, now, s.nf_conntrack_udp_timeout)
            return NF_ACCEPT
        if not status & IPS_CONFIRMED:
            ct.l4 = now + STREAM_DELAY
        if status & IPS_SEEN_REPLY:
            if self.lite:
                tracker.refresh_acct(ct, pkt, dir, now, s.nf_conntrack_udp_timeout_stream)
                stream = not status & IPS_ASSURED
            else:
                extra = s.nf_conntrack_udp_timeout
                stream = False
                if now > ct.l4:
                    extra = s.nf_conntrack_udp_timeout_stream
                    stream = not status & IPS_ASSURED
                tracker.refresh_acct(ct, pkt, dir, now, extra)
            if status & IPS_NAT_CLASH:
                return NF_ACCEPT
            if stream:
                ct.status |= IPS_ASSURED
                ct.events |= IPCT_ASSURED
        else:
            tracker.refresh_acct(ct, pkt, dir, now, s.nf_conntrack_udp_timeout)
        return NF_ACCEPT
