"""An established TCP connection, then a router on the server side (203.0.113.254) sends
the client an ICMP time-exceeded quoting one of the client's segments: RELATED, reply
direction; the TCP entry itself is not changed."""

from statewall.lab.craft import TcpFlow, icmp_error
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40040), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1)]
seg = f.data("client", b"GET / HTTP/1.0\r\n\r\n", delay=0.1)
steps.append(seg)
steps.append(f.ack("server", delay=0.1))
quoted = seg.packet.copy()
quoted.ttl = 1
steps.append(("server", icmp_error(quoted, "203.0.113.254", kind="time-exceeded"), 0.1))
steps.append(f.data("client", b"x", delay=0.1))

SCENARIO = Scenario(name="icmp_error_tcp", description=__doc__, steps=steps)
