"""ICMPv6 echo request/reply twice, then an unsolicited echo reply (INVALID) and a
neighbour solicitation towards fw (conntrack leaves ND untracked)."""

from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS,
                                ICMPv6NDOptSrcLLAddr, IPv6)

from statewall.lab.scenario import Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"
DATA = bytes(range(32))

ns = (IPv6(src=C, dst="2001:db8:1::1", hlim=255)
      / ICMPv6ND_NS(tgt="2001:db8:1::1") / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:01:02"))

SCENARIO = Scenario(
    name="ipv6_icmp_echo",
    description=__doc__,
    steps=[
        ("client", IPv6(src=C, dst=S) / ICMPv6EchoRequest(id=0x77, seq=1, data=DATA), 0.1),
        ("server", IPv6(src=S, dst=C) / ICMPv6EchoReply(id=0x77, seq=1, data=DATA), 0.1),
        ("client", IPv6(src=C, dst=S) / ICMPv6EchoRequest(id=0x77, seq=2, data=DATA), 0.1),
        ("server", IPv6(src=S, dst=C) / ICMPv6EchoReply(id=0x77, seq=2, data=DATA), 0.1),
        ("server", IPv6(src=S, dst=C) / ICMPv6EchoReply(id=0x99, seq=1, data=DATA), 0.1),
        ("client", ns, 0.1),
    ],
)
