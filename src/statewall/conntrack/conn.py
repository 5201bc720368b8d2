"""One connection-tracking entry (``struct nf_conn``), its status bits and ctinfo values.

Owns: the entry's data layout, ``IPS_*`` status bits, ``IP_CT_*`` ctinfo values, event bits.
Must not know: protocol state machines (they keep their state in ``Conn.l4``), tables,
formatting. Follows include/uapi/linux/netfilter/nf_conntrack_common.h and
include/net/netfilter/nf_conntrack.h.

A tuple is a plain Python tuple ``(src, dst, proto, a, b, zone)``: addresses as 4- or 16-byte
``bytes``; for port protocols ``a, b`` = source and destination port; for ICMP/ICMPv6
``a`` = identifier and ``b`` = type << 8 | code; generic protocols use 0, 0.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .helpers import Help

Tuple = tuple[bytes, bytes, int, int, int, int]

# tuple field indexes
T_SRC: Final = 0
T_DST: Final = 1
T_PROTO: Final = 2
T_A: Final = 3
T_B: Final = 4
T_ZONE: Final = 5


class IPS(IntFlag):
    """``enum ip_conntrack_status``."""

    EXPECTED = 1 << 0
    SEEN_REPLY = 1 << 1
    ASSURED = 1 << 2
    CONFIRMED = 1 << 3
    SRC_NAT = 1 << 4
    DST_NAT = 1 << 5
    SEQ_ADJUST = 1 << 6
    SRC_NAT_DONE = 1 << 7
    DST_NAT_DONE = 1 << 8
    DYING = 1 << 9
    FIXED_TIMEOUT = 1 << 10
    TEMPLATE = 1 << 11
    NAT_CLASH = 1 << 12   # the old IPS_UNTRACKED bit, reused in-kernel for clash entries
    HELPER = 1 << 13
    OFFLOAD = 1 << 14
    HW_OFFLOAD = 1 << 15


# plain ints for the hot path
IPS_EXPECTED: Final = 1
IPS_SEEN_REPLY: Final = 2
IPS_ASSURED: Final = 4
IPS_CONFIRMED: Final = 8
IPS_SRC_NAT: Final = 16
IPS_DST_NAT: Final = 32
IPS_DYING: Final = 1 << 9
IPS_FIXED_TIMEOUT: Final = 1 << 10
IPS_NAT_CLASH: Final = 1 << 12
IPS_HELPER: Final = 1 << 13


class CTInfo(IntEnum):
    """``enum ip_conntrack_info``."""

    IP_CT_ESTABLISHED = 0
    IP_CT_RELATED = 1
    IP_CT_NEW = 2
    IP_CT_ESTABLISHED_REPLY = 3
    IP_CT_RELATED_REPLY = 4
    IP_CT_UNTRACKED = 7


IP_CT_ESTABLISHED: Final = 0
IP_CT_RELATED: Final = 1
IP_CT_NEW: Final = 2
IP_CT_IS_REPLY: Final = 3
IP_CT_ESTABLISHED_REPLY: Final = 3
IP_CT_RELATED_REPLY: Final = 4
IP_CT_UNTRACKED: Final = 7

IP_CT_DIR_ORIGINAL: Final = 0
IP_CT_DIR_REPLY: Final = 1


class IPCT(IntFlag):
    """``enum ip_conntrack_events`` (the bits merged into one event per packet)."""

    NEW = 1 << 0
    RELATED = 1 << 1
    DESTROY = 1 << 2
    REPLY = 1 << 3
    ASSURED = 1 << 4
    PROTOINFO = 1 << 5
    HELPER = 1 << 6
    MARK = 1 << 7
    SEQADJ = 1 << 8
    SECMARK = 1 << 9
    LABEL = 1 << 10
    SYNPROXY = 1 << 11


IPCT_NEW: Final = 1
IPCT_RELATED: Final = 2
IPCT_DESTROY: Final = 4
IPCT_REPLY: Final = 8
IPCT_ASSURED: Final = 16
IPCT_PROTOINFO: Final = 32
IPCT_HELPER: Final = 64
IPCT_MARK: Final = 128


# why an entry was destroyed: ``Tracker.kill``'s ``why``, readable as ``Tracker.why`` by a
# DESTROY listener (flow records). Expiry paths say END_TIMEOUT; a kill without a reason
# (protocol reopen, NAT eviction, MASQUERADE) is END_KILLED.
END_TIMEOUT: Final = "timeout"
END_KILLED: Final = "killed"
END_DELETED: Final = "deleted"          # conntrack -D / -F
END_EARLY_DROP: Final = "early_drop"
END_RST: Final = "rst"                  # TCP: the only answer was a RST


def ctinfo_state(ct: object, ctinfo: int) -> str:
    """The xt_state name of a packet: NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED."""
    if ct is None:
        return "UNTRACKED" if ctinfo == IP_CT_UNTRACKED else "INVALID"
    return _STATE_NAMES[ctinfo]


_STATE_NAMES: Final = ("ESTABLISHED", "RELATED", "NEW", "ESTABLISHED", "RELATED")


class Conn:
    """A connection entry. Hot fields are plain attributes; nothing is computed lazily.

    orig, reply: the two tuples. status: IPS_* bits (int). timeout: absolute expiry time in
    the caller's clock (seconds, float); the entry is dead when ``now >= timeout``.
    l3num/proto: address family (2/10) and L4 protocol number. state: protocol state number
    (TCP_CONNTRACK_*; 0 for stateless protocols). l4: protocol-private data (TCP window
    tracking, UDP stream timestamp) or None. mark: ct mark. zone: conntrack zone id.
    acct: [orig packets, orig bytes, reply packets, reply bytes]. master: the master Conn of
    an expected connection. helper: helper name or None. id: the ctnetlink id. start: time of
    the first packet. events: pending IPCT_* bits for this packet. bucket: the expiry bucket
    the entry is registered in (owned by the table). help: the helper extension
    (``helpers.Help``: helper, expectations, helper state), created only for entries with
    a helper or made from an expectation, else None. nat: the NAT extension
    (``statewall.nat.core.NatExt``: MASQUERADE's interface, sequence adjustment), created
    only for entries that need one, else None; the binding itself is the reply tuple and
    the IPS_*NAT* bits. fc: the rule traversals cached for the established packets of
    each direction (``statewall.flowcache``), or None. rule: the filter-table rule (or policy) that accepted the entry's
    first packet, e.g. "filter/FORWARD#3" (the engine's shared source string, so one
    pointer per entry), set at confirm; None without rules or for entries made by
    ``conntrack -I``.
    """

    __slots__ = ("orig", "reply", "status", "timeout", "l3num", "proto", "state", "l4",
                 "mark", "zone", "acct", "master", "helper", "id", "start", "events",
                 "bucket", "help", "nat", "fc", "rule")

    orig: Tuple
    reply: Tuple
    status: int
    timeout: float
    l3num: int
    proto: int
    state: int
    l4: Any
    mark: int
    zone: int
    acct: list[int]
    master: Conn | None
    helper: str | None
    id: int
    start: float
    events: int
    bucket: float
    help: Help | None
    nat: Any
    fc: Any
    rule: str | None

    def __init__(self, orig: Tuple, reply: Tuple, l3num: int, now: float) -> None:
        self.orig = orig
        self.reply = reply
        self.status = 0
        self.timeout = now
        self.l3num = l3num
        self.proto = orig[2]
        self.state = 0
        self.l4 = None
        self.mark = 0
        self.zone = orig[5]
        self.acct = [0, 0, 0, 0]
        self.master = None
        self.helper = None
        self.id = 0
        self.start = now
        self.events = 0
        self.bucket = -1.0
        self.help = None
        self.nat = None
        self.fc = None              # flowcache.FlowEntry per direction, or None
        self.rule = None

    def __repr__(self) -> str:
        return f"<Conn id={self.id} proto={self.proto} state={self.state} status={self.status:#x}>"
