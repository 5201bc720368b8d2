"""The same mid-stream segments as tcp_pickup, but with nf_conntrack_tcp_loose=0: the
kernel refuses to pick up connections, every segment is INVALID and no entry appears."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40020), server=("203.0.113.2", 443),
            client_isn=0x30000000, server_isn=0x60000000)

SCENARIO = Scenario(
    name="tcp_pickup_noloose",
    description=__doc__,
    sysctls={"nf_conntrack_tcp_loose": 0},
    steps=[
        f.data("client", b"\x17\x03\x03\x00\x10" + bytes(16), delay=0.1),
        f.ack("server", delay=0.1),
        f.data("server", b"\x17\x03\x03\x00\x20" + bytes(32), delay=0.1),
        f.ack("client", delay=0.1),
        f.data("client", b"\x17\x03\x03\x00\x10" + bytes(16), delay=0.1),
    ],
)
