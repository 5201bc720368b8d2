"""Selective acknowledgements (SACK permitted in both SYNs): the server sends three
segments, the client acknowledges the first and SACKs the third (the second was lost);
the server retransmits the second; a cumulative ACK follows.  Then the client SACKs data
the server never sent (a block beyond everything sent): INVALID."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40180), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /big\r\n", delay=0.1)]
s0 = f.next_seq("server")
seg = 1000
steps += [f.data("server", b"1" * seg, delay=0.1), f.data("server", b"2" * seg, delay=0.1),
          f.data("server", b"3" * seg, delay=0.1)]
end = f.next_seq("server")
cl = f._ends["client"]


def sack_ack(ack: int, blocks: list[tuple[int, int]], delay: float) -> object:
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (cl.tsval, cl.peer_tsval)),
            ("NOP", None), ("NOP", None), ("SAck", tuple(x for b in blocks for x in b))]
    return f.segment("client", "A", ack=ack, options=opts, delay=delay)


steps += [
    sack_ack(s0 + seg, [(s0 + 2 * seg, end)], 0.1),
    f.segment("server", "PA", b"2" * seg, seq=s0 + seg, delay=0.1),
    f.ack("client", delay=0.1),
    sack_ack(end, [(end + 100000, end + 101000)], 0.1),
    f.data("client", b"thanks\n", delay=0.1),
]

SCENARIO = Scenario(name="tcp_sack", description=__doc__, steps=steps)
