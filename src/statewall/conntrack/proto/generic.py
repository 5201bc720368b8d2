"""The generic tracker for protocols without their own (``nf_conntrack_proto_generic.c``).

Owns: tracking by addresses and protocol number only (ports zeroed), 600 s timeout.
Must not know: anything about the payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import CONTINUE, NF_ACCEPT

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker


class Generic:
    __slots__ = ("name",)

    def __init__(self, name: str = "unknown") -> None:
        self.name = name

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        return (0, 0)

    def invert(self, a: int, b: int) -> tuple[int, int] | None:
        return (a, b)

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        return CONTINUE

    def new(self, tracker: Tracker, ct: Conn, pkt: Packet, now: float) -> bool:
        return True

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        tracker.refresh_acct(ct, pkt, dir, now, tracker.settings.nf_conntrack_generic_timeout)
        return NF_ACCEPT

    def state_name(self, ct: Conn) -> str | None:
        return None

    def can_early_drop(self, ct: Conn) -> bool:
        return False
