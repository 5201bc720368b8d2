"""A SYN, then the client resets its own attempt before any reply: the kernel deletes an
entry that has not seen a reply as soon as a RST passes (no CLOSE state lingers)."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

f = TcpFlow(client=("198.51.100.2", 40011), server=("203.0.113.2", 80))

SCENARIO = Scenario(
    name="tcp_rst_before_reply",
    description=__doc__,
    steps=[
        f.syn(delay=0.5),
        f.rst("client", with_ack=False, delay=0.5),
        Snapshot("0.5 s after the RST"),
    ],
)
