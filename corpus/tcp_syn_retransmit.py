"""A SYN retransmitted after 1 s and again after 2 s more (same ISN, as Linux does): the
retransmissions do not refresh the SYN_SENT timer; then the handshake completes."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

f = TcpFlow(client=("198.51.100.2", 40320), server=("203.0.113.2", 80))
first = f.syn(delay=1.0)
steps = [first, Snapshot("1 s after the first SYN"),
         f.segment("client", "S", seq=f.client_isn, delay=2.0, note="retransmission"),
         Snapshot("2 s after the first retransmission"),
         f.segment("client", "S", seq=f.client_isn, delay=0.1, note="retransmission"),
         f.synack(delay=0.1), f.ack("client", delay=0.1)]

SCENARIO = Scenario(name="tcp_syn_retransmit", description=__doc__, steps=steps)
