"""A TCP session over IPv6 (2001:db8:1::2 -> 2001:db8:2::2): handshake, request, response,
FIN from each side.  /proc prints IPv6 addresses uncompressed, conntrack -L compressed."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("2001:db8:1::2", 40100), server=("2001:db8:2::2", 80))

SCENARIO = Scenario(
    name="ipv6_tcp",
    description=__doc__,
    steps=[
        *f.handshake(delay=0.1),
        f.data("client", b"GET / HTTP/1.1\r\nHost: v6.example.com\r\n\r\n", delay=0.1),
        f.data("server", b"HTTP/1.1 204 No Content\r\n\r\n", delay=0.1),
        f.ack("client", delay=0.1),
        f.fin("client", delay=0.1),
        f.fin("server", delay=0.1),
        f.ack("client", delay=0.1),
    ],
)
