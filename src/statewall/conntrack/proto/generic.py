"""The generic tracker for protocols without their own (``nf_conntrack_proto_generic.c``).

Owns: tracking by addresses and protocol number only (ports zeroed), 600 s timeout.
Must not know: anything about the payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import NF_ACCEPT, BaseTracker

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker


class Generic(BaseTracker):
    __slots__ = ()

    def __init__(self, name: str = "unknown") -> None:
        super().__init__(name)

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        return (0, 0)

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        tracker.refresh_acct(ct, pkt, dir, now, tracker.settings.nf_conntrack_generic_timeout)
        return NF_ACCEPT
