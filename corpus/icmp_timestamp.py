"""ICMP timestamp request (type 13) and reply (14): tracked like echo (NEW, then
ESTABLISHED reply, 30 s); a second request with another id is a new entry."""

from scapy.layers.inet import ICMP, IP

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"

SCENARIO = Scenario(
    name="icmp_timestamp",
    description=__doc__,
    steps=[
        ("client", IP(src=C, dst=S) / ICMP(type=13, id=0x1111, seq=1, ts_ori=1000), 0.1),
        ("server", IP(src=S, dst=C) / ICMP(type=14, id=0x1111, seq=1, ts_ori=1000,
                                          ts_rx=2000, ts_tx=2001), 0.1),
        ("client", IP(src=C, dst=S) / ICMP(type=13, id=0x2222, seq=1, ts_ori=3000), 0.1),
    ],
)
