"""A 1008-byte UDP datagram from the client in three IPv4 fragments, in order, then an
unfragmented reply.  Conntrack only sees the reassembled datagram: the first two fragments
never reach mangle PREROUTING (no ctstate), the last one carries the datagram's state; fw
forwards the datagram re-fragmented."""

from scapy.layers.inet import IP, UDP, fragment

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
dgram = IP(src=C, dst=S, id=0x2a2a) / UDP(sport=40200, dport=7000) / (b"0123456789abcdef" * 63)
frags = fragment(dgram, fragsize=400)
assert len(frags) == 3

SCENARIO = Scenario(
    name="frag_ipv4_udp",
    description=__doc__,
    steps=[*(("client", fr, 0.1) for fr in frags),
           ("server", IP(src=S, dst=C) / UDP(sport=7000, dport=40200) / b"got it", 0.1)],
)
