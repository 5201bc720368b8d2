"""Replies nobody asked for: an echo reply, a timestamp reply and an ICMPv6 echo reply
without requests are INVALID (conntrack creates entries only for requests); then a real
echo request with the same id is NEW and its reply ESTABLISHED."""

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"

SCENARIO = Scenario(
    name="icmp_unsolicited_reply",
    description=__doc__,
    steps=[
        ("server", IP(src=S, dst=C) / ICMP(type=0, id=0x5151, seq=1) / b"pong", 0.1),
        ("server", IP(src=S, dst=C) / ICMP(type=14, id=0x5152, seq=1), 0.1),
        ("server", IPv6(src="2001:db8:2::2", dst="2001:db8:1::2")
         / ICMPv6EchoReply(id=0x5153, seq=1), 0.1),
        ("client", IP(src=C, dst=S) / ICMP(type=8, id=0x5151, seq=2) / b"ping", 0.1),
        ("server", IP(src=S, dst=C) / ICMP(type=0, id=0x5151, seq=2) / b"ping", 0.1),
    ],
)
