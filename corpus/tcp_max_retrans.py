"""Retransmission limit: the server sends a segment and retransmits it (same sequence,
acknowledgement and window) while the client stays silent.  Unacknowledged data caps the
timeout at nf_conntrack_tcp_timeout_unacknowledged (300 s); after
nf_conntrack_tcp_max_retrans (3) retransmissions it drops to
nf_conntrack_tcp_timeout_max_retrans (lowered to 60 s here); the client's ACK restores
5 days."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40200), server=("203.0.113.2", 80), timestamps=False)
steps = [*f.handshake(delay=0.1), f.data("client", b"GET /\r\n", delay=0.1),
         f.ack("server", delay=0.1), f.ack("client", delay=0.1)]
seq = f.next_seq("server")
payload = b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 400
steps.append(f.data("server", payload, delay=0.2))
for _ in range(4):
    steps.append(f.segment("server", "PA", payload, seq=seq, delay=0.2))
steps.append(f.ack("client", delay=0.1))

SCENARIO = Scenario(name="tcp_max_retrans", description=__doc__, steps=steps,
                    sysctls={"nf_conntrack_tcp_timeout_max_retrans": 60})
