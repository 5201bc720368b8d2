"""The interface every L4 protocol tracker implements, and the verdict codes they return.

Owns: ``L4Tracker`` (the kernel's ``struct nf_conntrack_l4proto`` reduced to what statewall
needs) and the return-code vocabulary. Must not know: any particular protocol.

Return codes mirror the kernel: ``NF_ACCEPT`` (tracked, go on), ``NF_DROP`` (drop the packet),
``INVALID`` (the kernel's ``-NF_ACCEPT``: the packet continues without a conntrack entry, so
rules see it as INVALID), ``REPEAT`` (``-NF_REPEAT``: the old entry was killed, look the
packet up again; TCP reopen). Error handlers (ICMP) return ``CONTINUE`` (not an error, track
normally), ``DONE`` (the handler attached ``pkt.ct``/``pkt.ctinfo`` itself, e.g. RELATED, or
marked the packet untracked) or ``INVALID``. Whoever returns INVALID or NF_DROP sets
``pkt.reason`` to the kernel's log text for that check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker

NF_DROP: Final = 0
NF_ACCEPT: Final = 1
INVALID: Final = -1
REPEAT: Final = -4

CONTINUE: Final = 1
DONE: Final = 2

# hooks (enum nf_inet_hooks)
NF_INET_PRE_ROUTING: Final = 0
NF_INET_LOCAL_IN: Final = 1
NF_INET_FORWARD: Final = 2
NF_INET_LOCAL_OUT: Final = 3
NF_INET_POST_ROUTING: Final = 4


class L4Tracker(Protocol):
    """One protocol's connection tracking (``nf_conntrack_proto_*.c``).

    name: the /proc and conntrack -L protocol name ("tcp", "udp", "icmp", "unknown", ...).
    """

    name: str

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        """The (a, b) part of the packet's tuple, or None when the header is unusable."""
        ...

    def invert(self, a: int, b: int) -> tuple[int, int] | None:
        """The (a, b) of the inverse tuple, or None if it cannot be inverted."""
        ...

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        """Pre-checks before lookup (``*_error``): CONTINUE, DONE or INVALID."""
        ...

    def new(self, tracker: Tracker, ct: Conn, pkt: Packet, now: float) -> bool:
        """Initialise protocol state of a new, unconfirmed entry. False: INVALID."""
        ...

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        """Update the entry for one packet; refresh its timeout via
        ``tracker.refresh_acct``. Returns NF_ACCEPT, INVALID, NF_DROP or REPEAT."""
        ...

    def state_name(self, ct: Conn) -> str | None:
        """The protocol state shown in listings (TCP: "ESTABLISHED"), or None."""
        ...

    def can_early_drop(self, ct: Conn) -> bool:
        """Whether the GC may drop this entry under pressure even if ASSURED."""
        ...


class BaseTracker:
    """Defaults shared by the simple trackers: port tuples, no pre-checks, no per-entry
    state, no listing state, never early-dropped while ASSURED."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        return (pkt.sport, pkt.dport)

    def invert(self, a: int, b: int) -> tuple[int, int] | None:
        return (b, a)

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        return CONTINUE

    def new(self, tracker: Tracker, ct: Conn, pkt: Packet, now: float) -> bool:
        return True

    def state_name(self, ct: Conn) -> str | None:
        return None

    def can_early_drop(self, ct: Conn) -> bool:
        return False
