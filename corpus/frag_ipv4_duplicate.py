"""IPv4 fragments with a duplicate: the first fragment twice, then the last.  The
duplicate is absorbed by the reassembly queue (identical data at the same offset); the
datagram completes once and is NEW."""

from scapy.layers.inet import IP, UDP, fragment

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
frags = fragment(IP(src=C, dst=S, id=0x5151) / UDP(sport=40220, dport=7002)
                 / (b"duplicate-" * 100), fragsize=600)
assert len(frags) == 2, len(frags)

SCENARIO = Scenario(
    name="frag_ipv4_duplicate",
    description=__doc__,
    steps=[("client", frags[0], 0.1), ("client", frags[0], 0.1), ("client", frags[1], 0.1),
           ("server", IP(src=S, dst=C) / UDP(sport=7002, dport=40220) / b"ok", 0.1)],
)
