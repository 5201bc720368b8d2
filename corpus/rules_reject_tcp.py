"""REJECT for TCP: a SYN to port 81 is answered with a TCP reset (--reject-with tcp-reset),
one to port 82 with the default ICMP port unreachable; neither is forwarded nor leaves an
entry.  fw's stack is not silenced here, so its answers show in fw_sent.  A SYN to port 80
passes."""

from scapy.layers.inet import IP, TCP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -p tcp -m tcp --dport 82 -j REJECT
COMMIT"""

SCENARIO = Scenario(
    name="rules_reject_tcp",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    fw_silent=False,
    steps=[
        ("client", IP(src=C, dst=S) / TCP(sport=40440, dport=81, flags="S", seq=100), 0.2),
        ("client", IP(src=C, dst=S) / TCP(sport=40441, dport=82, flags="S", seq=200), 0.2),
        ("client", IP(src=C, dst=S) / TCP(sport=40442, dport=80, flags="S", seq=300), 0.2),
    ],
)
