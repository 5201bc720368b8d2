"""Streaming capture files: read and write pcap and pcapng, block by block.

Owns: the only code in statewall that reads or writes capture files. Must not know: link
layers beyond the link-type number (see ``packet/link.py``), IP, conntrack.

Follows: the pcap format (libpcap ``sf-pcap.c``, draft-ietf-opsawg-pcap) and pcapng
(draft-ietf-opsawg-pcapng: SHB, IDB, EPB, SPB, obsolete PB; other blocks - NRB, ISB, DSB,
custom, systemd journal... - are skipped by their length).

Reading::

    with open_capture(path) as cap:          # raises CaptureError: not a capture, bad header
        for fr in cap:                       # Frame records, one per packet, in file order
            ...
        if cap.error is not None:            # the file is damaged: fr was the last good one
            report(cap.error)                # CaptureError: name, offset, reason

* The reader never reads more than one block (pcapng) or one record (pcap) at a time, so a
  file larger than memory works; it also reads from pipes (only ``read`` is used).
* Damage after the file header (a truncated last block, a block whose lengths disagree, a
  record length no capture can have, an EPB for an interface never described) ends the
  iteration quietly after every complete packet before it and sets ``error`` to a
  CaptureError telling the byte offset of the damaged block or record and what is wrong.
  Nothing but CaptureError ever comes out of a reader for bad data.
* ``Frame.ts_ns`` is the exact timestamp in integer nanoseconds (``if_tsresol`` including
  power-of-2 resolutions, and ``if_tsoffset``, applied; finer than 1 ns is floored);
  ``Frame.ts`` is the same as float seconds (a float resolves ~0.24 µs around 2020-2100, so
  use ``ts_ns`` where exactness matters). ``Frame.truncated`` marks a frame cut by the
  snapshot length (caplen < original length).
* Interfaces: ``iface_id`` is the pcapng IDB index within its section (0 for pcap; the
  ifindex for the "modified" Kuznetzov pcap), ``iface_name`` the IDB ``if_name`` option or
  None. The SLL2 interface index lives in the frame: ``packet.link.l3_offset`` returns it.

Writing: ``PcapWriter`` (one link type, µs or ns) and ``PcapngWriter`` (SHB, one IDB per
(interface name, link type) created on first use, EPBs with µs or ns resolution).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from struct import Struct
from types import TracebackType
from typing import Final, NamedTuple, Protocol

__all__ = [
    "CaptureError", "Frame", "Interface", "CaptureReader", "open_capture", "Readable",
    "Writable",
    "PcapWriter", "PcapngWriter",
    "PCAP_MAGIC_US", "PCAP_MAGIC_NS", "PCAP_MAGIC_MODIFIED", "PCAPNG_SHB",
    "MAX_PCAP_CAPLEN", "MAX_BLOCK_SIZE",
]

PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_MAGIC_NS: Final = 0xA1B23C4D
PCAP_MAGIC_MODIFIED: Final = 0xA1B2CD34      # Kuznetzov's patched libpcap: 24-byte records
PCAPNG_SHB: Final = 0x0A0D0D0A
_PCAPNG_BOM: Final = 0x1A2B3C4D

_BT_IDB: Final = 0x00000001
_BT_PB: Final = 0x00000002                   # obsolete Packet Block
_BT_SPB: Final = 0x00000003
_BT_EPB: Final = 0x00000006

_OPT_ENDOFOPT: Final = 0
_OPT_IF_NAME: Final = 2
_OPT_IF_TSRESOL: Final = 9
_OPT_IF_TSOFFSET: Final = 14
_OPT_EPB_FLAGS: Final = 2
_OPT_SHB_USERAPPL: Final = 4

MAX_PCAP_CAPLEN: Final = 0x40000             # libpcap's largest snapshot length (256 KiB)
MAX_BLOCK_SIZE: Final = 16 * 1024 * 1024     # larger pcapng blocks are taken as corruption

_NS: Final = 1_000_000_000


class Readable(Protocol):
    """What the reader needs of a stream: ``read(n)`` (binary files, pipes, gzip...)."""

    def read(self, size: int = ..., /) -> bytes | None: ...


class Writable(Protocol):
    """What the writers need of a stream."""

    def write(self, data: bytes, /) -> object: ...


class CaptureError(Exception):
    """A capture file that cannot be read (further).

    ``name``: the file's name; ``offset``: byte offset of the damaged header, block or record
    (-1 when not about a place in the file); ``reason``: what is wrong.
    """

    def __init__(self, name: str, offset: int, reason: str) -> None:
        where = f" at offset {offset}" if offset >= 0 else ""
        super().__init__(f"{name}{where}: {reason}")
        self.name = name
        self.offset = offset
        self.reason = reason


class Frame(NamedTuple):
    """One captured packet as the capture file stored it (the link-layer frame)."""

    ts: float            # seconds since the epoch (float: ~0.24 µs resolution today)
    ts_ns: int           # exact nanoseconds since the epoch
    linktype: int        # LINKTYPE_* of the interface
    iface_id: int        # pcapng interface index in its section; 0 for pcap
    iface_name: str | None
    caplen: int          # len(data)
    origlen: int         # length on the wire
    data: bytes
    flags: int           # pcapng epb_flags (bits 0-1 direction: 1 in, 2 out), else 0

    @property
    def truncated(self) -> bool:
        """True when the snapshot length cut the frame (caplen < original length)."""
        return self.caplen < self.origlen


class Interface(NamedTuple):
    """A pcapng IDB (or the pcap file header's link description)."""

    linktype: int
    snaplen: int
    name: str | None
    ts_mul: int          # ts_ns = ts_units * ts_mul // ts_div + ts_offset_ns
    ts_div: int
    ts_offset_ns: int


class _Structs:
    """Precompiled pcapng unpackers for one byte order."""

    __slots__ = ("u32", "i64", "hh", "ii", "epb", "pb", "idb")

    def __init__(self, e: str) -> None:
        self.u32 = Struct(e + "I").unpack_from
        self.i64 = Struct(e + "q").unpack_from
        self.hh = Struct(e + "HH").unpack_from
        self.ii = Struct(e + "II").unpack_from
        self.epb = Struct(e + "IIIII").unpack_from       # if_id ts_hi ts_lo caplen origlen
        self.pb = Struct(e + "H2xIIII").unpack_from      # obsolete PB: u16 if_id, drops
        self.idb = Struct(e + "H2xI").unpack_from        # linktype, (reserved), snaplen


_STRUCTS: Final = {"<": _Structs("<"), ">": _Structs(">")}


class _Damage(Exception):
    """Internal: damage found at ``offset``; turned into ``CaptureError`` by the reader."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def _tsresol(v: int) -> tuple[int, int]:
    """``if_tsresol`` byte -> (mul, div) so that ns = units * mul // div."""
    units = 1 << (v & 0x7F) if v & 0x80 else 10 ** v
    if units <= _NS and _NS % units == 0:
        return _NS // units, 1
    return _NS, units


class CaptureReader:
    """Iterate the packets of a pcap or pcapng stream; see the module docstring.

    The file header is read by the constructor (CaptureError if it is not a capture). The
    reader is single-pass: iterate it once. ``error`` is None until damage ends iteration.
    ``fmt`` is "pcap" or "pcapng"; ``interfaces`` lists the current section's interfaces.
    """

    def __init__(self, f: Readable, name: str | None = None, *, owns_file: bool = False):
        if isinstance(f, io.RawIOBase):
            # raw streams (pipes, sockets) may return short reads; buffered ones loop for us
            f = io.BufferedReader(f)
        self._f = f
        self.name: str = name if name is not None else str(getattr(f, "name", "<stream>"))
        self._owns = owns_file
        self.error: CaptureError | None = None
        self.interfaces: list[Interface] = []
        self.pos = 0                              # bytes consumed so far
        self.nframes = 0
        self._pcap_rec: Struct | None = None
        self._pcap_modified = False
        self._e = "<"
        head = self._read(4)
        if len(head) < 4:
            raise CaptureError(self.name, -1, "file too short to be a capture"
                               if head else "empty file")
        if head == b"\x0a\x0d\x0d\x0a":
            self.fmt = "pcapng"
            try:
                head += self._read(4)
                if len(head) < 8:
                    raise _Damage(0, "truncated section header block")
                self._section(0, head)
            except _Damage as d:
                raise CaptureError(self.name, d.offset, d.reason) from None
            return
        self.fmt = "pcap"
        for e in "<>":
            magic = Struct(e + "I").unpack(head)[0]
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED):
                break
        else:
            raise CaptureError(self.name, 0,
                               f"not a pcap or pcapng file (magic 0x{head.hex()})")
        self._e = e
        rest = self._read(20)
        if len(rest) < 20:
            raise CaptureError(self.name, 4, "truncated pcap file header")
        major, minor, _zone, _sigfigs, snaplen, network = Struct(e + "HHiIII").unpack(rest)
        if major != 2:
            raise CaptureError(self.name, 4, f"unsupported pcap version {major}.{minor}")
        mul = 1 if magic == PCAP_MAGIC_NS else 1000
        self.interfaces = [Interface(network & 0x03FFFFFF, snaplen, None, mul, 1, 0)]
        self._pcap_modified = magic == PCAP_MAGIC_MODIFIED
        self._pcap_rec = Struct(e + ("IIIIIHBx" if self._pcap_modified else "IIII"))

    # -- plumbing -------------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        b = self._f.read(n) or b""                # None: non-blocking stream, nothing ready
        self.pos += len(b)
        return b

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file if the reader opened it (``open_capture``)."""
        if self._owns:
            close = getattr(self._f, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Frame]:
        it = self._iter_pcap() if self.fmt == "pcap" else self._iter_pcapng()
        try:
            yield from it
        except _Damage as d:
            self.error = CaptureError(self.name, d.offset, d.reason)

    # -- pcap -----------------------------------------------------------------------------
    def _iter_pcap(self) -> Iterator[Frame]:
        rec = self._pcap_rec
        assert rec is not None
        unpack = rec.unpack
        hlen = rec.size
        read = self._f.read
        iface = self.interfaces[0]
        linktype = iface.linktype
        mul = iface.ts_mul
        # libpcap refuses records above its maximum snapshot length; a file whose header
        # claims a bigger snaplen is believed up to MAX_BLOCK_SIZE (bounds one read)
        limit = min(max(iface.snaplen, MAX_PCAP_CAPLEN), MAX_BLOCK_SIZE)
        modified = self._pcap_modified
        pos = self.pos
        n = 0
        try:
            while True:
                hdr = read(hlen) or b""
                if not hdr:
                    return
                if len(hdr) < hlen:
                    pos += len(hdr)
                    raise _Damage(pos - len(hdr),
                                  f"truncated record header ({len(hdr)} of {hlen} bytes)")
                fields = unpack(hdr)
                sec, frac, caplen, origlen = fields[0], fields[1], fields[2], fields[3]
                if caplen > limit:
                    raise _Damage(pos, f"record length {caplen} exceeds the maximum {limit}"
                                  " (corrupt record header)")
                data = read(caplen) or b""
                if len(data) < caplen:
                    pos += hlen + len(data)
                    raise _Damage(pos - hlen - len(data), f"truncated record data "
                                  f"({len(data)} of {caplen} bytes)")
                pos += hlen + caplen
                n += 1
                ts_ns = sec * _NS + frac * mul
                yield Frame(ts_ns / _NS, ts_ns, linktype, fields[4] if modified else 0,
                            None, caplen, origlen, data, 0)
        finally:
            self.pos = pos
            self.nframes += n

    # -- pcapng ---------------------------------------------------------------------------
    def _section(self, start: int, hdr: bytes) -> None:
        """Read an SHB at ``start`` whose type and length fields ``hdr`` were consumed."""
        bom = self._read(4)
        if bom == b"\x1a\x2b\x3c\x4d":
            e = ">"
        elif bom == b"\x4d\x3c\x2b\x1a":
            e = "<"
        elif len(bom) < 4:
            raise _Damage(start, "truncated section header block")
        else:
            raise _Damage(start, f"bad pcapng byte-order magic 0x{bom.hex()}")
        st = _STRUCTS[e]
        blen = st.u32(hdr, 4)[0]
        if blen < 28 or blen % 4 or blen > MAX_BLOCK_SIZE:
            raise _Damage(start, f"bad section header block length {blen}")
        body = self._read(blen - 12)
        if len(body) < blen - 12:
            raise _Damage(start, f"truncated section header block ({len(body) + 12} of "
                          f"{blen} bytes)")
        major, minor = st.hh(body, 0)
        if st.u32(body, len(body) - 4)[0] != blen:
            raise _Damage(start, "section header block lengths disagree")
        if major != 1:
            raise _Damage(start, f"unsupported pcapng version {major}.{minor}")
        self._e = e
        self.interfaces = []

    def _options(self, b: bytes, off: int, end: int, bstart: int) -> Iterator[tuple[int, bytes]]:
        u = _STRUCTS[self._e].hh
        while off + 4 <= end:
            code, olen = u(b, off)
            off += 4
            if code == _OPT_ENDOFOPT:
                return
            if off + olen > end:
                raise _Damage(bstart, f"option {code} overruns its block")
            yield code, b[off:off + olen]
            off += (olen + 3) & ~3

    def _idb(self, body: bytes, bstart: int) -> None:
        st = _STRUCTS[self._e]
        if len(body) < 12:
            raise _Damage(bstart, "interface description block too short")
        linktype, snaplen = st.idb(body, 0)
        name: str | None = None
        mul, div, offset_ns = 1000, 1, 0
        for code, val in self._options(body, 8, len(body) - 4, bstart):
            if code == _OPT_IF_NAME:
                name = val.rstrip(b"\0").decode("utf-8", "replace")
            elif code == _OPT_IF_TSRESOL and len(val) >= 1:
                mul, div = _tsresol(val[0])
            elif code == _OPT_IF_TSOFFSET and len(val) >= 8:
                offset_ns = st.i64(val, 0)[0] * _NS
        self.interfaces.append(Interface(linktype, snaplen, name, mul, div, offset_ns))

    def _iter_pcapng(self) -> Iterator[Frame]:
        fread = self._f.read
        ifaces = self.interfaces
        st = _STRUCTS[self._e]
        while True:
            bstart = self.pos
            hdr = fread(8) or b""
            if not hdr:
                return
            self.pos = pos = bstart + len(hdr)
            if len(hdr) < 8:
                raise _Damage(bstart, f"truncated block header ({len(hdr)} of 8 bytes)")
            if hdr[:4] == b"\x0a\x0d\x0d\x0a":
                # a new section: its byte order may differ, and it forgets the interfaces
                self._section(bstart, hdr)
                ifaces = self.interfaces
                st = _STRUCTS[self._e]
                continue
            btype, blen = st.ii(hdr, 0)
            if blen < 12 or blen % 4:
                raise _Damage(bstart, f"bad block length {blen} (block type 0x{btype:08x})")
            if blen > MAX_BLOCK_SIZE:
                raise _Damage(bstart, f"block length {blen} exceeds {MAX_BLOCK_SIZE}"
                              f" (block type 0x{btype:08x})")
            body = fread(blen - 8) or b""
            self.pos = pos + len(body)
            if len(body) < blen - 8:
                raise _Damage(bstart, f"truncated block (type 0x{btype:08x}, "
                              f"{len(body) + 8} of {blen} bytes)")
            if st.u32(body, blen - 12)[0] != blen:
                raise _Damage(bstart, f"block lengths disagree (type 0x{btype:08x}):"
                              " corrupt block")
            if btype == _BT_EPB or btype == _BT_PB:
                if blen < 32:
                    raise _Damage(bstart, "packet block too short")
                ifid, tshi, tslo, caplen, origlen = (st.epb if btype == _BT_EPB else st.pb)(
                    body, 0)
                if ifid >= len(ifaces):
                    raise _Damage(bstart, f"packet for undefined interface {ifid}")
                end = 20 + caplen
                if end > blen - 12:
                    raise _Damage(bstart, f"captured length {caplen} overruns its block")
                iface = ifaces[ifid]
                flags = 0
                optoff = 20 + ((caplen + 3) & ~3)
                if optoff < blen - 12:
                    for code, val in self._options(body, optoff, blen - 12, bstart):
                        if code == _OPT_EPB_FLAGS and len(val) == 4:   # PB: pack_flags
                            flags = st.u32(val, 0)[0]
                ts_ns = (tshi << 32 | tslo) * iface.ts_mul // iface.ts_div + iface.ts_offset_ns
                self.nframes += 1
                yield Frame(ts_ns / _NS, ts_ns, iface.linktype, ifid, iface.name, caplen,
                            origlen, body[20:end], flags)
            elif btype == _BT_IDB:
                self._idb(body, bstart)
            elif btype == _BT_SPB:
                if blen < 16:
                    raise _Damage(bstart, "simple packet block too short")
                if not ifaces:
                    raise _Damage(bstart, "simple packet block without an interface")
                iface = ifaces[0]
                origlen = st.u32(body, 0)[0]
                caplen = min(origlen, blen - 16)
                if iface.snaplen:
                    caplen = min(caplen, iface.snaplen)
                self.nframes += 1
                # an SPB has no timestamp
                yield Frame(0.0, 0, iface.linktype, 0, iface.name, caplen, origlen,
                            body[4:4 + caplen], 0)
            # any other block (NRB, ISB, DSB, custom, ...) is skipped


def open_capture(path: str | os.PathLike[str]) -> CaptureReader:
    """Open a pcap/pcapng file by path; the reader closes it (use ``with``)."""
    f = open(path, "rb")  # noqa: SIM115 - the reader owns and closes it
    try:
        return CaptureReader(f, os.fspath(path), owns_file=True)
    except BaseException:
        f.close()
        raise


# -- writers ------------------------------------------------------------------------------
class PcapWriter:
    """Write a classic pcap file: one link type, µs (default) or ns timestamps."""

    def __init__(self, f: Writable, linktype: int = 1,
                 snaplen: int = MAX_PCAP_CAPLEN, *, nanosecond: bool = False,
                 big_endian: bool = False) -> None:
        self._f = f
        e = ">" if big_endian else "<"
        self._ns = nanosecond
        self._rec = Struct(e + "IIII").pack
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        f.write(Struct(e + "IHHiIII").pack(magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, data: bytes, ts_ns: int, origlen: int | None = None) -> None:
        """Append one frame with timestamp ``ts_ns`` (integer nanoseconds)."""
        sec, frac = divmod(ts_ns, _NS)
        if not self._ns:
            frac //= 1000
        self._f.write(self._rec(sec, frac, len(data),
                                len(data) if origlen is None else origlen) + data)


class PcapngWriter:
    """Write a pcapng section: SHB, IDBs on demand, EPBs (ns by default, or µs)."""

    def __init__(self, f: Writable, *, nanosecond: bool = True,
                 big_endian: bool = False, userappl: str = "statewall") -> None:
        self._f = f
        self._e = e = ">" if big_endian else "<"
        self._ns = nanosecond
        self._ids: dict[tuple[str | None, int], int] = {}
        self._count = 0
        self._epb = Struct(e + "IIIIIII").pack
        opts = self._opt(_OPT_SHB_USERAPPL, userappl.encode()) + self._opt(0, b"")
        body = Struct(e + "IHHq").pack(_PCAPNG_BOM, 1, 0, -1) + opts
        self._block(PCAPNG_SHB, body)

    def _opt(self, code: int, val: bytes) -> bytes:
        return (Struct(self._e + "HH").pack(code, len(val)) + val
                + b"\0" * (-len(val) & 3))

    def _block(self, btype: int, body: bytes) -> None:
        blen = 12 + len(body)
        u = Struct(self._e + "I").pack
        self._f.write(Struct(self._e + "II").pack(btype, blen) + body + u(blen))

    def add_interface(self, linktype: int, name: str | None = None, snaplen: int = 0) -> int:
        """Write a new IDB and return its interface index."""
        opts = b""
        if name is not None:
            opts += self._opt(_OPT_IF_NAME, name.encode())
        if self._ns:
            opts += self._opt(_OPT_IF_TSRESOL, b"\x09")
        if opts:
            opts += self._opt(_OPT_ENDOFOPT, b"")
        self._block(_BT_IDB, Struct(self._e + "HHI").pack(linktype, 0, snaplen) + opts)
        self._count += 1
        return self._count - 1

    def interface(self, name: str | None, linktype: int) -> int:
        """The interface index for (name, linktype), writing its IDB on first use."""
        key = (name, linktype)
        ifid = self._ids.get(key)
        if ifid is None:
            ifid = self._ids[key] = self.add_interface(linktype, name)
        return ifid

    def write(self, data: bytes, ts_ns: int, iface: int = 0, origlen: int | None = None,
              flags: int | None = None) -> None:
        """Append an EPB for interface index ``iface`` at ``ts_ns`` (integer nanoseconds)."""
        if iface >= self._count:
            raise ValueError(f"interface {iface} has no IDB yet")
        ts = ts_ns if self._ns else ts_ns // 1000
        caplen = len(data)
        opts = b""
        if flags is not None:
            opts = self._opt(_OPT_EPB_FLAGS, Struct(self._e + "I").pack(flags)) \
                + self._opt(_OPT_ENDOFOPT, b"")
        pad = b"\0" * (-caplen & 3)
        blen = 32 + caplen + len(pad) + len(opts)
        self._f.write(self._epb(_BT_EPB, blen, iface, ts >> 32, ts & 0xFFFFFFFF, caplen,
                                caplen if origlen is None else origlen)
                      + data + pad + opts + Struct(self._e + "I").pack(blen))
