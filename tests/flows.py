"""Test helpers: literal packet builders and a FlowPair that plays both ends through one
firewall (after h11's ConnectionPair). scapy is used here only, never by statewall."""

from __future__ import annotations

from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet as ScapyPacket, raw

from statewall.conntrack.conn import ctinfo_state
from statewall.conntrack.format import conntrack_line
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Decision, Firewall
from statewall.packet.decode import decode_ip

C4 = "198.51.100.2"
S4 = "203.0.113.2"
C6 = "2001:db8:1::2"
S6 = "2001:db8:2::2"


def dec(p: ScapyPacket | bytes) -> Any:
    return decode_ip(raw(p) if not isinstance(p, (bytes, bytearray)) else bytes(p))


class Result:
    def __init__(self, fw: Firewall, d: Decision, now: float) -> None:
        self.d = d
        self.verdict = d.verdict
        pkt = d.pkt
        self.ct = None if pkt is None else pkt.ct
        self.state = None if pkt is None else ctinfo_state(pkt.ct, pkt.ctinfo)
        self.ctinfo = None if pkt is None else pkt.ctinfo
        self.reason = d.reason
        self.line = None
        if self.ct is not None and self.ct.status & 8:
            self.line = conntrack_line(self.ct, now, fw.tracker.l4[self.ct.proto])

    def __repr__(self) -> str:
        return f"<{self.verdict} {self.state} {self.reason} | {self.line}>"


class FW:
    """A firewall plus a clock; send scapy packets, get Results."""

    def __init__(self, profile: str = "linux", **sysctls: int) -> None:
        self.settings = Settings(profile, [(k, str(v)) for k, v in sysctls.items()])
        self.fw = Firewall(self.settings)
        self.now = 1000.0
        self.events: list[tuple[float, int, str]] = []
        from statewall.conntrack.format import event_line

        def sink(now: float, bits: int, ct: Any) -> None:
            self.events.append((now, bits, event_line(bits, ct, now, self.fw.tracker.l4[ct.proto])))
        self.fw.tracker.sink = sink

    def send(self, p: ScapyPacket | bytes, dt: float = 0.0, hook: int = 0) -> Result:
        self.now += dt
        pkt = dec(p)
        d = self.fw.process(pkt, self.now, hook)
        return Result(self.fw, d, self.now)

    def table(self, dt: float = 0.0) -> list[str]:
        self.now += dt
        t = self.fw.tracker
        return [conntrack_line(ct, self.now, t.l4[ct.proto]) for ct in t.entries(self.now)]


def udp(src: str = C4, dst: str = S4, sport: int = 1032, dport: int = 53,
        payload: bytes = b"q") -> ScapyPacket:
    if ":" in src:
        return IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload
    return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload


def icmp(src: str = C4, dst: str = S4, type: int = 8, code: int = 0, id: int = 7,
         seq: int = 1, inner: ScapyPacket | None = None) -> ScapyPacket:
    p = IP(src=src, dst=dst) / ICMP(type=type, code=code, id=id, seq=seq)
    if inner is not None:
        p = IP(src=src, dst=dst) / ICMP(type=type, code=code) / raw(inner)[:28]
    return p


def tcp(src: str = C4, dst: str = S4, sport: int = 40000, dport: int = 80, flags: str = "S",
        seq: int = 1000, ack: int = 0, window: int = 64240, payload: bytes = b"",
        options: Any = None) -> ScapyPacket:
    l3 = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    t = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=window,
            options=options or [])
    return l3 / t / payload if payload else l3 / t
