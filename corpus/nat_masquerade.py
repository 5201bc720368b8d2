"""MASQUERADE on s0 (IPv4 and IPv6): the source becomes s0's address (203.0.113.1,
2001:db8:2::1); the client's ports are kept when free.  --to-ports moves UDP to the given
range; with a single port and --random the port is that one whatever the search start.
Answers come back to the client.  A second client on the same source port to the same
server moves to another port (a kept port would clash): with --to-ports 40000-40001 the
only free one."""

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from statewall.lab.scenario import REQUIRES_RULES, Scenario

S, FW, C1, C2 = "203.0.113.2", "203.0.113.1", "198.51.100.2", "198.51.100.3"
S6, FW6, C6 = "2001:db8:2::2", "2001:db8:2::1", "2001:db8:1::2"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o s0 -p udp --dport 123 -j MASQUERADE --to-ports 40123 --random
-A POSTROUTING -o s0 -p udp -j MASQUERADE --to-ports 40000-40001
-A POSTROUTING -o s0 -j MASQUERADE
COMMIT"""

SCENARIO = Scenario(
    name="nat_masquerade",
    description=__doc__,
    rules_v4=NAT,
    rules_v6=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", IP(src=C1, dst=S, id=1) / TCP(sport=33000, dport=80, flags="S", seq=1), 0.2),
        ("server", IP(src=S, dst=FW, id=2) / TCP(sport=80, dport=33000, flags="SA", seq=50,
                                                  ack=2), 0.2),
        ("client", IP(src=C1, dst=S, id=3) / TCP(sport=33000, dport=80, flags="A", seq=2,
                                                  ack=51), 0.2),
        ("client", IP(src=C1, dst=S, id=4) / UDP(sport=40000, dport=53) / b"q1", 0.2),
        ("client", IP(src=C2, dst=S, id=5) / UDP(sport=40000, dport=53) / b"q2", 0.2),
        ("server", IP(src=S, dst=FW, id=6) / UDP(sport=53, dport=40001) / b"a2", 0.2),
        ("client", IP(src=C1, dst=S, id=7) / UDP(sport=1234, dport=123) / b"ntp", 0.2),
        ("server", IP(src=S, dst=FW, id=8) / UDP(sport=123, dport=40123) / b"ntp", 0.2),
        ("client", IPv6(src=C6, dst=S6) / TCP(sport=33001, dport=80, flags="S", seq=7), 0.2),
        ("server", IPv6(src=S6, dst=FW6) / TCP(sport=80, dport=33001, flags="SA", seq=70,
                                                ack=8), 0.2),
        ("client", IPv6(src=C6, dst=S6) / UDP(sport=40000, dport=53) / b"q6", 0.2),
        ("server", IPv6(src=S6, dst=FW6) / UDP(sport=53, dport=40000) / b"a6", 0.2),
    ],
)
