"""-m conntrack --ctstate INVALID -j DROP: the INVALID packets of a session (a segment
acknowledging data never sent, a bad checksum, an unsolicited echo reply) are dropped, not
forwarded; everything else passes and the entry is unaffected."""

from scapy.layers.inet import ICMP, IP, UDP

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
COMMIT"""
f = TcpFlow(client=(C, 40430), server=(S, 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /\r\n", delay=0.1)]
steps += [
    f.segment("server", "A", ack=f.next_seq("client") + 500000, advance=False, delay=0.1),
    ("client", IP(src=C, dst=S) / UDP(sport=40431, dport=53, chksum=0x4321) / b"bad", 0.1),
    ("server", IP(src=S, dst=C) / ICMP(type=0, id=0x9999, seq=1), 0.1),
    f.data("server", b"HTTP/1.0 200 OK\r\n\r\n", delay=0.1),
    f.ack("client", delay=0.1),
]

SCENARIO = Scenario(name="rules_invalid_drop", description=__doc__, rules_v4=RULES,
                    requires=(REQUIRES_RULES,), steps=steps)
