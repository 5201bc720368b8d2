"""Packet-crafting helpers for scenario files: realistic TCP conversations, ICMP errors.

Owns: ``TcpFlow``, which plays both ends of one TCP connection the way a Linux peer would
(ISNs, seq/ack bookkeeping, MSS/SACK-permitted/timestamps/window-scale options in SYNs,
timestamps on every later segment, scaled windows, DF and incrementing IP ids) and returns
``scenario.Send`` steps; ``icmp_error`` which quotes a packet the way a router does.
Must not know: namespaces, recording.  scapy is imported inside the functions, so importing
this module (or ``statewall``) never needs scapy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from statewall.lab.scenario import Send, Side

Flags = str


@dataclass
class _End:
    addr: str
    port: int
    isn: int
    win_syn: int  # raw window in the SYN / SYN-ACK
    win: int  # raw (scaled) window afterwards
    wscale: int
    ts_base: int
    nxt: int = 0  # next sequence number to send
    ipid: int = 0
    tsval: int = 0
    peer_tsval: int = 0

    def __post_init__(self) -> None:
        self.nxt = self.isn
        self.tsval = self.ts_base


@dataclass
class TcpFlow:
    """Both ends of one TCP connection; every method returns a ``Send`` step.

    Sequence numbers advance as the segments are generated, so the order of calls is the
    order of the conversation.  Explicit ``seq``/``ack``/``window`` override the bookkeeping
    (for out-of-window or retransmitted segments) without advancing it unless ``advance``.
    """

    client: tuple[str, int] = ("198.51.100.2", 40000)
    server: tuple[str, int] = ("203.0.113.2", 80)
    client_isn: int = 0x1B2C3D4E
    server_isn: int = 0x7A6B5C4D
    mss: int = 1460
    wscale: int = 7
    timestamps: bool = True
    sack: bool = True
    ttl: int = 64
    _ends: dict[str, _End] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ends = {
            "client": _End(self.client[0], self.client[1], self.client_isn, 64240, 502,
                           self.wscale, 1_000_000, ipid=0x1000),
            "server": _End(self.server[0], self.server[1], self.server_isn, 65160, 509,
                           self.wscale, 3_000_000, ipid=0x5000),
        }

    @property
    def v6(self) -> bool:
        return ":" in self.client[0]

    @staticmethod
    def _other(side: Side) -> Side:
        return "server" if side == "client" else "client"

    def _syn_options(self, me: _End) -> list[tuple[str, Any]]:
        opts: list[tuple[str, Any]] = [("MSS", self.mss - (20 if self.v6 else 0))]
        if self.sack:
            opts.append(("SAckOK", b""))
        if self.timestamps:
            opts.append(("Timestamp", (me.tsval, me.peer_tsval)))
        else:
            opts += [("NOP", None), ("NOP", None)]
        opts += [("NOP", None), ("WScale", me.wscale)]
        return opts

    def segment(self, side: Side, flags: Flags, payload: bytes = b"", *, delay: float = 0.0,
                seq: int | None = None, ack: int | None = None, window: int | None = None,
                options: list[tuple[str, Any]] | None = None, advance: bool = True,
                note: str = "") -> Send:
        """A segment from ``side`` with TCP ``flags`` (scapy letters, e.g. "S", "SA", "PA")."""
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6

        me, peer = self._ends[side], self._ends[self._other(side)]
        syn = "S" in flags
        if options is None:
            if syn:
                options = self._syn_options(me)
            elif self.timestamps:
                options = [("NOP", None), ("NOP", None), ("Timestamp", (me.tsval, me.peer_tsval))]
            else:
                options = []
        s = me.nxt if seq is None else seq
        a = (peer.nxt if "A" in flags else 0) if ack is None else ack
        w = (me.win_syn if syn else me.win) if window is None else window
        tcp = TCP(sport=me.port, dport=peer.port, flags=flags, seq=s & 0xFFFFFFFF,
                  ack=a & 0xFFFFFFFF, window=w, options=options)
        if self.v6:
            ip: Any = IPv6(src=me.addr, dst=peer.addr, hlim=self.ttl)
        else:
            ip = IP(src=me.addr, dst=peer.addr, ttl=self.ttl, flags="DF", id=me.ipid)
        pkt = ip / tcp / payload if payload else ip / tcp
        if advance and seq is None:
            me.nxt = (me.nxt + len(payload) + (1 if syn else 0) + (1 if "F" in flags else 0)) \
                & 0xFFFFFFFF
        me.ipid = (me.ipid + 1) & 0xFFFF
        peer.peer_tsval = me.tsval
        me.tsval += 7
        return Send(side, pkt, delay, note)

    # the usual segments ------------------------------------------------------------------
    def syn(self, *, delay: float = 0.0, **kw: Any) -> Send:
        return self.segment("client", "S", delay=delay, **kw)

    def synack(self, *, delay: float = 0.0, **kw: Any) -> Send:
        return self.segment("server", "SA", delay=delay, **kw)

    def ack(self, side: Side, *, delay: float = 0.0, **kw: Any) -> Send:
        return self.segment(side, "A", delay=delay, **kw)

    def data(self, side: Side, payload: bytes, *, delay: float = 0.0, **kw: Any) -> Send:
        return self.segment(side, "PA", payload, delay=delay, **kw)

    def fin(self, side: Side, *, delay: float = 0.0, **kw: Any) -> Send:
        return self.segment(side, "FA", delay=delay, **kw)

    def rst(self, side: Side, *, with_ack: bool = True, delay: float = 0.0, **kw: Any) -> Send:
        return self.segment(side, "RA" if with_ack else "R", delay=delay, options=[], **kw)

    def handshake(self, delay: float = 0.0) -> list[Send]:
        return [self.syn(delay=delay), self.synack(delay=delay), self.ack("client", delay=delay)]

    def next_seq(self, side: Side) -> int:
        return self._ends[side].nxt


def icmp_error(about: Any, router: str, *, kind: Literal["time-exceeded", "port-unreachable",
                                                          "frag-needed"] = "time-exceeded",
               mtu: int = 1280) -> Any:
    """An ICMP/ICMPv6 error sent by ``router`` to ``about``'s source, quoting ``about``
    (IP header + as much of the payload as a Linux router quotes: 8 bytes for ICMPv4 by RFC
    792 minimum - Linux quotes more; here the whole packet up to 548/1232 bytes)."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded,
                                    IPv6)

    quoted = bytes(about)
    if quoted[0] >> 4 == 4:
        src_of_about = IP(quoted).src
        codes = {"time-exceeded": (11, 0), "port-unreachable": (3, 3), "frag-needed": (3, 4)}
        t, c = codes[kind]
        icmp = ICMP(type=t, code=c, nexthopmtu=mtu) if kind == "frag-needed" else ICMP(type=t, code=c)
        return IP(src=router, dst=src_of_about, ttl=64) / icmp / quoted[:548]
    src6 = IPv6(quoted).src
    layer: Any
    if kind == "time-exceeded":
        layer = ICMPv6TimeExceeded(code=0)
    elif kind == "port-unreachable":
        layer = ICMPv6DestUnreach(code=4)
    else:
        layer = ICMPv6PacketTooBig(mtu=mtu)
    return IPv6(src=router, dst=src6, hlim=64) / layer / quoted[:1232]
