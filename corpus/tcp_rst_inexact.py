"""RST handling in ESTABLISHED: a RST whose sequence number is inside the window but not
the exact next one keeps the entry ESTABLISHED (a challenge ACK may follow); the server's
challenge ACK; then a RST with exactly the expected sequence number closes it (CLOSE)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40140), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"x" * 100, delay=0.1),
         f.ack("server", delay=0.1), f.data("server", b"y" * 200, delay=0.1),
         f.ack("client", delay=0.1)]
exact = f.next_seq("client")
steps += [
    f.rst("client", seq=exact + 1000, delay=0.1),
    f.ack("server", delay=0.1),
    f.rst("client", seq=exact, delay=0.1),
    f.data("server", b"late", delay=0.1),
]

SCENARIO = Scenario(name="tcp_rst_inexact", description=__doc__, steps=steps)
