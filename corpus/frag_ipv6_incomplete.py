"""An incomplete IPv6 datagram: two of three fragments.  With
nf_conntrack_frag6_timeout lowered to 3 s nf_defrag_ipv6 drops the queue (fw's ICMPv6
time exceeded is silenced); the missing fragment 4 s later cannot complete anything.  A
clean datagram afterwards is NEW."""

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

from statewall.lab.scenario import Scenario, Snapshot

C, S = "2001:db8:1::2", "2001:db8:2::2"
frags = fragment6(IPv6(src=C, dst=S) / IPv6ExtHdrFragment(id=0x7e7e7e)
                  / UDP(sport=40270, dport=7007) / (b"incomplete" * 100), 448)
assert len(frags) == 3

SCENARIO = Scenario(
    name="frag_ipv6_incomplete",
    description=__doc__,
    sysctls={"nf_conntrack_frag6_timeout": 3},
    steps=[("client", frags[0], 0.1), ("client", frags[1], 4.0), Snapshot("4 s later"),
           ("client", frags[2], 0.2),
           ("client", IPv6(src=C, dst=S) / UDP(sport=40271, dport=7007) / b"clean", 0.1)],
)
