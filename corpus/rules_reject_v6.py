"""ip6tables REJECT: a TCP SYN to port 81 gets a reset, UDP to port 9 the default
icmp6-port-unreachable, an echo request icmp6-adm-prohibited; a TCP connection to port
80 passes."""

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"
RULES6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 9 -j REJECT
-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j REJECT --reject-with icmp6-adm-prohibited
COMMIT"""
f = TcpFlow(client=(C, 40460), server=(S, 80))

SCENARIO = Scenario(
    name="rules_reject_v6",
    description=__doc__,
    rules_v6=RULES6,
    requires=(REQUIRES_RULES,),
    fw_silent=False,
    steps=[
        ("client", IPv6(src=C, dst=S) / TCP(sport=40461, dport=81, flags="S", seq=1), 0.2),
        ("client", IPv6(src=C, dst=S) / UDP(sport=40462, dport=9) / b"x", 0.2),
        ("client", IPv6(src=C, dst=S) / ICMPv6EchoRequest(id=0x6161, seq=1), 0.2),
        *f.handshake(delay=0.1),
    ],
)
