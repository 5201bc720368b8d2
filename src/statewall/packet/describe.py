"""A tcpdump-style one-line summary of a decoded packet, for traces and the demo.

Owns: the short human description ("198.51.100.2.1032 > 203.0.113.2.53: UDP, length 33").
Must not know: conntrack, rules.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from .packet import (IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
                     IPPROTO_UDPLITE, Packet)

_FLAGS: Final = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"),
                 (0x40, "E"), (0x80, "W"))
ICMP_NAMES: Final = {0: "echo reply", 3: "destination unreachable", 4: "source quench",
                     5: "redirect", 8: "echo request", 11: "time exceeded",
                     12: "parameter problem", 13: "timestamp request",
                     14: "timestamp reply", 15: "info request", 16: "info reply",
                     17: "address mask request", 18: "address mask reply"}
ICMPV6_NAMES: Final = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
                       4: "parameter problem", 128: "echo request", 129: "echo reply",
                       133: "router solicitation", 134: "router advertisement",
                       135: "neighbor solicitation", 136: "neighbor advertisement",
                       137: "redirect"}


def _a(b: bytes) -> str:
    return str(ipaddress.ip_address(b))


def tcp_flags(flags: int) -> str:
    s = "".join(c for bit, c in _FLAGS if flags & bit)
    if flags & 0x10:
        s += "."
    return s or "none"


def describe(pkt: Packet) -> str:
    """One line in tcpdump's spirit."""
    p = pkt.proto
    src, dst = _a(pkt.src), _a(pkt.dst)
    frag = ""
    if pkt.fragoff or pkt.mf:
        frag = f" (frag id {pkt.ipid} offset {pkt.fragoff}{'+' if pkt.mf else ''})"
        if pkt.fragoff:
            return f"IP {src} > {dst}: proto {p}, fragment{frag}"
    if pkt.l4err:
        return f"IP {src} > {dst}: proto {p}, {pkt.l4err}{frag}"
    if p == IPPROTO_TCP:
        s = (f"IP {src}.{pkt.sport} > {dst}.{pkt.dport}: Flags [{tcp_flags(pkt.flags)}], "
             f"seq {pkt.seq}")
        if pkt.flags & 0x10:
            s += f", ack {pkt.ack}"
        return s + f", win {pkt.win}, length {pkt.payload_len}{frag}"
    if p == IPPROTO_UDP or p == IPPROTO_UDPLITE:
        name = "UDP" if p == IPPROTO_UDP else "UDP-Lite"
        return f"IP {src}.{pkt.sport} > {dst}.{pkt.dport}: {name}, length {pkt.payload_len}{frag}"
    if p == IPPROTO_ICMP or p == IPPROTO_ICMPV6:
        names = ICMP_NAMES if p == IPPROTO_ICMP else ICMPV6_NAMES
        t = pkt.icmp_type
        s = f"IP {src} > {dst}: {'ICMP' if p == IPPROTO_ICMP else 'ICMP6'} "
        s += names.get(t, f"type {t}")
        if t in (0, 8, 13, 14, 15, 16, 17, 18, 128, 129) and p == IPPROTO_ICMP or t in (128, 129):
            s += f", id {pkt.sport}"
        elif pkt.icmp_code:
            s += f" code {pkt.icmp_code}"
        return s + frag
    return f"IP {src} > {dst}: proto {p}, length {len(pkt.buf) - pkt.l4off}{frag}"
