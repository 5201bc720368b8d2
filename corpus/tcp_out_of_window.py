"""An established connection, then segments the window tracker rejects: data far beyond
the receiver's window (seq + 10,000,000) and an ACK for data never sent (ACK above the
upper bound) are INVALID; the connection then carries on normally."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40030), server=("203.0.113.2", 80))
steps = [*f.handshake(delay=0.1), f.data("client", b"hello\n", delay=0.1),
         f.ack("server", delay=0.1)]
far = (f.next_seq("client") + 10_000_000) & 0xFFFFFFFF
steps.append(f.segment("client", "PA", b"far away\n", seq=far, delay=0.1,
                       note="seq 10,000,000 beyond the window"))
bogus_ack = (f.next_seq("server") + 5_000_000) & 0xFFFFFFFF
steps.append(f.segment("client", "A", ack=bogus_ack, delay=0.1,
                       note="acknowledges 5,000,000 bytes the server never sent"))
steps += [f.data("client", b"still here\n", delay=0.1), f.ack("server", delay=0.1)]

SCENARIO = Scenario(name="tcp_out_of_window", description=__doc__, steps=steps)
