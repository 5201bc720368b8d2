"""NOTRACK in the raw table: DNS to and from port 53 is exempted from tracking (-j NOTRACK
and -j CT --notrack): both directions are UNTRACKED and no entry appears; other UDP is
tracked as usual.  The same for IPv6 with ip6tables."""

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
C6, S6 = "2001:db8:1::2", "2001:db8:2::2"
RULES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j NOTRACK
-A PREROUTING -p udp -m udp --sport 53 -j CT --notrack
COMMIT"""

SCENARIO = Scenario(
    name="rules_notrack",
    description=__doc__,
    rules_v4=RULES,
    rules_v6=RULES,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", IP(src=C, dst=S) / UDP(sport=40470, dport=53) / b"query", 0.1),
        ("server", IP(src=S, dst=C) / UDP(sport=53, dport=40470) / b"answer", 0.1),
        ("client", IP(src=C, dst=S) / UDP(sport=40471, dport=123) / b"ntp", 0.1),
        ("client", IPv6(src=C6, dst=S6) / UDP(sport=40472, dport=53) / b"query", 0.1),
        ("server", IPv6(src=S6, dst=C6) / UDP(sport=53, dport=40472) / b"answer", 0.1),
    ],
)
