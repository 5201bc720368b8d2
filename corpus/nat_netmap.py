"""NETMAP, 1:1 mapping of networks: clients of 198.51.100.0/24 leave s0 as the same host in
192.0.2.0/24 (POSTROUTING, source), and 203.0.113.128/25 seen from the server side maps to
198.51.100.0/25 (PREROUTING, destination).  Answers come back through the mapping."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

S = "203.0.113.2"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i s0 -d 203.0.113.128/25 -j NETMAP --to 198.51.100.0/25
-A POSTROUTING -s 198.51.100.0/24 -o s0 -j NETMAP --to 192.0.2.0/24
COMMIT"""

SCENARIO = Scenario(
    name="nat_netmap",
    description=__doc__,
    rules_v4=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", IP(src="198.51.100.7", dst=S, id=1) / TCP(sport=36000, dport=80, flags="S",
                                                              seq=1), 0.2),
        ("server", IP(src=S, dst="192.0.2.7", id=2) / TCP(sport=80, dport=36000, flags="SA",
                                                           seq=9, ack=2), 0.2),
        ("client", IP(src="198.51.100.200", dst=S, id=3) / UDP(sport=36001, dport=53) / b"q",
         0.2),
        ("server", IP(src=S, dst="192.0.2.200", id=4) / UDP(sport=53, dport=36001) / b"a", 0.2),
        ("server", IP(src=S, dst="203.0.113.130", id=5) / TCP(sport=36002, dport=22,
                                                               flags="S", seq=5), 0.2),
        ("client", IP(src="198.51.100.2", dst=S, id=6) / TCP(sport=22, dport=36002,
                                                              flags="SA", seq=7, ack=6), 0.2),
    ],
)
