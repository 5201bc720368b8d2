"""The string match: payload patterns decide.  An established web connection carries a
harmless request (accepted) and one with a forbidden word (dropped by bm); UDP datagrams
are accepted only when kmp finds "query" in any case after the UDP header (offset 28), or
bm finds a hex pattern, or a pattern that must end before offset 40 does (one ends exactly
there, one a byte later); --icase folds Latin-1 too (0xC9 matches a pattern of 0xE9), and
! --string accepts what lacks a word."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m state --state ESTABLISHED -m string --string "forbidden" --algo bm -j DROP
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp --syn -j ACCEPT
-A FORWARD -p udp -m string --string "QUERY" --algo kmp --from 28 --icase -j ACCEPT
-A FORWARD -p udp -m string --hex-string "|deadbeef|" --algo bm -j ACCEPT
-A FORWARD -p udp -m string --string "edge" --algo bm --to 40 -j ACCEPT
-A FORWARD -p udp -m string --hex-string "|e9|" --algo bm --icase -j ACCEPT
-A FORWARD -p udp --dport 7 -m string ! --string "secret" --algo kmp -j ACCEPT
COMMIT"""


def udp(sport: int, payload: bytes, dport: int = 9) -> tuple[str, object, float]:
    return ("client", IP(src=C, dst=S) / UDP(sport=sport, dport=dport) / payload, 0.1)


f = TcpFlow(client=(C, 40500), server=(S, 80))
steps = [*f.handshake(delay=0.1),
         f.data("client", b"GET /index.html\r\n", delay=0.1),
         f.ack("server", delay=0.1),
         f.data("client", b"GET /forbidden\r\n", delay=0.1),
         udp(40501, b"a Query for you"),           # kmp, --icase, after offset 28
         udp(40502, b"nothing here"),               # dropped
         udp(40503, b"xx\xde\xad\xbe\xefyy"),       # hex block
         udp(40504, b"12345678edge"),               # "edge" ends at 40: accepted
         udp(40505, b"123456789edge"),              # ends at 41: dropped
         udp(40506, b"caf\xc9"),                    # Latin-1 upper of 0xE9
         udp(40507, b"public", dport=7),            # ! --string: accepted
         udp(40508, b"my secret", dport=7)]         # dropped

SCENARIO = Scenario(name="rules_string", description=__doc__, rules_v4=RULES,
                    requires=(REQUIRES_RULES,), steps=steps)
