"""Protocol dispatch: a 256-slot list from IP protocol number to tracker, per profile.

Owns: which tracker handles which protocol in each profile (``nf_ct_l4proto_find``).
Must not know: what the trackers do. The default slot is the generic tracker.
"""

from __future__ import annotations

from typing import Final

from .base import L4Tracker
from .generic import Generic
from .gre import Gre
from .icmp import Icmp
from .icmpv6 import Icmpv6
from .udp import Udp

# names for /proc/net/nf_conntrack when a protocol has no tracker of its own
PROTO_NAMES: Final[dict[int, str]] = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre",
                                      58: "icmpv6", 132: "sctp", 136: "udplite"}


def trackers(profile: str) -> list[L4Tracker]:
    """The dispatch list for ``profile`` ("linux" or "linux-2.4")."""
    generic: L4Tracker = Generic()
    table: list[L4Tracker] = [generic] * 256
    if profile == "linux-2.4":
        from .tcp24 import Tcp24
        table[6] = Tcp24()
        table[17] = Udp(v24=True)
        table[1] = Icmp(v24=True)
        return table
    from .tcp import Tcp
    table[6] = Tcp()
    table[17] = Udp()
    table[136] = Udp(lite=True)
    table[1] = Icmp()
    table[58] = Icmpv6()
    table[47] = Gre()
    return table
