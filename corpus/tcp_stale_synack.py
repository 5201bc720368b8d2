"""Stale SYN/ACKs.  After the SYN, a SYN/ACK acknowledging a sequence number far below the
SYN's (the answer to an attempt long gone) fails the window check and is ignored: it passes
as the reply (the entry loses [UNREPLIED]) but stays SYN_SENT.  The right SYN/ACK and the ACK establish the connection; then a
late duplicate of a SYN/ACK arrives in ESTABLISHED: ignored (it passes, the entry is
untouched)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40120), server=("203.0.113.2", 80))
syn = f.syn(delay=0.1)
stale = f.segment("server", "SA", ack=f.client_isn - 200000, advance=False, delay=0.1)
synack = f.synack(delay=0.1)
steps = [syn, stale, synack, f.ack("client", delay=0.1), f.data("client", b"hello\n", delay=0.1)]
steps.append(f.segment("server", "SA", seq=f.server_isn, ack=f.client_isn + 1, advance=False,
                       delay=0.1))
steps.append(f.data("server", b"welcome\n", delay=0.1))

SCENARIO = Scenario(name="tcp_stale_synack", description=__doc__, steps=steps)
