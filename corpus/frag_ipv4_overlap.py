"""Overlapping IPv4 fragments: a first fragment of 600 bytes, then one starting inside it
(offset 296) with different data, then the rest.  Linux discards the whole queue on an
overlap (RFC 5722 style for IPv4 since 5.x): the datagram never completes, nothing is
tracked; a later clean datagram is NEW."""

from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
whole = IP(src=C, dst=S, id=0x6262) / UDP(sport=40240, dport=7004) / (b"A" * 1200)
raw = bytes(whole)[20:]
f1 = IP(src=C, dst=S, id=0x6262, flags="MF", frag=0, proto=17) / Raw(raw[:600])
f2 = IP(src=C, dst=S, id=0x6262, flags="MF", frag=296 // 8, proto=17) / Raw(b"B" * 600)
f3 = IP(src=C, dst=S, id=0x6262, frag=600 // 8, proto=17) / Raw(raw[600:])
clean = IP(src=C, dst=S, id=0x6363) / UDP(sport=40241, dport=7004) / b"clean"

SCENARIO = Scenario(
    name="frag_ipv4_overlap",
    description=__doc__,
    steps=[("client", f1, 0.1), ("client", f2, 0.1), ("client", f3, 0.1),
           ("client", clean, 0.1)],
)
