"""nf_conntrack_udp_timeout lowered to 3 s: a query, 5 s of silence (the entry expires),
then another packet of the same flow, which creates a new entry (NEW again)."""

from scapy.layers.inet import IP, UDP

from statewall.lab.scenario import Scenario, Send, Snapshot

C, S = "198.51.100.2", "203.0.113.2"

SCENARIO = Scenario(
    name="udp_expiry",
    description=__doc__,
    sysctls={"nf_conntrack_udp_timeout": 3},
    steps=[
        Send("client", IP(src=C, dst=S) / UDP(sport=5353, dport=5000) / b"ping 1", delay=2.0),
        Snapshot("2 s after the first packet (1 s left)"),
        Send("client", IP(src=C, dst=S) / UDP(sport=5353, dport=5001) / b"other flow", delay=3.0),
        Snapshot("5 s after the first packet (expired)"),
        Send("client", IP(src=C, dst=S) / UDP(sport=5353, dport=5000) / b"ping 2", delay=0.2),
    ],
)
