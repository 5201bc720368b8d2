"""Crafted ICMP echo: request/reply twice with the same id, then an echo reply nobody asked
for (INVALID: only requests can create an ICMP entry) and a request with a new id."""

from scapy.layers.inet import ICMP, IP

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
DATA = bytes(range(48))


def req(i: int, seq: int) -> IP:
    return IP(src=C, dst=S) / ICMP(type=8, id=i, seq=seq) / DATA


def rep(i: int, seq: int) -> IP:
    return IP(src=S, dst=C) / ICMP(type=0, id=i, seq=seq) / DATA


SCENARIO = Scenario(
    name="icmp_echo_crafted",
    description=__doc__,
    steps=[
        ("client", req(0x1234, 1), 0.1),
        ("server", rep(0x1234, 1), 0.5),
        ("client", req(0x1234, 2), 0.1),
        ("server", rep(0x1234, 2), 0.1),
        ("server", rep(0x4321, 1), 0.1),
        ("client", req(0x5555, 1), 0.1),
    ],
)
