"""ICMP address mask request (type 17) and reply (18): a query/answer pair conntrack
tracks (NEW, ESTABLISHED reply); an information request (15) - obsolete but still in the
kernel's table - and its reply (16)."""

from scapy.layers.inet import ICMP, IP

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"

SCENARIO = Scenario(
    name="icmp_address_mask",
    description=__doc__,
    steps=[
        ("client", IP(src=C, dst=S) / ICMP(type=17, id=0x3333, seq=1, addr_mask="0.0.0.0"), 0.1),
        ("server", IP(src=S, dst=C) / ICMP(type=18, id=0x3333, seq=1,
                                          addr_mask="255.255.255.0"), 0.1),
        ("client", IP(src=C, dst=S) / ICMP(type=15, id=0x4444, seq=1), 0.1),
        ("server", IP(src=S, dst=C) / ICMP(type=16, id=0x4444, seq=1), 0.1),
    ],
)
