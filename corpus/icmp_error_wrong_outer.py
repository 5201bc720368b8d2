"""ICMP errors whose outer header does not fit the quoted packet: a time-exceeded quoting
the client's TCP segment but sent to another host than the segment's source (the outer
destination must be the quoted source): INVALID; the same error to the right host is
RELATED.  Same for IPv6."""

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6

from statewall.lab.craft import TcpFlow, icmp_error
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40300), server=("203.0.113.2", 80))
g = TcpFlow(client=("2001:db8:1::2", 40301), server=("2001:db8:2::2", 80))
steps = [*f.handshake(delay=0.1)]
seg = f.data("client", b"GET /\r\n", delay=0.1)
steps.append(seg)
steps += [*g.handshake(delay=0.1)]
seg6 = g.data("client", b"GET /\r\n", delay=0.1)
steps.append(seg6)
good = icmp_error(seg.packet, "203.0.113.254")
bad = good.copy()
bad[IP].dst = "198.51.100.99"
del bad[IP].chksum
good6 = icmp_error(seg6.packet, "2001:db8:2::fe")
bad6 = good6.copy()
bad6[IPv6].dst = "2001:db8:1::99"
steps += [("server", IP(bytes(bad)), 0.1), ("server", good, 0.1),
          ("server", IPv6(bytes(bad6)), 0.1), ("server", good6, 0.1)]

SCENARIO = Scenario(name="icmp_error_wrong_outer", description=__doc__, steps=steps)
