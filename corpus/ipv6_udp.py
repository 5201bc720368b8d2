"""UDP over IPv6: query, reply, second query and reply (stream, ASSURED)."""

from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from statewall.lab.scenario import Scenario

C, S = "2001:db8:1::2", "2001:db8:2::2"


def q(n: int) -> IPv6:
    return IPv6(src=C, dst=S) / UDP(sport=41000, dport=53) / f"query {n}".encode()


def r(n: int) -> IPv6:
    return IPv6(src=S, dst=C) / UDP(sport=53, dport=41000) / f"answer {n}".encode()


SCENARIO = Scenario(
    name="ipv6_udp",
    description=__doc__,
    steps=[("client", q(1), 0.5), ("server", r(1), 0.5),
           ("client", q(2), 0.1), ("server", r(2), 0.1)],
)
