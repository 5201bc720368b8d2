"""The per-hook facts a rule may ask about that are not in the packet (sans-I/O).

Owns: ``Context``, the small slotted object the caller fills in for each traversal: the
clock, interface names, the host's addresses (addrtype LOCAL/BROADCAST, pkttype), the
conntrack instance (connlimit) and the packet's ``nf_trace`` bit (set by TRACE, read by
every later table). Must not know: where those facts come from (the lead builds it from the
host model and the capture).
"""

from __future__ import annotations

from typing import Any


class Context:
    """now: seconds (float, the caller's clock; ``now + wall_offset`` is UNIX time). in_iface / out_iface: the hook's input and
    output device names or None (the kernel's "" device). local_addrs: the host's own
    addresses (4- or 16-byte bytes). broadcast_addrs: IPv4 subnet broadcast addresses of
    the host's interfaces (255.255.255.255 is always broadcast). tracker: the
    ``conntrack.core.Tracker`` (connlimit) or None. pkttype: "host", "broadcast",
    "multicast", "otherhost" (the link layer's ``skb->pkt_type``) or None to derive it from
    the destination address. nf_trace: the packet's trace bit; TRACE sets it, reset it per
    packet (one Context per packet, or clear it). hook: set by ``Engine.run`` to the hook
    being traversed (PREROUTING ... POSTROUTING).
    """

    __slots__ = ("now", "in_iface", "out_iface", "local_addrs", "broadcast_addrs", "tracker",
                 "pkttype", "nf_trace", "hook", "volatile", "wall_offset")

    def __init__(self, now: float = 0.0, in_iface: str | None = None,
                 out_iface: str | None = None, local_addrs: set[bytes] | frozenset[bytes] = frozenset(),
                 tracker: Any = None, pkttype: str | None = None,
                 broadcast_addrs: set[bytes] | frozenset[bytes] = frozenset(),
                 wall_offset: float = 0.0) -> None:
        self.now = now
        self.wall_offset = wall_offset      # UNIX time = now + wall_offset (-m time)
        self.in_iface = in_iface
        self.out_iface = out_iface
        self.local_addrs = local_addrs
        self.broadcast_addrs = broadcast_addrs
        self.tracker = tracker
        self.pkttype = pkttype
        self.nf_trace = False
        self.hook = ""
        # the flow cache (flowcache.py): set when a rule whose answer may differ for the
        # next packet of the flow was looked at or a target ran (Engine.walk stops there)
        self.volatile = False

    def __repr__(self) -> str:
        return (f"Context(now={self.now}, in={self.in_iface}, out={self.out_iface}, "
                f"pkttype={self.pkttype})")
