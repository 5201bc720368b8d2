"""Window scaling on (shift 7 both ways, raw window 1000 = 128000 bytes): a segment
70000 bytes ahead of the acknowledged data is still inside the scaled window and accepted
(the entry's timeout drops to 300 s: data unacknowledged); so is its acknowledgement."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40170), server=("203.0.113.2", 80), wscale=7)
f._ends["client"].win = 1000
f._ends["server"].win = 1000
steps = [*f.handshake(delay=0.1), f.data("client", b"a" * 1000, delay=0.1),
         f.ack("server", delay=0.1)]
ahead = f.next_seq("client") + 70000
steps += [
    f.segment("client", "PA", b"b" * 1000, seq=ahead, delay=0.1),
    f.segment("server", "A", delay=0.1),
    f.data("client", b"c" * 500, delay=0.1),
]

SCENARIO = Scenario(name="tcp_window_scaling", description=__doc__, steps=steps)
