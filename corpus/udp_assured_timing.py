"""When UDP becomes ASSURED: a query and its reply (30 s, not assured); another exchange
1 s later (still not assured: the stream mark needs traffic more than 2 s after the first
reply); one more 2.5 s after the first reply: [ASSURED], 120 s."""

from scapy.layers.inet import IP, UDP

from statewall.lab.scenario import Scenario, Send

C, S = "198.51.100.2", "203.0.113.2"


def q(i: int) -> IP:
    return IP(src=C, dst=S, id=10 + i) / UDP(sport=33000, dport=123) / (b"\x23" + bytes(47))


def r(i: int) -> IP:
    return IP(src=S, dst=C, id=50 + i) / UDP(sport=123, dport=33000) / (b"\x24" + bytes(47))


SCENARIO = Scenario(
    name="udp_assured_timing",
    description=__doc__,
    steps=[
        Send("client", q(1), 0.1), Send("server", r(1), 1.0),
        Send("client", q(2), 0.1), Send("server", r(2), 1.4),
        Send("client", q(3), 0.1), Send("server", r(3), 0.2),
    ],
)
