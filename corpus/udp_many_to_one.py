"""Many clients, one server port: five clients (two networks on the client side, one of
them IPv6) send to 203.0.113.53:53; the server answers three of them.  One entry per
client, answered ones without [UNREPLIED]."""

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from statewall.lab.scenario import Scenario, Send

S, S6 = "203.0.113.53", "2001:db8:2::53"
clients = [("198.51.100.10", 40001), ("198.51.100.11", 40002), ("192.0.2.20", 40003),
           ("198.51.100.12", 40001)]
steps = []
for i, (c, port) in enumerate(clients):
    steps.append(Send("client", IP(src=c, dst=S, id=i + 1) / UDP(sport=port, dport=53)
                      / f"query {i}".encode(), 0.1))
steps.append(Send("client", IPv6(src="2001:db8:1::20", dst=S6) / UDP(sport=40005, dport=53)
                  / b"query 6", 0.1))
for i, (c, port) in enumerate(clients[:2]):
    steps.append(Send("server", IP(src=S, dst=c, id=100 + i) / UDP(sport=53, dport=port)
                      / f"answer {i}".encode(), 0.1))
steps.append(Send("server", IPv6(src=S6, dst="2001:db8:1::20") / UDP(sport=53, dport=40005)
                  / b"answer 6", 0.1))

SCENARIO = Scenario(name="udp_many_to_one", description=__doc__, steps=steps)
