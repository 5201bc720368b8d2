"""SNAT of several clients behind one address, with port clashes: POSTROUTING SNAT to
203.0.113.1:30000-30001 for TCP and UDP leaving on s0 (everything else to 203.0.113.1).
Three clients (198.51.100.2, .3, .4) each open TCP from source port 30000 to
203.0.113.2:80: the first keeps its port (in range, free), the second clashes and gets the
range's other port, the third finds the range full - its entry clashes at confirm and the
SYN is dropped (insert_failed).  The server's SYN/ACKs to the mapped ports are translated
back and the handshakes complete.  UDP: 198.51.100.2:30000 keeps its port (no UDP flow has
it), 198.51.100.3:5353 (outside the range) moves into it, to the only port still free
towards that server port; the answers come back to the right clients.  An ICMP echo keeps
its identifier."""

from scapy.layers.inet import ICMP, IP, TCP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

S, FW = "203.0.113.2", "203.0.113.1"
C1, C2, C3 = "198.51.100.2", "198.51.100.3", "198.51.100.4"
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o s0 -p tcp -j SNAT --to-source 203.0.113.1:30000-30001
-A POSTROUTING -o s0 -p udp -j SNAT --to-source 203.0.113.1:30000-30001
-A POSTROUTING -o s0 -j SNAT --to-source 203.0.113.1
COMMIT"""


def syn(src: str, sport: int, seq: int) -> IP:
    return IP(src=src, dst=S, id=seq & 0xFFFF) / TCP(sport=sport, dport=80, flags="S", seq=seq)


SCENARIO = Scenario(
    name="nat_snat_clash",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", syn(C1, 30000, 1000), 0.2),
        ("client", syn(C2, 30000, 2000), 0.2),
        ("client", syn(C3, 30000, 3000), 0.2),
        ("server", IP(src=S, dst=FW, id=1) / TCP(sport=80, dport=30000, flags="SA", seq=500,
                                                  ack=1001), 0.2),
        ("server", IP(src=S, dst=FW, id=2) / TCP(sport=80, dport=30001, flags="SA", seq=600,
                                                  ack=2001), 0.2),
        ("client", IP(src=C1, dst=S, id=11) / TCP(sport=30000, dport=80, flags="A", seq=1001,
                                                   ack=501), 0.2),
        ("client", IP(src=C2, dst=S, id=12) / TCP(sport=30000, dport=80, flags="A", seq=2001,
                                                   ack=601), 0.2),
        ("client", IP(src=C1, dst=S, id=21) / UDP(sport=30000, dport=53) / b"q1", 0.2),
        ("client", IP(src=C2, dst=S, id=22) / UDP(sport=5353, dport=53) / b"q2", 0.2),
        ("server", IP(src=S, dst=FW, id=23) / UDP(sport=53, dport=30001) / b"a2", 0.2),
        ("server", IP(src=S, dst=FW, id=24) / UDP(sport=53, dport=30000) / b"a1", 0.2),
        ("client", IP(src=C1, dst=S, id=31) / ICMP(id=4242, seq=1) / b"ping", 0.2),
        ("server", IP(src=S, dst=FW, id=32) / ICMP(type=0, id=4242, seq=1) / b"ping", 0.2),
    ],
)
