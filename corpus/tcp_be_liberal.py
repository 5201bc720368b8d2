"""nf_conntrack_tcp_be_liberal=1: out-of-window segments (data far beyond the window, an ACK
for data never sent) are accepted and update the window data; a RST far out of the window
keeps the entry ESTABLISHED (not the exact sequence number) but drops its timeout to 10 s;
the data after it restores the timeout."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40230), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /\r\n", delay=0.1),
         f.ack("server", delay=0.1)]
nxt_c, nxt_s = f.next_seq("client"), f.next_seq("server")
steps += [
    f.segment("client", "PA", b"far ahead", seq=nxt_c + 0x20000000, delay=0.1),
    f.segment("server", "A", ack=nxt_c + 0x30000000, delay=0.1),
    f.rst("client", seq=nxt_c + 0x40000000, delay=0.1),
    f.data("client", b"in window\n", delay=0.1),
    f.data("server", b"ok\n", delay=0.1),
]

SCENARIO = Scenario(name="tcp_be_liberal", description=__doc__,
                    sysctls={"nf_conntrack_tcp_be_liberal": 1}, steps=steps)
