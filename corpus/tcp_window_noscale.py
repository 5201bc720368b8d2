"""Window scaling off (the SYN/ACK has no window-scale option, so neither side scales;
windows are raw 16-bit values): the same segment 70000 bytes ahead as in
tcp_window_scaling is now beyond what the receiver advertised - conntrack lets it through
but ignores it ("bytes more than expected": no state or timeout update); one 30000 bytes
ahead is in the window; the retransmission of already acknowledged data that follows is
ignored the same way."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40171), server=("203.0.113.2", 80), wscale=7)
f._ends["client"].win = 65000
f._ends["server"].win = 65000
syn = f.syn(delay=0.1)
synack = f.synack(options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (3000000, 1000000)),
                           ("NOP", None), ("NOP", None)], delay=0.1)
steps = [syn, synack, f.ack("client", delay=0.1), f.data("client", b"a" * 1000, delay=0.1),
         f.ack("server", delay=0.1)]
base = f.next_seq("client")
steps += [
    f.segment("client", "PA", b"b" * 1000, seq=base + 70000, delay=0.1),
    f.segment("client", "PA", b"c" * 1000, seq=base + 30000, delay=0.1),
    f.data("client", b"d" * 500, delay=0.1),
]

SCENARIO = Scenario(name="tcp_window_noscale", description=__doc__, steps=steps)
