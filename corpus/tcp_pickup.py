"""Mid-stream pickup (nf_conntrack_tcp_loose=1, the default): data and ACKs of a connection
whose handshake fw never saw.  The first segment creates an ESTABLISHED entry (NEW
packet, timeout capped at 300 s); the reply sets SEEN_REPLY, the next original-direction
segment makes it ASSURED."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40020), server=("203.0.113.2", 443),
            client_isn=0x30000000, server_isn=0x60000000)

SCENARIO = Scenario(
    name="tcp_pickup",
    description=__doc__,
    sysctls={"nf_conntrack_tcp_loose": 1},
    steps=[
        f.data("client", b"\x17\x03\x03\x00\x10" + bytes(16), delay=0.1),
        f.ack("server", delay=0.1),
        f.data("server", b"\x17\x03\x03\x00\x20" + bytes(32), delay=0.1),
        f.ack("client", delay=0.1),
        f.data("client", b"\x17\x03\x03\x00\x10" + bytes(16), delay=0.1),
    ],
)
