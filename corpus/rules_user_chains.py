"""User-defined chains: FORWARD jumps to "stateful" (ESTABLISHED/RELATED accepted, INVALID
dropped, otherwise RETURN) and, for TCP, to "web" (80 and 443 accepted, RETURN); the
policy drops the rest.  HTTPS passes, SSH is dropped (no entry), an INVALID packet of the
HTTPS connection is dropped by the user chain."""

from scapy.layers.inet import IP, TCP

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:stateful - [0:0]
:web - [0:0]
-A FORWARD -j stateful
-A FORWARD -p tcp -j web
-A stateful -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A stateful -m conntrack --ctstate INVALID -j DROP
-A stateful -j RETURN
-A web -p tcp -m tcp --dport 443 -j ACCEPT
-A web -p tcp -m tcp --dport 80 -j ACCEPT
-A web -j RETURN
COMMIT"""
f = TcpFlow(client=(C, 40490), server=(S, 443))
steps = [*f.handshake(delay=0.1), f.data("client", b"\x16\x03\x01\x00\x05hello", delay=0.1),
         ("client", IP(src=C, dst=S) / TCP(sport=40491, dport=22, flags="S", seq=7), 0.1),
         f.segment("server", "A", ack=f.next_seq("client") + 900000, advance=False, delay=0.1),
         f.data("server", b"\x16\x03\x03\x00\x05howdy", delay=0.1)]

SCENARIO = Scenario(name="rules_user_chains", description=__doc__, rules_v4=RULES,
                    requires=(REQUIRES_RULES,), steps=steps)
