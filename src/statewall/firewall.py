"""The facade: one packet in, one verdict out, through the netfilter path (sans-I/O).

Owns: the order of the stages a packet passes (defragmentation, conntrack, confirm), the
per-packet ``Decision`` handed to front ends, and the clock-driven housekeeping
(``expire(now)``, ``next_deadline()``). Must not know: capture files, NFQUEUE, output
formats. Until the rule engine lands every packet that survives conntrack is accepted, as a
kernel with empty rules would: PREROUTING (defrag -400, conntrack -200) then confirm.
"""

from __future__ import annotations

from typing import Final

from .conntrack.conn import Conn
from .conntrack.core import VERDICT_DROP, Tracker
from .conntrack.defrag import Defrag
from .conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from .conntrack.sysctl import Settings
from .packet.decode import decode_ip
from .packet.packet import Packet, ParseError

ACCEPT: Final = "ACCEPT"
DROP: Final = "DROP"
HOLD: Final = "HOLD"


class Decision:
    """What happened to one packet. ``pkt`` is the packet conntrack saw (the reassembled
    datagram when this fragment completed one), or None when it never got that far."""

    __slots__ = ("verdict", "pkt", "reason", "ct", "ctinfo", "fragments", "discarded")

    def __init__(self, verdict: str, pkt: Packet | None, reason: str | None = None) -> None:
        self.verdict = verdict
        self.pkt = pkt
        self.reason = reason
        self.ct: Conn | None = None
        self.ctinfo = 0
        self.fragments = 0        # fragments merged into pkt (0: not reassembled)
        self.discarded = 0        # earlier held fragments thrown away by this packet


class Firewall:
    """A host with conntrack and (for now) empty rules."""

    __slots__ = ("settings", "tracker", "defrag")

    def __init__(self, settings: Settings | None = None, tracker: Tracker | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.tracker = tracker if tracker is not None else Tracker(self.settings)
        self.defrag = Defrag(self.settings)

    def process(self, pkt: Packet, now: float, hook: int = NF_INET_PRE_ROUTING) -> Decision:
        """Run one decoded datagram through the path and return the decision."""
        tracker = self.tracker
        tracker.expire(now)
        merged = 0
        discarded = 0
        if pkt.mf or pkt.fragoff or pkt.frag_hdr_off >= 0 or pkt.proto == 44:
            res = self.defrag.feed(pkt, now, 1 if hook == NF_INET_LOCAL_OUT else 0)
            kind = res.kind
            discarded = len(res.discarded)
            if kind == "hold":
                d = Decision(HOLD, None, res.reason or "fragment queued for reassembly")
                d.discarded = discarded
                return d
            if kind == "dropped":
                d = Decision(DROP, None, f"defragmentation: {res.reason}")
                d.discarded = discarded
                return d
            if kind == "complete":
                assert res.data is not None
                try:
                    whole = decode_ip(res.data)
                except ParseError as e:
                    return Decision(DROP, None, f"reassembled datagram: {e.reason}")
                head = res.fragments[0]
                whole.iface = pkt.iface
                whole.ts = pkt.ts
                whole.mark = head.mark
                merged = res.count
                pkt = whole
            # "pass": not reassembled (IPv6 cases the kernel lets through); tracked as is
        if tracker.conntrack_in(pkt, now, hook) == VERDICT_DROP:
            tracker.release(pkt)
            d = Decision(DROP, pkt, pkt.reason)
            d.fragments = merged
            return d
        # ... the rule engine's hooks go here (issue 3) ...
        if tracker.confirm(pkt, now) == VERDICT_DROP:
            d = Decision(DROP, pkt, pkt.reason)
            d.fragments = merged
            return d
        d = Decision(ACCEPT, pkt, pkt.reason)
        d.ct = pkt.ct
        d.ctinfo = pkt.ctinfo
        d.fragments = merged
        return d

    def expire(self, now: float) -> None:
        self.tracker.expire(now)
        self.defrag.expire(now)

    def next_deadline(self) -> float | None:
        a = self.tracker.next_deadline()
        b = self.defrag.next_deadline()
        if a is None:
            return b
        return a if b is None else min(a, b)
