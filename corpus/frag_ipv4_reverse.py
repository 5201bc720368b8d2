"""The same three-fragment UDP datagram as frag_ipv4_udp, fragments sent last first.
Reassembly completes on the first fragment (offset 0), which then carries the state."""

from scapy.layers.inet import IP, UDP, fragment

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
dgram = IP(src=C, dst=S, id=0x2b2b) / UDP(sport=40201, dport=7000) / (b"0123456789abcdef" * 63)
frags = fragment(dgram, fragsize=400)
assert len(frags) == 3

SCENARIO = Scenario(
    name="frag_ipv4_reverse",
    description=__doc__,
    steps=[*(("client", fr, 0.1) for fr in reversed(frags)),
           ("server", IP(src=S, dst=C) / UDP(sport=7000, dport=40201) / b"got it", 0.1)],
)
