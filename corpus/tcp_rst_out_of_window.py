"""A RST far outside the receive window (and one just below it, an old sequence number) is
INVALID and leaves the entry ESTABLISHED; data keeps flowing; then an exact RST from the
server ends it."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40150), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /\r\n", delay=0.1),
         f.ack("server", delay=0.1)]
nxt = f.next_seq("client")
steps += [
    f.rst("client", seq=nxt + 0x40000000, delay=0.1),
    f.rst("client", seq=nxt - 20000, delay=0.1),
    f.data("server", b"HTTP/1.0 200 OK\r\n\r\n", delay=0.1),
    f.ack("client", delay=0.1),
    f.rst("server", delay=0.1),
]

SCENARIO = Scenario(name="tcp_rst_out_of_window", description=__doc__, steps=steps)
