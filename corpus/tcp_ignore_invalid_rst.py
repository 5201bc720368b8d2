"""nf_conntrack_tcp_ignore_invalid_rst=1: a RST with an old sequence number (below what the
peer has acknowledged: "invalid rst", INVALID by default - see tcp_rst_out_of_window) is
let through as part of the connection without the window check: the entry stays
ESTABLISHED, its timeout drops to 10 s; a RST far beyond the window is still INVALID (it
fails the window check, not the RST check); the server's data restores the timeout; an
exact RST closes."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40240), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /\r\n", delay=0.1),
         f.ack("server", delay=0.1)]
nxt = f.next_seq("client")
steps += [f.rst("client", seq=nxt - 20000, delay=0.1),
          f.rst("client", seq=nxt + 0x40000000, delay=0.1),
          f.data("server", b"still here\n", delay=0.1),
          f.rst("client", seq=nxt, delay=0.1)]

SCENARIO = Scenario(name="tcp_ignore_invalid_rst", description=__doc__,
                    sysctls={"nf_conntrack_tcp_ignore_invalid_rst": 1}, steps=steps)
