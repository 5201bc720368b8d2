"""Minimal pcapng writer and reader for lab captures.

Owns: the byte layout of the files the lab writes: one Section Header Block, one Interface
Description Block per fw interface (``if_name``, ``if_tsresol`` = 9, i.e. nanoseconds,
link type Ethernet) and one Enhanced Packet Block per frame (``epb_flags`` carrying the
direction, inbound = 1).  The reader only understands what the writer produces plus the
common variants (other ``if_tsresol`` values, both byte orders, Simple/obsolete blocks are
skipped); it exists for tests and for ``statewall kernel-diff``.
Must not know: namespaces, conntrack, scenarios.

Follows draft-ietf-opsawg-pcapng (sections 4.1 SHB, 4.2 IDB, 4.3 EPB).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

LINKTYPE_ETHERNET: Final = 1
BT_SHB: Final = 0x0A0D0D0A
BT_IDB: Final = 0x00000001
BT_EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
EPB_FLAGS: Final = 2
DIR_INBOUND: Final = 1
DIR_OUTBOUND: Final = 2


@dataclass(frozen=True, slots=True)
class PcapngPacket:
    ts_ns: int
    iface: str
    data: bytes
    orig_len: int
    direction: int  # 0 unknown, 1 inbound, 2 outbound


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes((-len(value)) % 4)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def write_pcapng(fp: BinaryIO, ifaces: Iterable[str],
                 packets: Iterable[tuple[int, str, bytes, int]],
                 *, app: str = "statewall lab") -> int:
    """Write ``packets`` = (ts_ns, iface, frame, direction) to ``fp``; returns the count.

    Interfaces get IDB ids in the order given; every packet's iface must be among them.
    """
    names = list(ifaces)
    index = {n: i for i, n in enumerate(names)}
    shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    shb += _opt(4, app.encode()) + _opt(OPT_ENDOFOPT, b"")  # shb_userappl
    fp.write(_block(BT_SHB, shb))
    for name in names:
        idb = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 262144)
        idb += _opt(IF_NAME, name.encode()) + _opt(IF_TSRESOL, bytes([9]))
        idb += _opt(OPT_ENDOFOPT, b"")
        fp.write(_block(BT_IDB, idb))
    n = 0
    for ts_ns, iface, data, direction in packets:
        body = struct.pack("<IIIII", index[iface], ts_ns >> 32, ts_ns & 0xFFFFFFFF,
                           len(data), len(data))
        body += data + bytes((-len(data)) % 4)
        if direction:
            body += _opt(EPB_FLAGS, struct.pack("<I", direction)) + _opt(OPT_ENDOFOPT, b"")
        fp.write(_block(BT_EPB, body))
        n += 1
    return n


def _options(buf: bytes, off: int, end: int, e: str) -> Iterator[tuple[int, bytes]]:
    while off + 4 <= end:
        code, ln = struct.unpack_from(e + "HH", buf, off)
        if code == OPT_ENDOFOPT:
            return
        yield code, buf[off + 4: off + 4 + ln]
        off += 4 + ln + ((-ln) % 4)


def read_pcapng(data: bytes) -> list[PcapngPacket]:
    """Parse a pcapng file's bytes into packets (Ethernet or any link type, as raw data)."""
    out: list[PcapngPacket] = []
    off = 0
    e = "<"
    ifs: list[tuple[str, int, int]] = []  # name, tsresol divisor base, exponent
    while off + 12 <= len(data):
        (btype,) = struct.unpack_from("<I", data, off)
        if btype == BT_SHB:
            magic = data[off + 8: off + 12]
            e = "<" if magic == struct.pack("<I", BYTE_ORDER_MAGIC) else ">"
            ifs = []
        (blen,) = struct.unpack_from(e + "I", data, off + 4)
        if blen < 12 or off + blen > len(data):
            raise ValueError(f"bad pcapng block length {blen} at {off}")
        body_end = off + blen - 4
        if btype == BT_IDB:
            name = f"if{len(ifs)}"
            res = (10, 6)
            for code, val in _options(data, off + 16, body_end, e):
                if code == IF_NAME:
                    name = val.rstrip(b"\0").decode()
                elif code == IF_TSRESOL and val:
                    r = val[0]
                    res = (2, r & 0x7F) if r & 0x80 else (10, r)
            ifs.append((name, res[0], res[1]))
        elif btype == BT_EPB:
            ifid, hi, lo, caplen, olen = struct.unpack_from(e + "IIIII", data, off + 8)
            raw = (hi << 32) | lo
            name, base, exp = ifs[ifid]
            ts_ns = raw * 1_000_000_000 // (base ** exp)
            pkt = data[off + 28: off + 28 + caplen]
            direction = 0
            for code, val in _options(data, off + 28 + caplen + ((-caplen) % 4), body_end, e):
                if code == EPB_FLAGS and len(val) >= 4:
                    direction = struct.unpack(e + "I", val[:4])[0] & 3
            out.append(PcapngPacket(ts_ns, name, pkt, olen, direction))
        off += blen
    return out
