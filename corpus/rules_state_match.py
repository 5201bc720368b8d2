"""A classic stateful FORWARD policy with -m state: DROP by default, ESTABLISHED/RELATED
accepted, NEW only for TCP port 80 and ICMP.  A web connection and a ping pass; a SYN to
port 81 and a UDP datagram are dropped - and since an entry is confirmed only when its first
packet survives the rules, they leave no entry; an ICMP error about the web connection is
RELATED and passes."""

from scapy.layers.inet import ICMP, IP, TCP, UDP

from statewall.lab.craft import TcpFlow, icmp_error
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 80 -m state --state NEW -j ACCEPT
-A FORWARD -p icmp -m state --state NEW -j ACCEPT
COMMIT"""
f = TcpFlow(client=(C, 40400), server=(S, 80))
steps = [*f.handshake(delay=0.1)]
seg = f.data("client", b"GET /\r\n", delay=0.1)
steps.append(seg)
quoted = seg.packet.copy()
quoted.ttl = 1
steps += [
    ("client", IP(src=C, dst=S) / TCP(sport=40401, dport=81, flags="S", seq=1000), 0.1),
    ("client", IP(src=C, dst=S) / UDP(sport=40402, dport=53) / b"query", 0.1),
    ("client", IP(src=C, dst=S) / ICMP(type=8, id=0x4040, seq=1), 0.1),
    ("server", IP(src=S, dst=C) / ICMP(type=0, id=0x4040, seq=1), 0.1),
    ("server", icmp_error(quoted, "203.0.113.254"), 0.1),
    f.ack("server", delay=0.1),
]

SCENARIO = Scenario(name="rules_state_match", description=__doc__, rules_v4=RULES,
                    requires=(REQUIRES_RULES,), steps=steps)
