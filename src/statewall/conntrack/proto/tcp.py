"""TCP connection tracking as the current kernel does it: state table and window tracking.

Owns: the TCP states and names, the transition table ``tcp_conntracks[2][6][10]``, the flag
class of a segment, the header checks before lookup (length, checksum, flag combination),
``tcp_new`` (first packet, mid-stream pickup), ``nf_conntrack_tcp_packet`` (reopen, ignored
packets and SYN/ACK resync, RST checks, challenge ACKs, simultaneous open), ``tcp_in_window``
(Rooij's four window checks with scaling, SACK and the 6.1+ IGNORE outcomes), retransmission
counting and the timeout choice. Must not know: the table, other protocols, NAT (only a
per-direction sequence offset hook, always 0 until seqadj exists), output formats.
Follows net/netfilter/nf_conntrack_proto_tcp.c of Linux 6.17/6.18 and
include/uapi/linux/netfilter/nf_conntrack_tcp.h.

Per-connection state (``Conn.l4``) is one ``array('I')`` of ``L4_SIZE`` unsigned 32-bit
slots laid out like ``struct ip_ct_tcp`` (the state itself is ``Conn.state``): for direction
d, ``seen[d]`` is slots ``6*d + TD_END .. 6*d + TD_FLAGS``; then the ``last_*`` fields and the
NAT sequence offsets. Values are stored masked to their kernel width, so u32/u16/u8
wrap-around (``retrans`` is a u8) behaves as in C. All sequence arithmetic is mod 2**32;
``before(a, b)`` is ``(a - b) mod 2**32 >= 2**31``.

Accelerated: ``TcpPy`` is the reference implementation. ``Tcp`` (what the registry uses) is
``TcpPy`` whose ``error``, ``new`` and ``packet`` are, when the optional C module
``statewall._speedups`` is built (and STATEWALL_PURE is not set), C method descriptors: they
take the common cases (header checks and checksum that pass; a SYN opening an entry; SYN,
SYN/ACK, ACK, data and FIN segments whose transition is a plain one and which pass all four
window checks) and call ``TcpPy``'s method, before changing anything, for every other packet
(RST, ignored and invalid transitions, reopen, out-of-window segments, mid-stream pickup,
challenge ACKs, resync).
The C code gets this module's tables (``_INDEX``, ``_FLAT``, ``_VALID``,
``TIMEOUT_SYSCTLS``) and checks the slot layout against its own copy at import.
"""

from __future__ import annotations

from array import array
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from ...accel import install
from ...packet import decode
from ...packet.checksum import l4_checksum_ok
from ...packet.packet import IPPROTO_TCP
from ...packet.tcpopt import TCP_MAX_WSCALE, highest_sack, wscale_sackperm
from ..conn import (
    END_RST,
    IPCT_ASSURED,
    IPCT_PROTOINFO,
    IPS,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_FIXED_TIMEOUT,
    IPS_SEEN_REPLY,
    Conn,
)
from ..sysctl import Settings
from .base import CONTINUE, INVALID, NF_ACCEPT, NF_INET_PRE_ROUTING, REPEAT

try:
    from ... import _speedups
except ImportError:                 # not built, or disabled by STATEWALL_PURE
    _speedups = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..core import Tracker


class TcpConntrack(IntEnum):
    """``enum tcp_conntrack``. SYN_SENT2 reuses the obsolete LISTEN slot; MAX marks an
    invalid transition (sIV), IGNORE an ignored one (sIG); RETRANS and UNACK only index
    the timeout table."""

    NONE = 0
    SYN_SENT = 1
    SYN_RECV = 2
    ESTABLISHED = 3
    FIN_WAIT = 4
    CLOSE_WAIT = 5
    LAST_ACK = 6
    TIME_WAIT = 7
    CLOSE = 8
    SYN_SENT2 = 9
    MAX = 10
    IGNORE = 11
    RETRANS = 12
    UNACK = 13


TCP_CONNTRACK_NONE: Final = 0
TCP_CONNTRACK_SYN_SENT: Final = 1
TCP_CONNTRACK_SYN_RECV: Final = 2
TCP_CONNTRACK_ESTABLISHED: Final = 3
TCP_CONNTRACK_FIN_WAIT: Final = 4
TCP_CONNTRACK_CLOSE_WAIT: Final = 5
TCP_CONNTRACK_LAST_ACK: Final = 6
TCP_CONNTRACK_TIME_WAIT: Final = 7
TCP_CONNTRACK_CLOSE: Final = 8
TCP_CONNTRACK_SYN_SENT2: Final = 9
TCP_CONNTRACK_MAX: Final = 10
TCP_CONNTRACK_IGNORE: Final = 11

# tcp_conntrack_names[]: what /proc/net/nf_conntrack and conntrack -L print
TCP_CONNTRACK_NAMES: Final = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                              "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")

# enum tcp_bit_set: the flag class of a segment (row of the table)
TCP_SYN_SET: Final = 0
TCP_SYNACK_SET: Final = 1
TCP_FIN_SET: Final = 2
TCP_ACK_SET: Final = 3
TCP_RST_SET: Final = 4
TCP_NONE_SET: Final = 5

# per-direction flags (seen[d].flags) and last_flags bits
IP_CT_TCP_FLAG_WINDOW_SCALE: Final = 0x01
IP_CT_TCP_FLAG_SACK_PERM: Final = 0x02
IP_CT_TCP_FLAG_CLOSE_INIT: Final = 0x04
IP_CT_TCP_FLAG_BE_LIBERAL: Final = 0x08
IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED: Final = 0x10
IP_CT_TCP_FLAG_MAXACK_SET: Final = 0x20
IP_CT_EXP_CHALLENGE_ACK: Final = 0x40
IP_CT_TCP_SIMULTANEOUS_OPEN: Final = 0x80

# TCP header flag bits
_FIN: Final = 0x01
_SYN: Final = 0x02
_RST: Final = 0x04
_PSH: Final = 0x08
_ACK: Final = 0x10
_URG: Final = 0x20
_ECE: Final = 0x40
_CWR: Final = 0x80

_sNO: Final = TCP_CONNTRACK_NONE
_sSS: Final = TCP_CONNTRACK_SYN_SENT
_sSR: Final = TCP_CONNTRACK_SYN_RECV
_sES: Final = TCP_CONNTRACK_ESTABLISHED
_sFW: Final = TCP_CONNTRACK_FIN_WAIT
_sCW: Final = TCP_CONNTRACK_CLOSE_WAIT
_sLA: Final = TCP_CONNTRACK_LAST_ACK
_sTW: Final = TCP_CONNTRACK_TIME_WAIT
_sCL: Final = TCP_CONNTRACK_CLOSE
_sS2: Final = TCP_CONNTRACK_SYN_SENT2
_sIV: Final = TCP_CONNTRACK_MAX
_sIG: Final = TCP_CONNTRACK_IGNORE

# tcp_conntracks[dir][flag class][old state] -> new state, exactly the kernel's.
TCP_CONNTRACKS: Final[tuple[tuple[tuple[int, ...], ...], ...]] = (
    (   # ORIGINAL
        #  sNO   sSS   sSR   sES   sFW   sCW   sLA   sTW   sCL   sS2
        (_sSS, _sSS, _sIG, _sIG, _sIG, _sIG, _sIG, _sSS, _sSS, _sS2),   # syn
        (_sIV, _sIV, _sSR, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sSR),   # synack
        (_sIV, _sIV, _sFW, _sFW, _sLA, _sLA, _sLA, _sTW, _sCL, _sIV),   # fin
        (_sES, _sIV, _sES, _sES, _sCW, _sCW, _sTW, _sTW, _sCL, _sIV),   # ack
        (_sIV, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL),   # rst
        (_sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV),   # none
    ),
    (   # REPLY
        #  sNO   sSS   sSR   sES   sFW   sCW   sLA   sTW   sCL   sS2
        (_sIV, _sS2, _sIV, _sIV, _sIV, _sIV, _sIV, _sSS, _sIV, _sS2),   # syn
        (_sIV, _sSR, _sIG, _sIG, _sIG, _sIG, _sIG, _sIG, _sIG, _sSR),   # synack
        (_sIV, _sIV, _sFW, _sFW, _sLA, _sLA, _sLA, _sTW, _sCL, _sIV),   # fin
        (_sIV, _sIG, _sSR, _sES, _sCW, _sCW, _sTW, _sTW, _sCL, _sIG),   # ack
        (_sIV, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL, _sCL),   # rst
        (_sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV, _sIV),   # none
    ),
)

# tcp_valid_flags[]: the flag byte without ECE, CWR and PSH must be one of these.
TCP_VALID_FLAGS: Final = frozenset({
    _SYN, _SYN | _URG, _SYN | _ACK, _RST, _RST | _ACK, _FIN | _ACK, _FIN | _ACK | _URG,
    _ACK, _ACK | _URG,
})

# timeout of each state: the sysctl leaf name (SYN_SENT2 has no sysctl: fixed 120 s)
TIMEOUT_SYSCTLS: Final = (
    "nf_conntrack_tcp_timeout_syn_sent",      # NONE: unused, the kernel copies SYN_SENT
    "nf_conntrack_tcp_timeout_syn_sent",
    "nf_conntrack_tcp_timeout_syn_recv",
    "nf_conntrack_tcp_timeout_established",
    "nf_conntrack_tcp_timeout_fin_wait",
    "nf_conntrack_tcp_timeout_close_wait",
    "nf_conntrack_tcp_timeout_last_ack",
    "nf_conntrack_tcp_timeout_time_wait",
    "nf_conntrack_tcp_timeout_close",
    "",                                       # SYN_SENT2
)
SYN_SENT2_TIMEOUT: Final = 120

# nf_tcp_handle_invalid only shortens timeouts that have at least this much left
_HANDLE_INVALID_MIN: Final = 120

MAXACKWINCONST: Final = 66000

# --- layout of Conn.l4 (array('I')) ---------------------------------------------------------
TD_END: Final = 0        # seen[d]: max of seq + len sent
TD_MAXEND: Final = 1     #          max of ack + max(win, 1) seen from the peer
TD_MAXWIN: Final = 2     #          max window (scaled)
TD_MAXACK: Final = 3     #          max ack sent
TD_SCALE: Final = 4      #          window scale factor
TD_FLAGS: Final = 5      #          IP_CT_TCP_FLAG_* of this direction
SEEN_SIZE: Final = 6
LAST_DIR: Final = 12
RETRANS: Final = 13
LAST_INDEX: Final = 14
LAST_SEQ: Final = 15
LAST_ACK: Final = 16
LAST_END: Final = 17
LAST_WIN: Final = 18
LAST_WSCALE: Final = 19
LAST_FLAGS: Final = 20
SEQ_OFFSET: Final = 21   # + d: NAT sequence offset of direction d (hook for seqadj; mod 2**32)
L4_SIZE: Final = 23

_ZERO: Final = array("I", bytes(4 * L4_SIZE))
assert _ZERO.itemsize == 4 and len(_ZERO) == L4_SIZE

_M: Final = 0xFFFFFFFF
_IPS_SEQ_ADJUST: Final = int(IPS.SEQ_ADJUST)

# NF-style results of tcp_in_window (enum nf_ct_tcp_action)
NFCT_TCP_IGNORE: Final = 0
NFCT_TCP_INVALID: Final = 1
NFCT_TCP_ACCEPT: Final = 2


def get_conntrack_index(flags: int) -> int:
    """The flag class of a segment: RST, then SYN (SYN/ACK if ACK), FIN, ACK, none."""
    if flags & _RST:
        return TCP_RST_SET
    if flags & _SYN:
        return TCP_SYNACK_SET if flags & _ACK else TCP_SYN_SET
    if flags & _FIN:
        return TCP_FIN_SET
    if flags & _ACK:
        return TCP_ACK_SET
    return TCP_NONE_SET


# derived lookup tables for the hot path (computed from the literal data above)
_INDEX: Final = bytes(get_conntrack_index(f) for f in range(256))
_FLAT: Final = bytes(TCP_CONNTRACKS[d][i][s] for d in range(2) for i in range(6)
                     for s in range(10))
_VALID: Final = bytes(1 if (f & ~(_ECE | _CWR | _PSH)) in TCP_VALID_FLAGS else 0
                      for f in range(256))


def before(a: int, b: int) -> bool:
    """``before(a, b)`` of include/net/tcp.h for u32 sequence numbers."""
    return ((a - b) & _M) > 0x7FFFFFFF


def after(a: int, b: int) -> bool:
    return ((b - a) & _M) > 0x7FFFFFFF


def state_timeout(s: Settings, state: int) -> int:
    """``timeouts[state]`` from the settings."""
    name = TIMEOUT_SYSCTLS[state]
    return int(getattr(s, name)) if name else SYN_SENT2_TIMEOUT


def set_seq_offset(ct: Conn, dir: int, offset: int) -> None:
    """NAT hook: the sequence offset of direction ``dir`` (what ``nf_ct_seq_offset`` returns;
    applied only while the entry has IPS_SEQ_ADJUST). Unused until seqadj is written."""
    ct.l4[SEQ_OFFSET + dir] = offset & _M


def protoinfo(ct: Conn) -> dict[str, int]:
    """The ctnetlink CTA_PROTOINFO_TCP view: state, wscale and flags per direction."""
    st = ct.l4
    return {"state": ct.state,
            "wscale_original": st[TD_SCALE], "wscale_reply": st[SEEN_SIZE + TD_SCALE],
            "flags_original": st[TD_FLAGS], "flags_reply": st[SEEN_SIZE + TD_FLAGS]}


def _init_sender(st: array[int], s: int, r: int, pkt: Packet, end: int, win: int,
                 dir: int) -> None:
    """``tcp_init_sender``: a SYN(/ACK) (re)initialises the sender's window data."""
    st[s + TD_END] = end
    st[s + TD_MAXEND] = end
    st[s + TD_MAXWIN] = win or 1
    optlen = pkt.tcp_optlen
    if optlen:
        # tcp_options(): only when there are options; it keeps BE_LIBERAL
        wscale, sack_perm = wscale_sackperm(pkt.buf, pkt.tcp_optoff, optlen)
        f = st[s + TD_FLAGS] & IP_CT_TCP_FLAG_BE_LIBERAL
        if sack_perm:
            f |= IP_CT_TCP_FLAG_SACK_PERM
        if wscale >= 0:
            f |= IP_CT_TCP_FLAG_WINDOW_SCALE
            st[s + TD_SCALE] = wscale
        else:
            st[s + TD_SCALE] = 0
        st[s + TD_FLAGS] = f
    # RFC 1323: scaling only if both sides sent the option (checked on the reply's SYN)
    if dir == 1 and not (st[s + TD_FLAGS] & st[r + TD_FLAGS] & IP_CT_TCP_FLAG_WINDOW_SCALE):
        st[s + TD_SCALE] = 0
        st[r + TD_SCALE] = 0


def _log_invalid(st: array[int], s: int, pkt: Packet, liberal: int, ret: int,
                 msg: str) -> int:
    """``nf_tcp_log_invalid``: a BE_LIBERAL sender (flag or sysctl) gets ACCEPT instead."""
    if st[s + TD_FLAGS] & IP_CT_TCP_FLAG_BE_LIBERAL or liberal:
        return NFCT_TCP_ACCEPT
    pkt.reason = msg
    return ret


def tcp_in_window(st: array[int], cstate: int, status: int, dir: int, index: int,
                  pkt: Packet, flags: int, seq: int, end: int, liberal: int) -> int:
    """``tcp_in_window``: NFCT_TCP_ACCEPT (window data updated), NFCT_TCP_IGNORE or
    NFCT_TCP_INVALID (``pkt.reason`` set). ``cstate`` is the entry's current state."""
    s = SEEN_SIZE * dir          # sender = seen[dir]
    r = SEEN_SIZE - s            # receiver = seen[!dir]
    ack = sack = pkt.ack
    win_raw = win = pkt.win
    if st[r + TD_FLAGS] & IP_CT_TCP_FLAG_SACK_PERM:
        optlen = pkt.tcp_optlen
        if optlen:
            sack = highest_sack(pkt.buf, pkt.tcp_optoff, optlen, sack)
    if status & _IPS_SEQ_ADJUST:
        off = st[SEQ_OFFSET + 1 - dir]   # nf_ct_seq_offset(ct, !dir, ack - 1)
        ack = (ack - off) & _M
        sack = (sack - off) & _M

    if st[s + TD_MAXWIN] == 0:
        # first packet of this direction
        if flags & _SYN:
            _init_sender(st, s, r, pkt, end, win, dir)
            if not flags & _ACK:
                return NFCT_TCP_ACCEPT       # simultaneous open
        else:
            # mid-stream: its history is lost for us, use the packet's data
            st[s + TD_END] = end
            swin = win << st[s + TD_SCALE]
            if swin == 0:
                swin = 1
            st[s + TD_MAXWIN] = swin
            st[s + TD_MAXEND] = (end + swin) & _M
            if st[r + TD_MAXWIN] == 0:
                # nothing seen from the other side yet: let checks III and IV pass
                st[r + TD_END] = sack
                st[r + TD_MAXEND] = sack
            elif sack == (st[r + TD_END] + 1) & _M:
                st[r + TD_END] = sack        # likely a reply to a keepalive, needed for III
    elif (flags & _SYN and ((st[s + TD_END] - end) & _M) > 0x7FFFFFFF
          and (cstate == TCP_CONNTRACK_SYN_SENT or cstate == TCP_CONNTRACK_SYN_RECV)):
        # RFC 793: a reinitialised TCP may reuse the tuple with a higher ISN
        _init_sender(st, s, r, pkt, end, win, dir)
        if dir == 1 and not flags & _ACK:
            return NFCT_TCP_ACCEPT

    if not flags & _ACK:
        ack = sack = st[r + TD_END]          # no ACK: pretend it acked everything
    elif flags & _RST and ack == 0:
        ack = sack = st[r + TD_END]          # broken stacks: RST|ACK with ack 0

    if flags & _RST and seq == 0 and cstate == TCP_CONNTRACK_SYN_SENT:
        seq = end = st[s + TD_END]           # RST answering a SYN

    s_end = st[s + TD_END]
    s_maxend = st[s + TD_MAXEND]
    r_end = st[r + TD_END]
    r_maxwin = st[r + TD_MAXWIN]
    maxackwin = st[s + TD_MAXWIN]
    if maxackwin < MAXACKWINCONST:
        maxackwin = MAXACKWINCONST

    # I. seq <= sender.td_maxend
    if ((seq - s_maxend - 1) & _M) <= 0x7FFFFFFF:
        overshot = (end - s_maxend + 1) & _M
        if (r_maxwin
                and ((s_end - r_maxwin - 1 - end) & _M) > 0x7FFFFFFF           # in recv win
                and ((r_end - maxackwin - 1 - sack) & _M) > 0x7FFFFFFF         # ack ok
                and overshot <= r_maxwin
                and ((sack - r_end - 1) & _M) > 0x7FFFFFFF):                   # III holds
            # more bytes than the window allows: remember them so the peer's ACK passes III
            st[s + TD_END] = end
            st[s + TD_FLAGS] |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
            return _log_invalid(st, s, pkt, liberal, NFCT_TCP_IGNORE,
                                f"{overshot} bytes more than expected")
        return _log_invalid(st, s, pkt, liberal, NFCT_TCP_INVALID,
                            f"SEQ is over upper bound {(s_maxend + 1) & _M} "
                            "(over the window of the receiver)")
    # III. sack <= receiver.td_end
    if ((sack - r_end - 1) & _M) <= 0x7FFFFFFF:
        return _log_invalid(st, s, pkt, liberal, NFCT_TCP_INVALID,
                            f"ACK is over upper bound {(r_end + 1) & _M} "
                            "(ACKed data not seen yet)")
    # II. end >= sender.td_end - receiver.td_maxwin
    if r_maxwin and ((s_end - r_maxwin - 1 - end) & _M) <= 0x7FFFFFFF:
        return _log_invalid(st, s, pkt, liberal, NFCT_TCP_IGNORE,
                            f"SEQ is under lower bound {(s_end - r_maxwin - 1) & _M} "
                            "(already ACKed data retransmitted)")
    # IV. sack >= receiver.td_end - MAXACKWINDOW
    if ((r_end - maxackwin - 1 - sack) & _M) <= 0x7FFFFFFF:
        return _log_invalid(st, s, pkt, liberal, NFCT_TCP_IGNORE,
                            f"ignored ACK under lower bound {(r_end - maxackwin - 1) & _M} "
                            "(possible overly delayed)")

    # in window: update the sender
    if not flags & _SYN:
        win <<= st[s + TD_SCALE]
    swin = (win + sack - ack) & _M
    if st[s + TD_MAXWIN] < swin:
        st[s + TD_MAXWIN] = swin
    if ((s_end - end) & _M) > 0x7FFFFFFF:                  # after(end, td_end)
        st[s + TD_END] = end
        st[s + TD_FLAGS] |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
    if flags & _ACK:
        if not st[s + TD_FLAGS] & IP_CT_TCP_FLAG_MAXACK_SET:
            st[s + TD_MAXACK] = ack
            st[s + TD_FLAGS] |= IP_CT_TCP_FLAG_MAXACK_SET
        elif ((st[s + TD_MAXACK] - ack) & _M) > 0x7FFFFFFF:
            st[s + TD_MAXACK] = ack
    # ... and the receiver
    if r_maxwin and ((s_maxend - end) & _M) > 0x7FFFFFFF:
        st[r + TD_MAXWIN] = (r_maxwin + end - s_maxend) & _M
    edge = (sack + win) & _M
    if ((st[r + TD_MAXEND] - 1 - edge) & _M) > 0x7FFFFFFF:  # after(edge, td_maxend - 1)
        st[r + TD_MAXEND] = edge if win else (edge + 1) & _M
    if ack == r_end:
        st[r + TD_FLAGS] &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED & 0xFF

    # retransmissions: the same ACK-class segment again
    if index == TCP_ACK_SET:
        if (st[LAST_DIR] == dir and st[LAST_SEQ] == seq and st[LAST_ACK] == ack
                and st[LAST_END] == end and st[LAST_WIN] == win_raw):
            st[RETRANS] = (st[RETRANS] + 1) & 0xFF
        else:
            st[LAST_DIR] = dir
            st[LAST_SEQ] = seq
            st[LAST_ACK] = ack
            st[LAST_END] = end
            st[LAST_WIN] = win_raw
            st[RETRANS] = 0
    return NFCT_TCP_ACCEPT


class TcpPy:
    """The TCP tracker (stateless itself; per-connection data lives in ``Conn.l4``), in pure
    Python: the reference implementation (``Tcp`` below may replace parts of it with C).

    ``pkt.reason`` gets the kernel's log text (``nf_conntrack_log_invalid``) whenever the
    kernel logs one: for INVALID, and also for packets it ignores but accepts (NF_ACCEPT,
    no state or timeout change), e.g. "packet (index 0) in dir 0 ignored, state ...".
    Uses of the core: ``tracker.settings``, ``refresh_acct``, ``acct``, ``kill`` and, when
    ``nf_tcp_handle_invalid`` shortens a timeout, ``tracker.table.file`` to re-file it.
    """

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "tcp"

    def pkt_to_tuple(self, pkt: Packet) -> tuple[int, int] | None:
        if len(pkt.buf) - pkt.l4off < 8:     # the kernel reads only the ports
            return None
        return (pkt.sport, pkt.dport)

    def invert(self, a: int, b: int) -> tuple[int, int] | None:
        return (b, a)

    def error(self, tracker: Tracker, pkt: Packet, hook: int, now: float) -> int:
        """``tcp_error``. The kernel runs it at the top of the packet handler, after the
        lookup; before the lookup the outcome is the same (INVALID, no state touched).
        Reads the header bytes themselves, not the decoder's fields."""
        buf = pkt.buf
        off = pkt.l4off
        tcplen = len(buf) - off
        if tcplen < 20:
            pkt.reason = "truncated packet"
            return INVALID
        doff = (buf[off + 12] >> 4) << 2
        if doff < 20 or tcplen < doff:
            pkt.reason = "truncated packet"
            return INVALID
        if (hook == NF_INET_PRE_ROUTING and tracker.settings.nf_conntrack_checksum
                and not l4_checksum_ok(buf, off, pkt.src, pkt.dst, IPPROTO_TCP)):
            pkt.reason = "bad checksum"
            return INVALID
        if not _VALID[buf[off + 13]]:
            pkt.reason = "invalid tcp flag combination"
            return INVALID
        return CONTINUE

    def new(self, tracker: Tracker, ct: Conn, pkt: Packet, now: float) -> bool:
        """``tcp_new``: a SYN starts SYN_SENT; an ACK is picked up mid-stream only with
        ``nf_conntrack_tcp_loose``; anything else makes no entry."""
        flags = pkt.flags
        new_state = _FLAT[_INDEX[flags] * 10]        # tcp_conntracks[0][index][NONE]
        if new_state >= TCP_CONNTRACK_MAX:
            pkt.reason = "invalid new"
            return False
        end = (pkt.seq + pkt.l4len - pkt.doff + (flags & _FIN) + ((flags >> 1) & 1)) & _M
        maxwin = pkt.win or 1
        st = _ZERO.__copy__()
        if new_state == TCP_CONNTRACK_SYN_SENT:
            st[TD_END] = end
            st[TD_MAXWIN] = maxwin
            st[TD_MAXEND] = end
            optlen = pkt.tcp_optlen
            if optlen:
                wscale, sack_perm = wscale_sackperm(pkt.buf, pkt.tcp_optoff, optlen)
                if wscale >= 0:
                    st[TD_SCALE] = wscale
                    st[TD_FLAGS] = IP_CT_TCP_FLAG_WINDOW_SCALE
                if sack_perm:
                    st[TD_FLAGS] |= IP_CT_TCP_FLAG_SACK_PERM
        elif not tracker.settings.nf_conntrack_tcp_loose:
            pkt.reason = "invalid new (mid-stream pickup off: nf_conntrack_tcp_loose=0)"
            return False
        else:
            # mid-stream pickup: assume SACK and be liberal (window scale unknown)
            st[TD_END] = end
            st[TD_MAXWIN] = maxwin
            st[TD_MAXEND] = (end + maxwin) & _M
            st[TD_FLAGS] = st[SEEN_SIZE + TD_FLAGS] = (IP_CT_TCP_FLAG_SACK_PERM
                                                       | IP_CT_TCP_FLAG_BE_LIBERAL)
        st[LAST_INDEX] = TCP_NONE_SET
        ct.l4 = st
        ct.state = TCP_CONNTRACK_NONE
        return True

    def packet(self, tracker: Tracker, ct: Conn, pkt: Packet, dir: int, ctinfo: int,
               now: float) -> int:
        """``nf_conntrack_tcp_packet`` after its header checks (done in ``error``)."""
        st: array[int] = ct.l4
        flags = pkt.flags
        index = _INDEX[flags]
        old = ct.state
        new = _FLAT[(dir * 6 + index) * 10 + old]
        seq = pkt.seq
        end = (seq + pkt.l4len - pkt.doff + (flags & _FIN) + ((flags >> 1) & 1)) & _M
        status = ct.status
        settings = tracker.settings
        in_window = True        # False: skip tcp_in_window (the kernel's goto in_window)

        if new == TCP_CONNTRACK_SYN_SENT and old >= TCP_CONNTRACK_TIME_WAIT:
            # RFC 1122 reopen from TIME_WAIT / CLOSE, or a client aborting with RST and
            # starting over: only if someone closed first or our side sent the last RST
            if ((st[TD_FLAGS] | st[SEEN_SIZE + TD_FLAGS]) & IP_CT_TCP_FLAG_CLOSE_INIT
                    or (st[LAST_DIR] == dir and st[LAST_INDEX] == TCP_RST_SET)):
                # (nf_ct_kill fails only for an entry already dying, never one just found)
                tracker.kill(ct, now)
                return REPEAT
            new = TCP_CONNTRACK_IGNORE

        if new == TCP_CONNTRACK_IGNORE:
            if (index == TCP_SYNACK_SET and st[LAST_INDEX] == TCP_SYN_SET
                    and st[LAST_DIR] != dir and pkt.ack == st[LAST_END]):
                # this SYN/ACK answers a SYN we ignored: client and server are in sync and
                # we are not. Take the window data of that SYN and start over.
                _resync(st, dir)
                old = TCP_CONNTRACK_SYN_SENT
                new = TCP_CONNTRACK_SYN_RECV
            else:
                _note_ignored(st, pkt, dir, index, old, seq, end)
                pkt.reason = (f"packet (index {index}) in dir {dir} ignored, "
                              f"state {TCP_CONNTRACK_NAMES[old]}")
                return NF_ACCEPT
        elif new == TCP_CONNTRACK_MAX:
            # (the SYN-proxy keepalive exception does not apply: no synproxy)
            pkt.reason = (f"packet (index {index}) in dir {dir} invalid, "
                          f"state {TCP_CONNTRACK_NAMES[old]}")
            return INVALID
        elif new == TCP_CONNTRACK_TIME_WAIT:
            # RFC 5961: an ACK answering a SYN we let through in LAST_ACK is a challenge
            # ACK, not the ACK of the last FIN
            if (old == TCP_CONNTRACK_LAST_ACK and index == TCP_ACK_SET
                    and st[LAST_DIR] != dir and st[LAST_INDEX] == TCP_SYN_SET
                    and st[LAST_FLAGS] & IP_CT_EXP_CHALLENGE_ACK):
                st[LAST_FLAGS] &= ~IP_CT_EXP_CHALLENGE_ACK & 0xFF
                pkt.reason = "challenge-ack ignored"
                return NF_ACCEPT
        elif new == TCP_CONNTRACK_SYN_SENT2:
            st[LAST_FLAGS] |= IP_CT_TCP_SIMULTANEOUS_OPEN
        elif new == TCP_CONNTRACK_SYN_RECV:
            if dir == 1 and index == TCP_ACK_SET and st[LAST_FLAGS] & IP_CT_TCP_SIMULTANEOUS_OPEN:
                new = TCP_CONNTRACK_ESTABLISHED
        elif new == TCP_CONNTRACK_CLOSE and index == TCP_RST_SET:
            rst = _rst_check(st, status, old, dir, seq, pkt.ack,
                             settings.nf_conntrack_tcp_ignore_invalid_rst)
            if rst == _RST_INVALID:
                pkt.reason = "invalid rst"
                return INVALID
            if rst == _RST_SKIP:
                in_window = False
            elif rst == _RST_KEEP:
                new = old
            elif rst == _RST_KEEP_SKIP:
                new = old
                in_window = False

        if in_window:
            res = tcp_in_window(st, ct.state, status, dir, index, pkt, flags, seq, end,
                                settings.nf_conntrack_tcp_be_liberal)
            if res != NFCT_TCP_ACCEPT:
                if res == NFCT_TCP_INVALID:
                    _handle_invalid(tracker, ct, st, dir, index, now)
                    return INVALID
                return NF_ACCEPT

        # from now on the packet is in window
        st[LAST_INDEX] = index
        st[LAST_DIR] = dir
        ct.state = new
        if old != new:
            if new == TCP_CONNTRACK_FIN_WAIT:
                st[SEEN_SIZE * dir + TD_FLAGS] |= IP_CT_TCP_FLAG_CLOSE_INIT
            ct.events |= IPCT_PROTOINFO

        t_new = state_timeout(settings, new)
        if (st[RETRANS] >= settings.nf_conntrack_tcp_max_retrans
                and t_new > settings.nf_conntrack_tcp_timeout_max_retrans):
            timeout = settings.nf_conntrack_tcp_timeout_max_retrans
        elif index == TCP_RST_SET:
            timeout = settings.nf_conntrack_tcp_timeout_close
        elif ((st[TD_FLAGS] | st[SEEN_SIZE + TD_FLAGS]) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
              and t_new > settings.nf_conntrack_tcp_timeout_unacknowledged):
            timeout = settings.nf_conntrack_tcp_timeout_unacknowledged
        elif st[LAST_WIN] == 0 and t_new > settings.nf_conntrack_tcp_timeout_max_retrans:
            timeout = settings.nf_conntrack_tcp_timeout_max_retrans
        else:
            timeout = t_new

        if not status & IPS_SEEN_REPLY:
            if flags & _RST:
                # the only answer is a RST: no connection, delete the entry now
                tracker.acct(ct, pkt, dir)
                tracker.kill(ct, now, END_RST)
                return NF_ACCEPT
            if index == TCP_SYN_SET and old == TCP_CONNTRACK_SYN_SENT:
                # a retransmitted SYN must not keep the entry (and its NAT) alive
                return NF_ACCEPT
            if (new == TCP_CONNTRACK_ESTABLISHED
                    and timeout > settings.nf_conntrack_tcp_timeout_unacknowledged):
                # mid-stream pickup: no long ESTABLISHED timeout before a reply
                timeout = settings.nf_conntrack_tcp_timeout_unacknowledged
        elif (not status & IPS_ASSURED
              and (old == TCP_CONNTRACK_SYN_RECV or old == TCP_CONNTRACK_ESTABLISHED)
              and new == TCP_CONNTRACK_ESTABLISHED):
            # a valid ACK after SYN_RECV, or a valid answer on a picked-up connection
            ct.status = status | IPS_ASSURED
            ct.events |= IPCT_ASSURED
        tracker.refresh_acct(ct, pkt, dir, now, timeout)
        return NF_ACCEPT

    def state_name(self, ct: Conn) -> str | None:
        return TCP_CONNTRACK_NAMES[ct.state]

    def can_early_drop(self, ct: Conn) -> bool:
        """``tcp_can_early_drop``: closing states may go even when ASSURED."""
        return TCP_CONNTRACK_FIN_WAIT <= ct.state <= TCP_CONNTRACK_CLOSE


# outcomes of the RST checks
_RST_WINDOW: Final = 0      # go on to the window check
_RST_SKIP: Final = 1        # accept without the window check
_RST_INVALID: Final = 2
_RST_KEEP: Final = 3        # keep the old state (wait for a challenge ACK), window check
_RST_KEEP_SKIP: Final = 4   # keep the old state, skip the window check


def _rst_check(st: array[int], status: int, old: int, dir: int, seq: int, ack_seq: int,
               ignore_invalid_rst: int) -> int:
    """The TCP_CONNTRACK_CLOSE case of nf_conntrack_tcp_packet for a RST."""
    if TCP_CONNTRACK_FIN_WAIT <= old <= TCP_CONNTRACK_CLOSE:
        # closing: the tuple may be reused already and our data be stale (tcp_can_early_drop)
        return _RST_SKIP
    r = SEEN_SIZE - SEEN_SIZE * dir
    last_index = st[LAST_INDEX]
    keep = False
    # td_maxack might be outdated if we let a SYN through earlier
    if st[r + TD_FLAGS] & IP_CT_TCP_FLAG_MAXACK_SET and last_index != TCP_SYN_SET:
        established = old == TCP_CONNTRACK_ESTABLISHED and status & IPS_ASSURED
        maxack = st[r + TD_MAXACK]
        if seq == 0 and not established:
            return _RST_WINDOW       # most likely the answer to a SYN we let through
        if ((seq - maxack) & _M) > 0x7FFFFFFF and not ignore_invalid_rst:
            return _RST_INVALID
        if not established or seq == maxack:
            return _RST_WINDOW
        if last_index == TCP_ACK_SET and st[LAST_DIR] == dir and seq == st[LAST_END]:
            return _RST_WINDOW       # RST right after this side's data
        keep = True                  # not exactly at the expected seq: keep the state
    if (((status & IPS_SEEN_REPLY and last_index == TCP_SYN_SET)
            or (not status & IPS_ASSURED and last_index == TCP_ACK_SET))
            and ack_seq == st[LAST_END]):
        # RST answering a SYN (a) or ACK (c) we let through: it may ack what we ignored
        return _RST_KEEP_SKIP if keep else _RST_SKIP
    if (old == TCP_CONNTRACK_SYN_SENT and last_index == TCP_ACK_SET and st[LAST_DIR] == 1
            and seq == st[LAST_ACK]):
        # RST in response to a challenge ACK we let through
        return _RST_KEEP_SKIP if keep else _RST_SKIP
    return _RST_KEEP if keep else _RST_WINDOW


class Tcp(TcpPy):
    """The TCP tracker the registry uses: ``TcpPy``, with ``error`` and ``packet`` in C when
    the accelerator is available (see the module header)."""

    __slots__ = ()


def _accelerate() -> bool:
    """Install the C ``error``/``packet`` on ``Tcp`` (False: they stay ``TcpPy``'s)."""
    if _speedups is None or not decode.ACCELERATED:     # (decode binds the Packet class)
        return False
    layout = {
        "TD_END": TD_END, "TD_MAXEND": TD_MAXEND, "TD_MAXWIN": TD_MAXWIN,
        "TD_MAXACK": TD_MAXACK, "TD_SCALE": TD_SCALE, "TD_FLAGS": TD_FLAGS,
        "SEEN_SIZE": SEEN_SIZE, "LAST_DIR": LAST_DIR, "RETRANS": RETRANS,
        "LAST_INDEX": LAST_INDEX, "LAST_SEQ": LAST_SEQ, "LAST_ACK": LAST_ACK,
        "LAST_END": LAST_END, "LAST_WIN": LAST_WIN, "LAST_WSCALE": LAST_WSCALE,
        "LAST_FLAGS": LAST_FLAGS, "SEQ_OFFSET": SEQ_OFFSET, "L4_SIZE": L4_SIZE,
        "IP_CT_TCP_FLAG_WINDOW_SCALE": IP_CT_TCP_FLAG_WINDOW_SCALE,
        "IP_CT_TCP_FLAG_SACK_PERM": IP_CT_TCP_FLAG_SACK_PERM,
        "IP_CT_TCP_FLAG_BE_LIBERAL": IP_CT_TCP_FLAG_BE_LIBERAL,
        "IP_CT_TCP_FLAG_CLOSE_INIT": IP_CT_TCP_FLAG_CLOSE_INIT,
        "IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED": IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED,
        "IP_CT_TCP_FLAG_MAXACK_SET": IP_CT_TCP_FLAG_MAXACK_SET,
        "IP_CT_EXP_CHALLENGE_ACK": IP_CT_EXP_CHALLENGE_ACK,
        "IP_CT_TCP_SIMULTANEOUS_OPEN": IP_CT_TCP_SIMULTANEOUS_OPEN,
        "TCP_CONNTRACK_SYN_SENT": TCP_CONNTRACK_SYN_SENT,
        "TCP_CONNTRACK_SYN_RECV": TCP_CONNTRACK_SYN_RECV,
        "TCP_CONNTRACK_ESTABLISHED": TCP_CONNTRACK_ESTABLISHED,
        "TCP_CONNTRACK_FIN_WAIT": TCP_CONNTRACK_FIN_WAIT,
        "TCP_CONNTRACK_LAST_ACK": TCP_CONNTRACK_LAST_ACK,
        "TCP_CONNTRACK_TIME_WAIT": TCP_CONNTRACK_TIME_WAIT,
        "TCP_CONNTRACK_SYN_SENT2": TCP_CONNTRACK_SYN_SENT2,
        "TCP_CONNTRACK_MAX": TCP_CONNTRACK_MAX, "TCP_SYN_SET": TCP_SYN_SET,
        "TCP_ACK_SET": TCP_ACK_SET, "TCP_RST_SET": TCP_RST_SET, "TCP_NONE_SET": TCP_NONE_SET,
        "IPS_SEEN_REPLY": IPS_SEEN_REPLY, "IPS_ASSURED": IPS_ASSURED,
        "IPS_SEQ_ADJUST": _IPS_SEQ_ADJUST, "IPCT_ASSURED": IPCT_ASSURED,
        "IPCT_PROTOINFO": IPCT_PROTOINFO, "MAXACKWINCONST": MAXACKWINCONST,
        "NF_ACCEPT": NF_ACCEPT, "CONTINUE": CONTINUE, "NF_INET_PRE_ROUTING": NF_INET_PRE_ROUTING,
        "TCP_MAX_WSCALE": TCP_MAX_WSCALE, "IPS_CONFIRMED": IPS_CONFIRMED,
        "IPS_DYING": IPS_DYING,
    }
    # (a layout that drifted makes the bind raise: Tcp stays pure)
    return install(Tcp, lambda: _speedups.tcp_methods(
        Tcp, TcpPy.error, TcpPy.packet, TcpPy.new, _ZERO.__copy__, Conn, Settings, _INDEX,
        _FLAT, _VALID, TIMEOUT_SYSCTLS, SYN_SENT2_TIMEOUT, layout))


ACCELERATED: Final = _accelerate()


def _resync(st: array[int], dir: int) -> None:
    """Restore the ignored SYN (of direction last_dir) as the sender's window data and reset
    this direction, as for a fresh SYN / SYN/ACK exchange."""
    b = SEEN_SIZE * st[LAST_DIR]
    last_end = st[LAST_END]
    st[b + TD_END] = last_end
    st[b + TD_MAXEND] = last_end
    st[b + TD_MAXWIN] = st[LAST_WIN] or 1
    st[b + TD_SCALE] = st[LAST_WSCALE]
    lf = st[LAST_FLAGS] & ~IP_CT_EXP_CHALLENGE_ACK & 0xFF
    st[LAST_FLAGS] = lf
    st[b + TD_FLAGS] = lf
    # nf_ct_tcp_state_reset(seen[dir])
    d = SEEN_SIZE * dir
    st[d + TD_END] = 0
    st[d + TD_MAXEND] = 0
    st[d + TD_MAXWIN] = 0
    st[d + TD_MAXACK] = 0
    st[d + TD_SCALE] = 0
    st[d + TD_FLAGS] &= IP_CT_TCP_FLAG_BE_LIBERAL


def _note_ignored(st: array[int], pkt: Packet, dir: int, index: int, old: int, seq: int,
                  end: int) -> None:
    """Remember an ignored packet: a later SYN/ACK or RST may prove it was valid."""
    st[LAST_INDEX] = index
    st[LAST_DIR] = dir
    st[LAST_SEQ] = seq
    st[LAST_END] = end
    st[LAST_WIN] = pkt.win
    if index == TCP_SYN_SET and dir == 0:
        # a SYN in ORIGINAL: keep its options for the resync; in LAST_ACK the server may
        # answer with an RFC 5961 challenge ACK that must not count as the last ACK
        lf = 0
        st[LAST_WSCALE] = 0
        optlen = pkt.tcp_optlen
        if optlen:
            wscale, sack_perm = wscale_sackperm(pkt.buf, pkt.tcp_optoff, optlen)
            if wscale >= 0:
                lf = IP_CT_TCP_FLAG_WINDOW_SCALE
                st[LAST_WSCALE] = wscale
            if sack_perm:
                lf |= IP_CT_TCP_FLAG_SACK_PERM
        if old == TCP_CONNTRACK_LAST_ACK:
            lf |= IP_CT_EXP_CHALLENGE_ACK
        st[LAST_FLAGS] = lf
    if old == TCP_CONNTRACK_SYN_SENT and index == TCP_ACK_SET and dir == 1:
        st[LAST_ACK] = pkt.ack       # possibly a challenge ACK answering the SYN


def _handle_invalid(tracker: Tracker, ct: Conn, st: array[int], dir: int, index: int,
                    now: float) -> None:
    """``nf_tcp_handle_invalid``: an out-of-window FIN/RST answering a FIN/RST of the other
    side shortens a long timeout of an ASSURED entry to the UNACK one."""
    status = ct.status
    if not status & IPS_ASSURED or status & IPS_FIXED_TIMEOUT:
        return
    if index != TCP_RST_SET and index != TCP_FIN_SET:
        return
    if st[LAST_DIR] != dir and (st[LAST_INDEX] == TCP_FIN_SET
                                or st[LAST_INDEX] == TCP_RST_SET):
        expires = ct.timeout - now
        if expires < _HANDLE_INVALID_MIN:
            return
        timeout = tracker.settings.nf_conntrack_tcp_timeout_unacknowledged
        if expires > timeout:
            ct.timeout = now + timeout
            if status & IPS_CONFIRMED:
                tracker.table.file(ct, now)      # the entry now expires earlier
    else:
        st[LAST_INDEX] = index
        st[LAST_DIR] = dir
