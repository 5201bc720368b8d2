"""ICMP errors about a UDP flow, in both directions: a router on the server side reports
the client's datagram (time exceeded, sent back to the client: RELATED reply direction);
a router on the client side reports the server's answer (port unreachable, sent back to
the server: RELATED original direction).  Neither changes the UDP entry."""

from scapy.layers.inet import IP, UDP

from statewall.lab.craft import icmp_error
from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"
q = IP(src=C, dst=S, id=7) / UDP(sport=41000, dport=514) / b"syslog line"
a = IP(src=S, dst=C, id=8) / UDP(sport=514, dport=41000) / b"answer"
# as the routers quote them: TTL run out (the copies fw forwarded had TTL 63)
q_quoted, a_quoted = q.copy(), a.copy()
q_quoted.ttl = a_quoted.ttl = 1

SCENARIO = Scenario(
    name="icmp_error_udp",
    description=__doc__,
    steps=[
        ("client", q, 0.1), ("server", a, 0.1),
        ("server", icmp_error(q_quoted, "203.0.113.254", kind="time-exceeded"), 0.1),
        ("client", icmp_error(a, "198.51.100.254", kind="port-unreachable"), 0.1),
    ],
)
