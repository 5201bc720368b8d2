"""Packet marks and connection marks: mangle PREROUTING marks new web connections 0x5
(MARK) and saves the mark into the entry (CONNMARK --save-mark); later packets restore it
(--restore-mark); UDP entries get a connection mark 0x7 directly (CONNMARK --set-mark).
conntrack -L shows mark=5 / mark=7; FORWARD drops marked packets to port 8080 (-m mark)
and UDP replies with connmark 0x7 to port 5001 (-m connmark)."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m connmark ! --mark 0x0 -j CONNMARK --restore-mark
-A PREROUTING -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW -j MARK --set-mark 0x5
-A PREROUTING -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j MARK --set-mark 0x5
-A PREROUTING -m conntrack --ctstate NEW -m mark ! --mark 0x0 -j CONNMARK --save-mark
-A PREROUTING -p udp -m conntrack --ctstate NEW -j CONNMARK --set-mark 0x7
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 8080 -m mark --mark 0x5 -j DROP
-A FORWARD -p udp -m udp --dport 5001 -m connmark --mark 0x7 -m conntrack --ctdir REPLY -j DROP
COMMIT"""
f = TcpFlow(client=(C, 40480), server=(S, 80))

SCENARIO = Scenario(
    name="rules_connmark",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    steps=[
        *f.handshake(delay=0.1),
        f.data("client", b"GET /\r\n", delay=0.1),
        ("client", IP(src=C, dst=S) / TCP(sport=40481, dport=8080, flags="S", seq=9), 0.1),
        ("client", IP(src=C, dst=S) / UDP(sport=5001, dport=5002) / b"a", 0.1),
        ("server", IP(src=S, dst=C) / UDP(sport=5002, dport=5001) / b"b", 0.1),
    ],
)
