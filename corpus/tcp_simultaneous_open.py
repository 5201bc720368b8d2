"""TCP simultaneous open: both ends send a SYN, then each answers the other's SYN with a
SYN/ACK, then ACKs (SYN_SENT -> SYN_SENT2 -> SYN_RECV -> ESTABLISHED)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40300), server=("203.0.113.2", 40301))
isn_c, isn_s = f.client_isn, f.server_isn

SCENARIO = Scenario(
    name="tcp_simultaneous_open",
    description=__doc__,
    steps=[
        f.syn(delay=0.1),
        f.segment("server", "S", delay=0.1),
        f.segment("client", "SA", seq=isn_c, delay=0.1),
        f.segment("server", "SA", seq=isn_s, delay=0.1),
        f.ack("client", delay=0.1),
        f.ack("server", delay=0.1),
        f.data("client", b"hi\n", delay=0.1),
    ],
)
