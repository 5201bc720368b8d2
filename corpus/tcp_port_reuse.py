"""Port reuse: a connection is reset (entry in CLOSE, 10 s); right away a new SYN with the
same addresses and ports but a new ISN replaces it (the CLOSE entry is deleted and a NEW one
created), and the new handshake completes."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

a = TcpFlow(client=("198.51.100.2", 40220), server=("203.0.113.2", 80))
b = TcpFlow(client=("198.51.100.2", 40220), server=("203.0.113.2", 80),
            client_isn=0x44444444, server_isn=0x55555555)

SCENARIO = Scenario(
    name="tcp_port_reuse",
    description=__doc__,
    steps=[*a.handshake(delay=0.1), a.data("client", b"x", delay=0.1),
           a.rst("client", delay=0.2), Snapshot("CLOSE"),
           *b.handshake(delay=0.1), b.data("client", b"again", delay=0.1)],
)
