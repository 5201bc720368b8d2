"""SYN, SYN/ACK, the same SYN/ACK again (retransmission), then the client's ACK."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40310), server=("203.0.113.2", 80))
syn = f.syn(delay=0.1)
synack = f.synack(delay=1.0)

SCENARIO = Scenario(
    name="tcp_synack_retransmit",
    description=__doc__,
    steps=[syn, synack, f.segment("server", "SA", seq=f.server_isn, delay=0.1,
                                  note="retransmitted SYN/ACK"),
           f.ack("client", delay=0.1)],
)
