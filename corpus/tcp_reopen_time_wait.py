"""A full session ending in TIME_WAIT, then a new SYN with the same ports and a higher ISN:
the kernel kills the TIME_WAIT entry and creates a new one (NEW), handshake completes."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

a = TcpFlow(client=("198.51.100.2", 40330), server=("203.0.113.2", 80))
b = TcpFlow(client=("198.51.100.2", 40330), server=("203.0.113.2", 80),
            client_isn=a.client_isn + 100_000, server_isn=0x0BADF00D)

SCENARIO = Scenario(
    name="tcp_reopen_time_wait",
    description=__doc__,
    steps=[
        *a.handshake(delay=0.1),
        a.data("client", b"bye\n", delay=0.1),
        a.fin("client", delay=0.1),
        a.fin("server", delay=0.1),
        a.ack("client", delay=0.5),
        Snapshot("TIME_WAIT"),
        *b.handshake(delay=0.1),
        b.data("client", b"hello again\n", delay=0.1),
    ],
)
