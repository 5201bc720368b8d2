"""An IPv6 UDP datagram in three fragments sent last first: the kernel (nf_defrag_ipv6)
holds them and reassembles when the first fragment (offset 0) arrives; the datagram is
NEW; then the server's answer."""

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

from statewall.lab.scenario import Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"
dgram = (IPv6(src=C, dst=S) / IPv6ExtHdrFragment(id=0x4d4d4d)
         / UDP(sport=40210, dport=7001) / (b"reverse-order-" * 80))
frags = fragment6(dgram, 448)
assert len(frags) == 3, len(frags)

SCENARIO = Scenario(
    name="frag_ipv6_reverse",
    description=__doc__,
    steps=[*(("client", fr, 0.1) for fr in reversed(frags)),
           ("server", IPv6(src=S, dst=C) / UDP(sport=7001, dport=40210) / b"ok", 0.1)],
)
