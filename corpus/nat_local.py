"""NAT of fw's own traffic and of traffic to fw: DNAT in OUTPUT (fw's UDP to
192.0.2.50:7 goes to 203.0.113.2:7 instead, rerouted out of s0 after the rewrite), SNAT in
POSTROUTING of a locally generated packet (fw's TCP SYN from 203.0.113.1 leaves as
203.0.113.1:50000-50009... its own port kept, in range), and SNAT in INPUT (a datagram from
the server to fw is delivered as if from 192.0.2.99, as the reply tuple shows).  The
server's answers to the rewritten packets come back through the bindings."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.scenario import FW, REQUIRES_RULES, Scenario

S, ME = "203.0.113.2", "203.0.113.1"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -d 192.0.2.50 -p udp --dport 7 -j DNAT --to-destination 203.0.113.2:7
-A POSTROUTING -o s0 -s 203.0.113.1 -p tcp -j SNAT --to-source 203.0.113.1:50000-50009
-A INPUT -s 203.0.113.2 -p udp --dport 9 -j SNAT --to-source 192.0.2.99
COMMIT"""

SCENARIO = Scenario(
    name="nat_local",
    description=__doc__,
    rules_v4=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        (FW, IP(src=ME, dst="192.0.2.50", id=1) / UDP(sport=45000, dport=7) / b"echo", 0.2),
        ("server", IP(src=S, dst=ME, id=2) / UDP(sport=7, dport=45000) / b"echo", 0.2),
        (FW, IP(src=ME, dst=S, id=3) / TCP(sport=50005, dport=80, flags="S", seq=1), 0.2),
        ("server", IP(src=S, dst=ME, id=4) / TCP(sport=80, dport=50005, flags="SA", seq=9,
                                                  ack=2), 0.2),
        ("server", IP(src=S, dst=ME, id=5) / UDP(sport=45001, dport=9) / b"discard", 0.2),
    ],
)
