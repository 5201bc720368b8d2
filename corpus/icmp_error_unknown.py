"""ICMP errors about flows fw never saw: a port unreachable about a UDP datagram and a
time-exceeded about a TCP segment.  No entry matches the quoted packet: INVALID."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.craft import icmp_error
from statewall.lab.scenario import Scenario

ghost_udp = IP(src="198.51.100.2", dst="203.0.113.2") / UDP(sport=40050, dport=9) / b"??"
ghost_tcp = IP(src="198.51.100.2", dst="203.0.113.2", ttl=1) / TCP(sport=40051, dport=80,
                                                                   flags="S", seq=1)

SCENARIO = Scenario(
    name="icmp_error_unknown",
    description=__doc__,
    steps=[
        ("server", icmp_error(ghost_udp, "203.0.113.2", kind="port-unreachable"), 0.1),
        ("server", icmp_error(ghost_tcp, "203.0.113.254", kind="time-exceeded"), 0.1),
    ],
)
