"""TCP tracking as Linux 2.4.0 (January 2001) did it: a state table and nothing more.

Owns: the 2.4.0 TCP states (their own numbering and names, LISTEN included), its transition
table ``tcp_conntracks[2][5][10]``, the flag class (SYN/ACK counts as SYN), the handshake
check for ASSURED and the timeout table. Must not know: the modern tracker (no window
tracking, no flag or checksum checks, no IGNORE), tables, output formats.
Follows net/ipv4/netfilter/ip_conntrack_proto_tcp.c and the calls into it from
ip_conntrack_core.c (``init_conntrack``, ``ip_conntrack_in``) of Linux 2.4.0.

Per-connection state (``Conn.l4``): the ``handshake_ack`` int (server ISN + 1 from the
SYN/ACK, 0 before). ``Conn.state`` holds the 2.4 state number.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Final

from ..conn import IPCT_ASSURED, IPCT_PROTOINFO, IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY
from .base import CONTINUE, INVALID, NF_ACCEPT

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker
    from ..sysctl import Settings


class Tcp24Conntrack(IntEnum):
    """2.4.0 ``enum tcp_conntrack`` (a different order from today's)."""

    NONE = 0
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT = 4
    TIME_WAIT = 5
    CLOSE = 6
    CLOSE_WAIT = 7
    LAST_ACK = 8
    LISTEN = 9
    MAX = 10


TCP24_NAMES: Final = ("NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
                      "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN")

_sNO: Final = 0
_sES: Final = 1
_sSS: Final = 2
_sSR: Final = 3
_sFW: Final = 4
_sTW: Final = 5
_sCL: Final = 6
_sCW: Final = 7
_sLA: Final = 8
_sLI: Final = 9
_sIV: Final = 10

# flag class (get_conntrack_index of 2.4.0): rst > syn (SYN/ACK too) > fin > ack > none
TCP24_SYN: Final = 0
TCP24_FIN: Final = 1
TCP24_ACK: Final = 2
TCP24_RST: Final = 3
TCP24_NONE: Final = 4

# tcp_conntracks[dir][class][old state] of 2.4.0
TCP24_CONNTRACKS: Final[tuple[tuple[tuple[int, ...], ...], ...]] = (
    (   # ORIGINAL
        #  sNO   sES   sSS   sSR   sFW   sTW   sCL   sCW   sLA   sLI
        (_sSS, _sES, _sSS, _sSR, _sSS, _sSS, _sSS, _sSS, _sSS, _sLI),   # syn
        (_sTW, _sFW, _sSS, _sTW, _sFW, _sTW, _sCL, _sTW, _sLA, _sLI),   # fin
        (_sES, _sES, _sSS, _sES, _sFW, _sTW, _sCL, _sCW, _sLA, _sES),   # ack
        (_sCL, _sCL, _sSS, _sCL, _sCL, _sTW, _sCL, _sCL, _sCL, _sCL),   # rst
        (_sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV),   # none
    ),
    (   # REPLY
        #  sNO   sES   sSS   sSR   sFW   sTW   sCL   sCW   sLA   sLI
        (_sSR, _sES, _sSR, _sSR, _sSR, _sSR, _sSR, _sSR, _sSR, _sSR),   # syn
        (_sCL, _sCW, _sSS, _sTW, _sTW, _sTW, _sCL, _sCW, _sLA, _sLI),   # fin
        (_sCL, _sES, _sSS, _sSR, _sFW, _sTW, _sCL, _sCW, _sCL, _sLI),   # ack
        (_sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sLA, _sLI),   # rst
        (_sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV),   # none
    ),
)

# tcp_timeouts[] of 2.4.0 by state: a sysctl leaf of the linux-2.4 profile, or fixed seconds
TCP24_TIMEOUTS: Final[tuple[str | int, ...]] = (
    1800,                                        # NONE: 30 min
    "nf_conntrack_tcp_timeout_established",      # 5 days
    "nf_conntrack_tcp_timeout_syn_sent",         # 2 min
    "nf_conntrack_tcp_timeout_syn_recv",         # 60 s
    "nf_conntrack_tcp_timeout_fin_wait",         # 2 min
    "nf_conntrack_tcp_timeout_time_wait",        # 2 min
    "nf_conntrack_tcp_timeout_close",            # 10 s
    "nf_conntrack_tcp_timeout_close_wait",       # 60 s
    "nf_conntrack_tcp_timeout_last_ack",         # 30 s
    120,                                         # LISTEN: 2 min
)

_FIN: Final = 0x01
_SYN: Final = 0x02
_RST: Final = 0x04
_ACK: Final = 0x10


def get_conntrack_index24(flags: int) -> int:
    if flags & _RST:
        return TCP24_RST
    if flags & _SYN:
        return TCP24_SYN
    if flags & _FIN:
        return TCP24_FIN
    if flags & _ACK:
        return TCP24_ACK
    return TCP24_NONE


def timeout24(s: Settings, state: int) -> int:
    t = TCP24_TIMEOUTS[state]
    return t if isinstance(t, int) else int(getattr(s, t))


class Tcp24:
    """The 2.4.0 TCP tracker for the ``linux-2.4`` profile."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "tcp"

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        if len(pkt.buf) - pkt.l4off < 8:
            return None
        return (pkt.sport, pkt.dport)

    def invert(self, a: int, b: int) -> tuple[int, int] | None:
        return (b, a)

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        """2.4.0 checked nothing before the lookup (no checksum, no flag combinations)."""
        return CONTINUE

    def new(self, tracker: Tracker, ct: Conn, pkt: Packet, now: float) -> bool:
        """``tcp_new``: every packet with a flag the table knows starts a connection (a
        lone FIN as TIME_WAIT, a RST as CLOSE, SYN/ACK as SYN_SENT). The returned timeout
        is the entry's until a packet refreshes it."""
        state = TCP24_CONNTRACKS[0][get_conntrack_index24(pkt.flags)][_sNO]
        if state == _sIV:
            pkt.reason = "invalid new"
            return False
        ct.state = state
        ct.l4 = 0
        ct.timeout = now + timeout24(tracker.settings, state)
        return True

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        """``tcp_packet`` of 2.4.0."""
        buf = pkt.buf
        off = pkt.l4off
        tcplen = len(buf) - off
        # "guaranteed to have the base header, but maybe not the options"; statewall also
        # refuses a segment too short to hold the flag byte the kernel went on to read
        if tcplen < 14 or tcplen < (buf[off + 12] >> 4) << 2:
            pkt.reason = "truncated packet"
            return INVALID
        flags = pkt.flags
        index = get_conntrack_index24(flags)
        old = ct.state
        new = TCP24_CONNTRACKS[dir][index][old]
        if new == _sIV:
            pkt.reason = f"invalid dir={dir} index={index} conntrack={old}"
            return INVALID
        ct.state = new
        if new != old:
            ct.events |= IPCT_PROTOINFO
        # poor man's window tracking: remember the SYN/ACK for the handshake check
        if old == _sSS and dir == 1 and flags & _SYN and flags & _ACK:
            ct.l4 = (pkt.seq + 1) & 0xFFFFFFFF
        status = ct.status
        if not status & IPS_SEEN_REPLY and flags & _RST:
            # the only reply is a RST: delete now. (An unconfirmed entry has no timer to
            # delete in 2.4.0: it survives with the timeout tcp_new gave it.)
            tracker.acct(ct, pkt, dir)
            if status & IPS_CONFIRMED:
                tracker.kill(ct, now)
            return NF_ACCEPT
        if (old == _sSR and dir == 0 and flags & _ACK and not flags & _SYN
                and pkt.ack == ct.l4 and not status & IPS_ASSURED):
            ct.status = status | IPS_ASSURED
            ct.events |= IPCT_ASSURED
        tracker.refresh_acct(ct, pkt, dir, now, timeout24(tracker.settings, new))
        return NF_ACCEPT

    def state_name(self, ct: Conn) -> str | None:
        return TCP24_NAMES[ct.state]

    def can_early_drop(self, ct: Conn) -> bool:
        """2.4.0 early drop only takes non-ASSURED entries; TCP adds nothing."""
        return False
