"""-m conntrack beyond --ctstate: --ctdir, --ctproto, --ctorigsrc/--ctorigdst, --ctreplsrc,
--ctstatus.  FORWARD drops by default; ESTABLISHED/RELATED pass; NEW passes only from the
client network (--ctorigsrc) or for UDP to the server network (--ctproto udp
--ctorigdst); a NEW TCP SYN from the server side is dropped; ASSURED entries are logged to
a counter rule only."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstatus ASSURED --ctdir REPLY
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW --ctdir ORIGINAL --ctorigsrc 198.51.100.0/24 -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW --ctproto udp --ctorigdst 203.0.113.0/24 --ctreplsrc 203.0.113.0/24 -j ACCEPT
COMMIT"""
f = TcpFlow(client=(C, 40410), server=(S, 22))

SCENARIO = Scenario(
    name="rules_conntrack_match",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    steps=[
        *f.handshake(delay=0.1),
        f.data("client", b"SSH-2.0-lab\r\n", delay=0.1),
        f.data("server", b"SSH-2.0-srv\r\n", delay=0.1),
        ("server", IP(src=S, dst=C) / TCP(sport=2222, dport=40411, flags="S", seq=5), 0.1),
        ("client", IP(src="192.0.2.7", dst=S) / UDP(sport=40412, dport=514) / b"log", 0.1),
        ("client", IP(src="192.0.2.7", dst=S) / TCP(sport=40413, dport=80, flags="S"), 0.1),
        ("server", IP(src=S, dst="192.0.2.7") / UDP(sport=514, dport=40412) / b"ok", 0.1),
    ],
)
