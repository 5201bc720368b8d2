"""Overlapping IPv6 fragments (RFC 5722: the whole datagram must be dropped): a first
fragment, one overlapping it, then the last; nf_defrag_ipv6 drops the queue, nothing is
tracked; then a clean datagram is NEW."""

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.packet import Raw

from statewall.lab.scenario import Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"
whole = IPv6(src=C, dst=S) / UDP(sport=40250, dport=7005) / (b"A" * 1000)
raw = bytes(whole)[40:]


def frag(off: int, data: bytes, more: bool) -> IPv6:
    return (IPv6(src=C, dst=S) / IPv6ExtHdrFragment(nh=17, offset=off // 8, m=int(more),
                                                    id=0x7a7a7a) / Raw(data))


SCENARIO = Scenario(
    name="frag_ipv6_overlap",
    description=__doc__,
    steps=[("client", frag(0, raw[:504], True), 0.1),
           ("client", frag(248, b"B" * 504, True), 0.1),
           ("client", frag(504, raw[504:], False), 0.1),
           ("client", IPv6(src=C, dst=S) / UDP(sport=40251, dport=7005) / b"clean", 0.1)],
)
