"""TCP options: the two scans conntrack does, and a general parser.

Owns: walking the TCP options area (``buf[off:off+length]``, i.e. ``Packet.tcp_optoff`` /
``Packet.tcp_optlen``) the way Linux does, never raising on malformed input. Must not know:
conntrack state, rules. Follows net/netfilter/nf_conntrack_proto_tcp.c (``tcp_options``,
``tcp_sack``) and net/ipv4/tcp_input.c (``tcp_parse_options``) for the general parser.

The walk rules shared by all three (the kernel's): EOL (0) ends the list; NOP (1) is one
byte; any other kind needs a length byte inside the area, a length >= 2 ("silly options"
end the walk) and no more than the bytes left (a partial option ends the walk).
"""

from __future__ import annotations

from typing import Final

TCPOPT_EOL: Final = 0
TCPOPT_NOP: Final = 1
TCPOPT_MSS: Final = 2
TCPOPT_WINDOW: Final = 3
TCPOPT_SACK_PERM: Final = 4
TCPOPT_SACK: Final = 5
TCPOPT_TIMESTAMP: Final = 8

TCPOLEN_MSS: Final = 4
TCPOLEN_WINDOW: Final = 3
TCPOLEN_SACK_PERM: Final = 2
TCPOLEN_TIMESTAMP: Final = 10
TCPOLEN_SACK_BASE: Final = 2
TCPOLEN_SACK_PERBLOCK: Final = 8

TCP_MAX_WSCALE: Final = 14          # RFC 7323: larger shifts are treated as 14

# NOP NOP TIMESTAMP(10): the aligned timestamp-only layout tcp_sack() skips at once
_TSTAMP_ALIGNED: Final = bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP))


def wscale_sackperm(buf: bytes, off: int, length: int) -> tuple[int, bool]:
    """The kernel's ``tcp_options()`` scan: (window scale or -1 if absent, SACK permitted).

    The scale is capped at 14; a later window option overrides an earlier one. The caller
    handles ``length == 0`` (the kernel then leaves the per-direction state untouched).
    """
    end = off + length
    if end > len(buf):
        end = len(buf)
    wscale = -1
    sack_perm = False
    i = off
    while i < end:
        kind = buf[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = buf[i + 1]
        if size < 2 or size > end - i:
            break
        if kind == TCPOPT_SACK_PERM and size == TCPOLEN_SACK_PERM:
            sack_perm = True
        elif kind == TCPOPT_WINDOW and size == TCPOLEN_WINDOW:
            wscale = buf[i + 2]
            if wscale > TCP_MAX_WSCALE:
                wscale = TCP_MAX_WSCALE
        i += size
    return wscale, sack_perm


def highest_sack(buf: bytes, off: int, length: int, sack: int) -> int:
    """The kernel's ``tcp_sack()``: the highest right edge (mod 2**32 order) of the blocks of
    the first well-formed SACK option, or ``sack`` (the ACK number) when it is not beyond."""
    end = off + length
    if end > len(buf):
        end = len(buf)
    if length == 12 and buf[off:off + 4] == _TSTAMP_ALIGNED:
        return sack
    i = off
    while i < end:
        kind = buf[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = buf[i + 1]
        if size < 2 or size > end - i:
            break
        if (kind == TCPOPT_SACK and size >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK
                and not (size - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK):
            j = i + 2 + 4                      # right edge of the first block
            stop = i + size
            while j < stop:
                edge = int.from_bytes(buf[j:j + 4], "big")
                if ((sack - edge) & 0xFFFFFFFF) > 0x7FFFFFFF:     # after(edge, sack)
                    sack = edge
                j += TCPOLEN_SACK_PERBLOCK
            return sack
        i += size
    return sack


class TcpOptions:
    """Decoded options. Absent values are None / False / empty.

    mss, wscale (capped at 14; ``wscale_raw`` keeps the byte), sack_perm, sack (list of
    (left, right) blocks from every SACK option), ts (tsval, tsecr), unknown (kinds of other
    options), truncated (the walk stopped at a malformed or partial option).
    """

    __slots__ = ("mss", "wscale", "wscale_raw", "sack_perm", "sack", "ts", "unknown",
                 "truncated")

    def __init__(self) -> None:
        self.mss: int | None = None
        self.wscale: int | None = None
        self.wscale_raw: int | None = None
        self.sack_perm = False
        self.sack: list[tuple[int, int]] = []
        self.ts: tuple[int, int] | None = None
        self.unknown: list[int] = []
        self.truncated = False

    def __repr__(self) -> str:
        return (f"TcpOptions(mss={self.mss}, wscale={self.wscale}, sack_perm={self.sack_perm},"
                f" sack={self.sack}, ts={self.ts}, unknown={self.unknown},"
                f" truncated={self.truncated})")


def parse_options(buf: bytes, off: int, length: int) -> TcpOptions:
    """All options of the area, with ``tcp_parse_options``' size rules (an option of a known
    kind with the wrong size is skipped, not decoded). Never raises."""
    opts = TcpOptions()
    end = off + length
    if end > len(buf):
        end = len(buf)
        opts.truncated = True
    i = off
    while i < end:
        kind = buf[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            opts.truncated = True
            break
        size = buf[i + 1]
        if size < 2 or size > end - i:
            opts.truncated = True
            break
        if kind == TCPOPT_MSS:
            if size == TCPOLEN_MSS:
                opts.mss = (buf[i + 2] << 8) | buf[i + 3]
        elif kind == TCPOPT_WINDOW:
            if size == TCPOLEN_WINDOW:
                raw = buf[i + 2]
                opts.wscale_raw = raw
                opts.wscale = raw if raw <= TCP_MAX_WSCALE else TCP_MAX_WSCALE
        elif kind == TCPOPT_SACK_PERM:
            if size == TCPOLEN_SACK_PERM:
                opts.sack_perm = True
        elif kind == TCPOPT_TIMESTAMP:
            if size == TCPOLEN_TIMESTAMP:
                opts.ts = (int.from_bytes(buf[i + 2:i + 6], "big"),
                           int.from_bytes(buf[i + 6:i + 10], "big"))
        elif kind == TCPOPT_SACK:
            if (size >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK
                    and not (size - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK):
                for j in range(i + 2, i + size, TCPOLEN_SACK_PERBLOCK):
                    opts.sack.append((int.from_bytes(buf[j:j + 4], "big"),
                                      int.from_bytes(buf[j + 4:j + 8], "big")))
        else:
            opts.unknown.append(kind)
        i += size
    return opts


def build_options(mss: int | None = None, wscale: int | None = None, sack_perm: bool = False,
                  ts: tuple[int, int] | None = None,
                  sack: list[tuple[int, int]] | tuple[tuple[int, int], ...] = ()) -> bytes:
    """Encode options the way Linux lays them out, padded with NOPs to a multiple of 4
    (a helper for tests and packet generators)."""
    out = bytearray()
    if mss is not None:
        out += bytes((TCPOPT_MSS, TCPOLEN_MSS)) + (mss & 0xFFFF).to_bytes(2, "big")
    tsval = b"" if ts is None else ((ts[0] & 0xFFFFFFFF).to_bytes(4, "big")
                                    + (ts[1] & 0xFFFFFFFF).to_bytes(4, "big"))
    if sack_perm and ts is not None:
        out += bytes((TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP))
        out += tsval
    else:
        if sack_perm:
            out += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM))
        if ts is not None:
            out += _TSTAMP_ALIGNED + tsval
    if wscale is not None:
        out += bytes((TCPOPT_NOP, TCPOPT_WINDOW, TCPOLEN_WINDOW, wscale & 0xFF))
    if sack:
        out += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 2 + 8 * len(sack)))
        for left, right in sack:
            out += (left & 0xFFFFFFFF).to_bytes(4, "big") + (right & 0xFFFFFFFF).to_bytes(4, "big")
    while len(out) & 3:
        out.append(TCPOPT_NOP)
    return bytes(out)
