"""Hairpin NAT: a client (198.51.100.2) reaches a server on its own network (198.51.100.3:80)
through fw's public address 203.0.113.1:8080.  PREROUTING DNATs to the server; POSTROUTING
MASQUERADEs traffic from the inside to it, so the server answers fw (198.51.100.1) and not
the client directly.  The packet enters and leaves c0; the answer is translated both ways
(destination back to the client, source back to 203.0.113.1:8080)."""

from scapy.layers.inet import IP, TCP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, SRV, PUB, FWC = "198.51.100.2", "198.51.100.3", "203.0.113.1", "198.51.100.1"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 203.0.113.1 -p tcp --dport 8080 -j DNAT --to-destination 198.51.100.3:80
-A POSTROUTING -s 198.51.100.0/24 -d 198.51.100.3 -p tcp --dport 80 -j MASQUERADE
COMMIT"""

SCENARIO = Scenario(
    name="nat_hairpin",
    description=__doc__,
    rules_v4=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", IP(src=C, dst=PUB, id=1) / TCP(sport=37000, dport=8080, flags="S", seq=1),
         0.2),
        ("client", IP(src=SRV, dst=FWC, id=2) / TCP(sport=80, dport=37000, flags="SA", seq=9,
                                                     ack=2), 0.2),
        ("client", IP(src=C, dst=PUB, id=3) / TCP(sport=37000, dport=8080, flags="A", seq=2,
                                                   ack=10) / b"GET /", 0.2),
        ("client", IP(src=SRV, dst=FWC, id=4) / TCP(sport=80, dport=37000, flags="A", seq=10,
                                                     ack=7), 0.2),
    ],
)
