"""Data too early: after the SYN, the client sends data before any SYN/ACK (INVALID in
SYN_SENT); the SYN/ACK; then the client's first data segment carries the handshake's ACK
(no pure ACK), which completes the handshake; the server answers."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40160), server=("203.0.113.2", 80))
syn = f.syn(delay=0.1)
early = f.segment("client", "PA", b"too early", ack=0, advance=False, delay=0.1)

SCENARIO = Scenario(
    name="tcp_data_before_handshake",
    description=__doc__,
    steps=[syn, early, f.synack(delay=0.1),
           f.data("client", b"GET / HTTP/1.0\r\n\r\n", delay=0.1),
           f.data("server", b"HTTP/1.0 204 No Content\r\n\r\n", delay=0.1),
           f.ack("client", delay=0.1)],
)
