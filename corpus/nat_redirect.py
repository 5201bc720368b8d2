"""REDIRECT in PREROUTING: TCP to port 80 from the client side goes to fw itself on port
3128 (the destination becomes c0's first address, 198.51.100.1; delivered to fw), UDP to
port 53 to fw's port 53 (no --to-ports: the port is kept), IPv6 TCP to port 80 to
[2001:db8:1::1]:3128.  fw's stack is silenced, so nothing answers; the entries show the
redirection in their reply tuples."""

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S, C6, S6 = "198.51.100.2", "203.0.113.2", "2001:db8:1::2", "2001:db8:2::2"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i c0 -p tcp --dport 80 -j REDIRECT --to-ports 3128
-A PREROUTING -i c0 -p udp --dport 53 -j REDIRECT
COMMIT"""

SCENARIO = Scenario(
    name="nat_redirect",
    description=__doc__,
    rules_v4=NAT,
    rules_v6=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", IP(src=C, dst=S, id=1) / TCP(sport=35000, dport=80, flags="S", seq=1), 0.2),
        ("client", IP(src=C, dst=S, id=2) / TCP(sport=35000, dport=80, flags="S", seq=1), 0.2),
        ("client", IP(src=C, dst=S, id=3) / UDP(sport=35001, dport=53) / b"q", 0.2),
        ("client", IP(src=C, dst=S, id=4) / TCP(sport=35002, dport=443, flags="S", seq=1), 0.2),
        ("client", IPv6(src=C6, dst=S6) / TCP(sport=35003, dport=80, flags="S", seq=1), 0.2),
    ],
)
