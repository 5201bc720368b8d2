"""ICMP errors through NAT: the error about a translated packet is translated too - outer
header and the quoted packet inside it, with their checksums.  SNAT side: the server's port
unreachable for a masqueraded UDP datagram, and a time exceeded from a router
(203.0.113.254) quoting a masqueraded SYN with its whole TCP header, both reach the client
as if about its own packets.  DNAT side: the inside host's port unreachable for a
forwarded UDP datagram, and its ICMP echo error quoting a DNATed TCP SYN, leave as errors
from 203.0.113.1 about the public address and port."""

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import raw

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S, FW, R = "198.51.100.2", "203.0.113.2", "203.0.113.1", "203.0.113.254"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i s0 -d 203.0.113.1 -p udp --dport 5300 -j DNAT --to-destination 198.51.100.2:53
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 2222 -j DNAT --to-destination 198.51.100.2:22
-A POSTROUTING -o s0 -j MASQUERADE
COMMIT"""


def quoted(p: IP, n: int | None = None) -> bytes:
    b = raw(p)
    return b if n is None else b[:n]


U1 = IP(src=C, dst=S, id=1) / UDP(sport=38000, dport=53) / b"query"
U1_NAT = IP(src=FW, dst=S, id=1, ttl=63) / UDP(sport=38000, dport=53) / b"query"
U2 = IP(src=S, dst=FW, id=5) / UDP(sport=38002, dport=5300) / b"ask"
U2_IN = IP(src=S, dst=C, id=5, ttl=63) / UDP(sport=38002, dport=53) / b"ask"
T2 = IP(src=S, dst=FW, id=6) / TCP(sport=38003, dport=2222, flags="S", seq=5)
T2_IN = IP(src=S, dst=C, id=6, ttl=63) / TCP(sport=38003, dport=22, flags="S", seq=5)

SCENARIO = Scenario(
    name="nat_icmp_errors",
    description=__doc__,
    rules_v4=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", U1, 0.2),
        ("server", IP(src=S, dst=FW, id=3) / ICMP(type=3, code=3) / quoted(U1_NAT), 0.2),
        ("client", IP(src=C, dst=S, id=2, ttl=2) / TCP(sport=38001, dport=80, flags="S",
                                                        seq=77), 0.2),
        ("server", IP(src=R, dst=FW, id=4) / ICMP(type=11, code=0) / quoted(
            IP(src=FW, dst=S, id=2, ttl=1) / TCP(sport=38001, dport=80, flags="S", seq=77)),
         0.2),
        ("server", U2, 0.2),
        ("client", IP(src=C, dst=S, id=7) / ICMP(type=3, code=3) / quoted(U2_IN), 0.2),
        ("server", T2, 0.2),
        ("client", IP(src=C, dst=S, id=8) / ICMP(type=3, code=10) / quoted(T2_IN, 28), 0.2),
    ],
)
