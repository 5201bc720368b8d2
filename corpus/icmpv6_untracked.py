"""ICMPv6 types conntrack does not track (neighbour discovery, router solicitation, MLD):
UNTRACKED, no entry - sent to fw itself (its address, its solicited-node group, the
all-routers and all-nodes groups); an echo request to fw is tracked as usual (NEW)."""

from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6MLQuery, ICMPv6MLReport,
                                ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr,
                                IPv6, IPv6ExtHdrHopByHop, RouterAlert)

from statewall.lab.scenario import Scenario

C = "2001:db8:1::2"
FW = "2001:db8:1::1"
MAC = "02:00:00:00:01:02"

SCENARIO = Scenario(
    name="icmpv6_untracked",
    description=__doc__,
    steps=[
        ("client", IPv6(src=C, dst="ff02::1:ff00:1", hlim=255)
         / ICMPv6ND_NS(tgt=FW) / ICMPv6NDOptSrcLLAddr(lladdr=MAC), 0.1),
        ("client", IPv6(src=C, dst=FW, hlim=255) / ICMPv6ND_NA(tgt=C, R=0, S=1, O=1), 0.1),
        ("client", IPv6(src=C, dst="ff02::2", hlim=255) / ICMPv6ND_RS(), 0.1),
        ("client", IPv6(src="fe80::2", dst="ff02::1", hlim=1)
         / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLQuery(), 0.1),
        ("client", IPv6(src="fe80::2", dst="ff02::1:ff00:1", hlim=1)
         / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport(mladdr="ff02::1:ff00:1"),
         0.1),
        ("client", IPv6(src=C, dst=FW) / ICMPv6EchoRequest(id=0x77, seq=1), 0.1),
    ],
)
