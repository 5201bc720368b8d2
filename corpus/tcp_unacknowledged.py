"""Unacknowledged data: the client sends data the server never acknowledges.  With data
outstanding in one direction the ESTABLISHED entry's timeout is capped at
nf_conntrack_tcp_timeout_unacknowledged (300 s); the ACK restores 5 days."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40210), server=("203.0.113.2", 80))

SCENARIO = Scenario(
    name="tcp_unacknowledged",
    description=__doc__,
    steps=[*f.handshake(delay=0.1), f.data("client", b"first", delay=0.1),
           f.data("client", b"second", delay=0.1), f.ack("server", delay=0.1),
           f.data("server", b"answer", delay=0.1), f.ack("client", delay=0.1)],
)
