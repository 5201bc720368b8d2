"""A UDP datagram over IPv6 in three fragments (Fragment extension header), in order, then
an unfragmented reply.  nf_defrag_ipv6 reassembles before conntrack."""

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

from statewall.lab.scenario import Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"
dgram = (IPv6(src=C, dst=S) / IPv6ExtHdrFragment(id=0x3c3c3c)
         / UDP(sport=40202, dport=7000) / (b"0123456789abcdef" * 63))
frags = fragment6(dgram, 448)
assert len(frags) == 3, len(frags)

SCENARIO = Scenario(
    name="frag_ipv6_udp",
    description=__doc__,
    steps=[*(("client", fr, 0.1) for fr in frags),
           ("server", IPv6(src=S, dst=C) / UDP(sport=7000, dport=40202) / b"got it", 0.1)],
)
