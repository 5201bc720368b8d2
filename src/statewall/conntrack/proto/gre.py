"""GRE tracking (``nf_conntrack_proto_gre.c``) without the PPTP key map.

Owns: GRE entries between two IPv4 hosts (keys 0, as the kernel uses when no PPTP helper
registered keys), the 30 s / 180 s timeouts, ASSURED once both directions were seen.
Must not know: PPTP. GRE over IPv6 is INVALID, as in the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...packet.packet import AF_INET
from ..conn import IPCT_ASSURED, IPS_ASSURED, IPS_NAT_CLASH, IPS_SEEN_REPLY
from .base import INVALID, NF_ACCEPT, BaseTracker

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker


class Gre(BaseTracker):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("gre")

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        return (0, 0)

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        if pkt.l3num != AF_INET:
            pkt.reason = "GRE is tracked over IPv4 only"
            return INVALID
        s = tracker.settings
        status = ct.status
        if status & IPS_SEEN_REPLY:
            tracker.refresh_acct(ct, pkt, dir, now, s.nf_conntrack_gre_timeout_stream)
            if not status & (IPS_NAT_CLASH | IPS_ASSURED):
                ct.status |= IPS_ASSURED
                ct.events |= IPCT_ASSURED
        else:
            tracker.refresh_acct(ct, pkt, dir, now, s.nf_conntrack_gre_timeout)
        return NF_ACCEPT
