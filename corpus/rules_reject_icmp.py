"""REJECT with ICMP answers: UDP to port 9 gets icmp-port-unreachable, UDP to port 13
icmp-host-prohibited, pings icmp-admin-prohibited; nothing rejected is forwarded or
tracked; fw's answers show in fw_sent.  UDP to port 7 passes."""

from scapy.layers.inet import ICMP, IP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 9 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -p udp -m udp --dport 13 -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -p icmp -m icmp --icmp-type 8 -j REJECT --reject-with icmp-admin-prohibited
COMMIT"""

SCENARIO = Scenario(
    name="rules_reject_icmp",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    fw_silent=False,
    steps=[
        ("client", IP(src=C, dst=S) / UDP(sport=40450, dport=9) / b"discard", 0.2),
        ("client", IP(src=C, dst=S) / UDP(sport=40451, dport=13) / b"daytime", 0.2),
        ("client", IP(src=C, dst=S) / ICMP(type=8, id=0x5050, seq=1), 0.2),
        ("client", IP(src=C, dst=S) / UDP(sport=40452, dport=7) / b"echo", 0.2),
    ],
)
