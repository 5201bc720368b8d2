"""Handshake, one request, then the server aborts with RST|ACK (the entry goes to CLOSE,
10 s); afterwards the client still sends a segment on the dead connection."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

f = TcpFlow(client=("198.51.100.2", 40010), server=("203.0.113.2", 80))

SCENARIO = Scenario(
    name="tcp_rst",
    description=__doc__,
    steps=[
        *f.handshake(delay=0.1),
        f.data("client", b"GET / HTTP/1.0\r\n\r\n", delay=0.1),
        f.rst("server", delay=1.0),
        Snapshot("1 s after the RST"),
        f.data("client", b"more?\r\n", delay=0.2),
    ],
)
