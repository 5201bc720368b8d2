"""IPv6 fragments with a duplicate: the first fragment twice, then the rest.  The
duplicate is dropped by nf_defrag_ipv6 and the datagram completes once (NEW); then the
second fragment arrives again after reassembly (a fragment of a finished datagram)."""

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

from statewall.lab.scenario import Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"
frags = fragment6(IPv6(src=C, dst=S) / IPv6ExtHdrFragment(id=0x5e5e5e)
                  / UDP(sport=40230, dport=7003) / (b"duplicate-" * 100), 448)
assert len(frags) == 3, len(frags)

SCENARIO = Scenario(
    name="frag_ipv6_duplicate",
    description=__doc__,
    steps=[("client", frags[0], 0.1), ("client", frags[0], 0.1), ("client", frags[1], 0.1),
           ("client", frags[2], 0.1), ("client", frags[1], 0.1),
           ("server", IPv6(src=S, dst=C) / UDP(sport=7003, dport=40230) / b"ok", 0.1)],
)
