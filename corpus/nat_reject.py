"""REJECT for DNATed traffic: a TCP SYN to 203.0.113.1:8081 (DNAT to 198.51.100.2:81) is
rejected in FORWARD with a TCP reset, a UDP datagram to 203.0.113.1:5301 (DNAT to
198.51.100.2:54) with the default port unreachable.  fw's answers go out through OUTPUT and
POSTROUTING and are translated like replies of the rejected connection: the reset comes from
203.0.113.1:8081, the ICMP error quotes the packet as the sender sent it.  fw's stack is not
silenced here (its answers are the point)."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

S, FW = "203.0.113.2", "203.0.113.1"
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 8081 -j DNAT --to-destination 198.51.100.2:81
-A PREROUTING -i s0 -d 203.0.113.1 -p udp --dport 5301 -j DNAT --to-destination 198.51.100.2:54
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 54 -j REJECT
COMMIT"""

SCENARIO = Scenario(
    name="nat_reject",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    fw_silent=False,
    steps=[
        ("server", IP(src=S, dst=FW, id=1) / TCP(sport=39000, dport=8081, flags="S", seq=100),
         0.3),
        ("server", IP(src=S, dst=FW, id=2) / UDP(sport=39001, dport=5301) / b"hello", 0.3),
    ],
)
