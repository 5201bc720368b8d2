"""TCP sequence adjustment after a NAT helper changed a payload's length (seqadj).

Owns: the per-direction adjustment state of an entry (correction position, offset before
and after it), recording a change (``seqadj_set``), rewriting a segment's sequence and
acknowledgment numbers and its SACK blocks (``seq_adjust``, at the confirm hook after the
helper), the offset the TCP window tracking subtracts from acknowledgments
(``seq_offset``) and handing that offset to the tracker before it sees a segment
(``prime``: the tracker's ``set_seq_offset`` hook holds one value per direction, which this
sets for the segment at hand, so the kernel's "offset before/after the correction point"
choice is exact).
Must not know: FTP (the helper says where and by how much), rules, tables.
Follows net/netfilter/nf_conntrack_seqadj.c (``nf_ct_seqadj_set``, ``nf_ct_seq_adjust``,
``nf_ct_sack_adjust``, ``nf_ct_sack_block_adjust``, ``nf_ct_seq_offset``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..conntrack.proto.tcp import set_seq_offset
from .core import IPS_SEQ_ADJUST, ext
from .manip import csum_replace, get16, l4_full_checksum, put16

if TYPE_CHECKING:
    from ..conntrack.conn import Conn, Tuple
    from ..packet.packet import Packet

_M: Final = 0xFFFFFFFF
TCPOPT_EOL: Final = 0
TCPOPT_NOP: Final = 1
TCPOPT_SACK: Final = 5
TCPOLEN_SACK_PERBLOCK: Final = 8

# some entry has had its sequence numbers adjusted (from then on the tracker is primed)
ACTIVE = False


def _after(a: int, b: int) -> bool:
    """``after(a, b)``: (s32)(b - a) < 0."""
    return ((b - a) & _M) >= 0x80000000


def seqadj_set(ct: Conn, dir: int, seq: int, off: int) -> None:
    """``nf_ct_seqadj_set``: a segment of direction ``dir`` starting at ``seq`` grew by
    ``off`` bytes (negative: shrank)."""
    global ACTIVE
    if off == 0:
        return
    ACTIVE = True
    ct.status |= IPS_SEQ_ADJUST
    e = ext(ct)
    if e.seqadj is None:
        e.seqadj = [[0, 0, 0], [0, 0, 0]]
    w = e.seqadj[dir]
    if w[1] == w[2] or _after(seq & _M, w[0]):
        # offset_before == offset_after || before(correction_pos, seq)
        w[0] = seq & _M
        w[1] = w[2]
        w[2] = (w[2] + off) & _M


def seq_offset(ct: Conn, dir: int, seq: int) -> int:
    """``nf_ct_seq_offset``: the offset of direction ``dir`` at ``seq`` (mod 2**32)."""
    e = ct.nat
    if e is None or e.seqadj is None:
        return 0
    w: list[int] = e.seqadj[dir]
    return w[2] if _after(seq & _M, w[0]) else w[1]


def prime(hash: dict[Tuple, Conn], pkt: Packet, zone: int) -> None:
    """Before the tracker sees a TCP segment: set the receiver's offset its window check
    subtracts from the acknowledgment, ``nf_ct_seq_offset(ct, !dir, ack - 1)``."""
    key = (pkt.src, pkt.dst, 6, pkt.sport, pkt.dport, zone)
    ct = hash.get(key)
    if ct is None or not ct.status & IPS_SEQ_ADJUST or ct.l4 is None:
        return
    dir = 0 if key == ct.orig else 1
    set_seq_offset(ct, 1 - dir, seq_offset(ct, 1 - dir, pkt.ack - 1))


def _sack_adjust(b: bytearray, l4off: int, w: list[int], partial: bool) -> bool:
    """``nf_ct_sack_adjust``: SACK blocks are sequence numbers of the other direction."""
    optoff = l4off + 20
    optend = l4off + (b[l4off + 12] >> 4) * 4
    if optend > len(b):
        return False
    while optoff < optend:
        kind = b[optoff]
        if kind == TCPOPT_EOL:
            return True
        if kind == TCPOPT_NOP:
            optoff += 1
            continue
        if optoff + 1 == optend or optoff + b[optoff + 1] > optend or b[optoff + 1] < 2:
            return False                      # no partial options
        olen = b[optoff + 1]
        if (kind == TCPOPT_SACK and olen >= 2 + TCPOLEN_SACK_PERBLOCK
                and (olen - 2) % TCPOLEN_SACK_PERBLOCK == 0):
            s = optoff + 2
            while s < optoff + olen:
                for p in (s, s + 4):
                    v = int.from_bytes(b[p:p + 4], "big")
                    if _after((v - w[1]) & _M, w[0]):
                        nv = (v - w[2]) & _M
                    else:
                        nv = (v - w[1]) & _M
                    nb = nv.to_bytes(4, "big")
                    if not partial:
                        put16(b, l4off + 16, csum_replace(get16(b, l4off + 16), b[p:p + 4], nb))
                    b[p:p + 4] = nb
                s += TCPOLEN_SACK_PERBLOCK
        optoff += olen
    return True


def seq_adjust(pkt: Packet, ct: Conn, dir: int, partial: bool) -> bool:
    """``nf_ct_seq_adjust``: shift this segment's sequence number by its direction's
    offset and its acknowledgment (and SACK blocks) back by the other direction's.
    Rewrites ``pkt.buf``; False: the packet is dropped."""
    e = ct.nat
    if e is None or e.seqadj is None:
        return True
    this, other = e.seqadj[dir], e.seqadj[1 - dir]
    b = bytearray(pkt.buf)
    l4off = pkt.l4off
    if len(b) < l4off + 20:
        return False
    seq = int.from_bytes(b[l4off + 4:l4off + 8], "big")
    ack = int.from_bytes(b[l4off + 8:l4off + 12], "big")
    seqoff = this[2] if _after(seq, this[0]) else this[1]
    ackoff = other[2] if _after((ack - other[1]) & _M, other[0]) else other[1]
    newseq = ((seq + seqoff) & _M).to_bytes(4, "big")
    newack = ((ack - ackoff) & _M).to_bytes(4, "big")
    if not partial:
        c = csum_replace(get16(b, l4off + 16), b[l4off + 4:l4off + 8], newseq)
        c = csum_replace(c, b[l4off + 8:l4off + 12], newack)
        put16(b, l4off + 16, c)
    b[l4off + 4:l4off + 8] = newseq
    b[l4off + 8:l4off + 12] = newack
    ok = _sack_adjust(b, l4off, other, partial)
    if partial:
        l4_full_checksum(b, l4off, 6, pkt.l3num == 10)
    pkt.buf = bytes(b)
    pkt.seq = int.from_bytes(newseq, "big")
    pkt.ack = int.from_bytes(newack, "big")
    return ok
