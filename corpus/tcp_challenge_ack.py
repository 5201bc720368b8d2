"""An established connection whose client restarts and sends a new SYN on the same ports
(new ISN): conntrack ignores the SYN (the entry stays ESTABLISHED); the server answers with
a challenge ACK for the old connection; the client's RST with exactly that ACK's
acknowledgement number closes the entry; the client's retransmitted SYN then opens a new
connection (NEW)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

f = TcpFlow(client=("198.51.100.2", 40130), server=("203.0.113.2", 22))
g = TcpFlow(client=("198.51.100.2", 40130), server=("203.0.113.2", 22),
            client_isn=0x0C0FFEE0, server_isn=0x5EED0001)
steps = [*f.handshake(delay=0.1), f.data("client", b"SSH-2.0-lab\r\n", delay=0.1),
         f.ack("server", delay=0.1)]
new_syn = g.syn(delay=0.1)
steps.append(new_syn)
# challenge ACK: the server's current seq, acking what it really expects
steps.append(f.ack("server", delay=0.1))
steps.append(g.rst("client", with_ack=False, seq=f.next_seq("client"), delay=0.2))
steps.append(Snapshot("after the RST"))
steps.append(g.segment("client", "S", seq=g.client_isn, advance=False, delay=0.1))
steps += [g.synack(delay=0.1), g.ack("client", delay=0.1)]

SCENARIO = Scenario(name="tcp_challenge_ack", description=__doc__, steps=steps)
