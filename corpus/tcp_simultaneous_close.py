"""Simultaneous close: both ends send FIN/ACK before seeing the other's FIN, then both
ACK the other's FIN.  conntrack's single state goes ESTABLISHED -> FIN_WAIT (first FIN)
-> LAST_ACK (the other FIN) -> TIME_WAIT (the first ACK of a FIN)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40110), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"bye\n", delay=0.1),
         f.ack("server", delay=0.1)]
cfin_seq = f.next_seq("client")
sfin_seq = f.next_seq("server")
steps += [
    f.segment("client", "FA", ack=sfin_seq, delay=0.1),
    f.segment("server", "FA", ack=cfin_seq, delay=0.1),
    f.ack("client", delay=0.1),
    f.ack("server", delay=0.1),
]

SCENARIO = Scenario(name="tcp_simultaneous_close", description=__doc__, steps=steps)
