"""An ICMP error about an ICMP query: an echo request, then a router's time-exceeded
quoting it (RELATED to the echo entry); a destination-unreachable quoting the echo reply,
sent towards the server; an error quoting an ICMP error is never related (INVALID)."""

from scapy.layers.inet import ICMP, IP

from statewall.lab.craft import icmp_error
from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
req = IP(src=C, dst=S, id=21) / ICMP(type=8, id=0x6060, seq=1) / b"probe"
rep = IP(src=S, dst=C, id=22) / ICMP(type=0, id=0x6060, seq=1) / b"probe"
quoted = req.copy()
quoted.ttl = 1
err = icmp_error(quoted, "203.0.113.254", kind="time-exceeded")

SCENARIO = Scenario(
    name="icmp_error_icmp",
    description=__doc__,
    steps=[
        ("client", req, 0.1), ("server", rep, 0.1),
        ("server", err, 0.1),
        ("client", icmp_error(rep, "198.51.100.254", kind="port-unreachable"), 0.1),
        ("client", icmp_error(IP(bytes(err)), "198.51.100.253", kind="time-exceeded"), 0.1),
    ],
)
