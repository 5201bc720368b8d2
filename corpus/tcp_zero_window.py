"""Zero window: the client's receive buffer is full and it advertises window 0; the server
sends 1-byte window probes (accepted); a full segment far beyond the zero window passes but
is ignored by the tracker; then the client opens its window again and the data flows."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40190), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /stream\r\n", delay=0.1),
         f.data("server", b"x" * 1200, delay=0.1)]
steps.append(f.segment("client", "A", window=0, delay=0.1))
probe_seq = f.next_seq("server")
steps += [
    f.segment("server", "A", b"x", seq=probe_seq, delay=0.1),
    f.segment("client", "A", window=0, delay=0.1),
    f.segment("server", "A", b"x", seq=probe_seq, delay=0.1),
    f.segment("server", "PA", b"y" * 1400, seq=probe_seq + 5000, delay=0.1),
    f.segment("client", "A", window=300, delay=0.1),
    f.data("server", b"z" * 1000, delay=0.1),
    f.ack("client", delay=0.1),
]

SCENARIO = Scenario(name="tcp_zero_window", description=__doc__, steps=steps)
