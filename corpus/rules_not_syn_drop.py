"""The "! --syn NEW drop" rule: with mid-stream pickup allowed (tcp_loose=1), a TCP
segment without SYN that would start an entry is NEW; the rule drops it, so the entry is
never confirmed and the next segment is NEW again.  A proper handshake then passes."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import REQUIRES_RULES, Scenario

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP
COMMIT"""
old = TcpFlow(client=("198.51.100.2", 40420), server=("203.0.113.2", 443),
              client_isn=0x31000000, server_isn=0x61000000)
new = TcpFlow(client=("198.51.100.2", 40421), server=("203.0.113.2", 443))

SCENARIO = Scenario(
    name="rules_not_syn_drop",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    steps=[
        old.data("client", b"\x17\x03\x03\x00\x10" + bytes(16), delay=0.1),
        old.ack("server", delay=0.1),
        old.data("client", b"\x17\x03\x03\x00\x10" + bytes(16), delay=0.1),
        *new.handshake(delay=0.1),
        new.data("client", b"\x16\x03\x01\x00\x05hello", delay=0.1),
    ],
)
