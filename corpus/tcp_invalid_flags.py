"""TCP flag combinations conntrack rejects: SYN|FIN and a segment with no flags, first on
a fresh 4-tuple (INVALID, no entry), then inside an established connection (INVALID, the
entry is untouched), followed by a normal segment."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("198.51.100.2", 40340), server=("203.0.113.2", 80))
g = TcpFlow(client=("198.51.100.2", 40341), server=("203.0.113.2", 80))

SCENARIO = Scenario(
    name="tcp_invalid_flags",
    description=__doc__,
    steps=[
        g.segment("client", "SF", delay=0.1, advance=False, note="SYN|FIN, no connection"),
        g.segment("client", "", delay=0.1, advance=False, note="no flags, no connection"),
        *f.handshake(delay=0.1),
        f.segment("client", "SF", seq=f.next_seq("client"), delay=0.1, note="SYN|FIN"),
        f.segment("client", "", seq=f.next_seq("client"), delay=0.1, note="no flags"),
        f.data("client", b"ok\n", delay=0.1),
    ],
)
