"""Handshake, a request and its answer, then the server closes first: FIN/ACK from the
server (FIN_WAIT), the client's ACK (CLOSE_WAIT), the client's FIN (LAST_ACK) and the
server's last ACK (TIME_WAIT, 120 s)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

f = TcpFlow(client=("198.51.100.2", 40100), server=("203.0.113.2", 80))

SCENARIO = Scenario(
    name="tcp_close_server_first",
    description=__doc__,
    steps=[
        *f.handshake(delay=0.1),
        f.data("client", b"GET / HTTP/1.0\r\n\r\n", delay=0.1),
        f.data("server", b"HTTP/1.0 204 No Content\r\n\r\n", delay=0.1),
        f.fin("server", delay=0.1),
        f.ack("client", delay=0.1),
        f.fin("client", delay=0.1),
        f.ack("server", delay=0.3),
        Snapshot("TIME_WAIT"),
    ],
)
