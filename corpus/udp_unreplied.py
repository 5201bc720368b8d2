"""UDP one way only: three datagrams from the client, no answer.  The entry stays
[UNREPLIED]; every datagram restarts its 30 s timeout; a datagram from the same port to
another server port is another entry."""

from scapy.layers.inet import IP, UDP

from statewall.lab.scenario import Scenario, Send, Snapshot

C, S = "198.51.100.2", "203.0.113.2"


def dgram(dport: int, n: int) -> IP:
    return IP(src=C, dst=S, id=0x2000 + n) / UDP(sport=5060, dport=dport) / f"OPTIONS {n}".encode()


SCENARIO = Scenario(
    name="udp_unreplied",
    description=__doc__,
    steps=[
        Send("client", dgram(5060, 1), delay=1.2),
        Send("client", dgram(5060, 2), delay=1.2),
        Snapshot("1.2 s after the second"),
        Send("client", dgram(5060, 3), delay=0.1),
        Send("client", dgram(5061, 4), delay=0.1),
    ],
)
