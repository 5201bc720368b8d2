"""Packets whose TTL / hop limit runs out at fw: a UDP datagram with TTL 1 passes conntrack
at PREROUTING (NEW) but the forwarding path drops it (ICMP time exceeded, silenced here)
before the entry is confirmed, so no entry exists; the same with hop limit 1 over IPv6;
then the same datagram with TTL 2 is NEW, forwarded and confirmed."""

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"

SCENARIO = Scenario(
    name="ttl_expired",
    description=__doc__,
    steps=[
        ("client", IP(src=C, dst=S, ttl=1) / UDP(sport=33434, dport=33435) / b"trace", 0.1),
        ("client", IPv6(src="2001:db8:1::2", dst="2001:db8:2::2", hlim=1)
         / UDP(sport=33434, dport=33436) / b"trace", 0.1),
        ("client", IP(src=C, dst=S, ttl=2) / UDP(sport=33434, dport=33435) / b"trace", 0.1),
    ],
)
