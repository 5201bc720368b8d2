"""Capture reader and writers: scapy-written files, our writers, damage, property tests."""

from __future__ import annotations

import io
import os
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter as ScapyNgWriter
from scapy.utils import wrpcap, wrpcapng

from statewall.io.capture import (
    CaptureError, CaptureReader, Frame, PcapngWriter, PcapWriter, open_capture,
)

T0 = 1_700_000_000_123_456_789          # ns


def frames(n: int = 5) -> list[bytes]:
    out = []
    for i in range(n):
        ip = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000 + i, dport=80) / ("x" * i)
        out.append(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip))
    return out


def read_all(data: bytes, name: str = "mem") -> tuple[list[Frame], CaptureReader]:
    r = CaptureReader(io.BytesIO(data), name)
    return list(r), r


# --- hand-built pcapng blocks -----------------------------------------------------------------

def block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\0" * (-len(body) & 3)
    blen = len(body) + 12
    return struct.pack(e + "II", btype, blen) + body + struct.pack(e + "I", blen)


def opt(code: int, val: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(val)) + val + b"\0" * (-len(val) & 3)


def shb(e: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def idb(linktype: int = 1, snaplen: int = 0, opts: bytes = b"", e: str = "<") -> bytes:
    if opts:
        opts += opt(0, b"", e)
    return block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts, e)


def epb(data: bytes, ts: int, ifid: int = 0, origlen: int | None = None, e: str = "<",
        opts: bytes = b"") -> bytes:
    ol = len(data) if origlen is None else origlen
    pad = b"\0" * (-len(data) & 3)
    return block(6, struct.pack(e + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(data), ol)
                 + data + pad + opts, e)


# --- scapy-written files ----------------------------------------------------------------------

@pytest.mark.parametrize("nano", [False, True])
def test_scapy_pcap(tmp_path: Path, nano: bool) -> None:
    pkts = [Ether(f) for f in frames()]
    for i, p in enumerate(pkts):
        p.time = Decimal("1700000000.123456789") + i
    fn = tmp_path / "a.pcap"
    wrpcap(str(fn), pkts, nano=nano)
    with open_capture(fn) as cap:
        got = list(cap)
        assert cap.fmt == "pcap" and cap.error is None
    assert [g.data for g in got] == frames()
    frac = 123456789 if nano else 123457000           # scapy rounds to the µs
    assert [g.ts_ns for g in got] == [(1700000000 + i) * 10**9 + frac for i in range(5)]
    assert all(g.linktype == 1 and g.iface_id == 0 and not g.truncated for g in got)
    assert abs(got[0].ts - 1700000000.123456789) < 1e-6


def test_scapy_pcapng_with_interface_names(tmp_path: Path) -> None:
    fn = tmp_path / "a.pcapng"
    pkts = [Ether(f) for f in frames(6)]
    for i, p in enumerate(pkts):
        p.time = Decimal(1700000000) + Decimal(i) / 1000
        p.sniffed_on = ("eth0", "wlan0", "eth0")[i % 3]
    w = ScapyNgWriter(str(fn))
    for p in pkts:
        w.write(p)
    w.close()
    with open_capture(fn) as cap:
        got = list(cap)
        assert cap.error is None
    assert [g.data for g in got] == frames(6)
    assert [g.iface_name for g in got] == ["eth0", "wlan0", "eth0"] * 2
    assert got[0].iface_id == got[2].iface_id != got[1].iface_id
    assert [g.ts_ns for g in got] == [1700000000 * 10**9 + i * 10**6 for i in range(6)]


def test_scapy_wrpcapng_plain(tmp_path: Path) -> None:
    fn = tmp_path / "b.pcapng"
    wrpcapng(str(fn), [Ether(f) for f in frames()])
    with open_capture(fn) as cap:
        assert [g.data for g in cap] == frames()
        assert cap.fmt == "pcapng"


# --- our writers ----------------------------------------------------------------------------

@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_writer_roundtrip(big: bool, nano: bool) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, linktype=101, nanosecond=nano, big_endian=big)
    ips = [bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=i)) for i in range(4)]
    for i, d in enumerate(ips):
        w.write(d, T0 + i, origlen=len(d) + 100 if i == 2 else None)
    got, r = read_all(buf.getvalue())
    assert r.error is None
    assert [g.data for g in got] == ips
    assert [g.linktype for g in got] == [101] * 4
    assert [g.truncated for g in got] == [False, False, True, False]
    assert got[2].origlen == got[2].caplen + 100
    exact = [T0 + i for i in range(4)]
    assert [g.ts_ns for g in got] == (exact if nano else [t // 1000 * 1000 for t in exact])


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcapng_writer_roundtrip(big: bool, nano: bool) -> None:
    buf = io.BytesIO()
    w = PcapngWriter(buf, nanosecond=nano, big_endian=big)
    eth0 = w.interface("eth0", 1)
    lo = w.interface("lo", 1)
    raw = w.interface(None, 101)
    assert w.interface("eth0", 1) == eth0 and len({eth0, lo, raw}) == 3
    fs = frames(3)
    w.write(fs[0], T0, eth0, flags=1)
    w.write(fs[1], T0 + 1, lo, origlen=1000, flags=2)
    w.write(fs[2][14:], T0 + 2, raw)
    got, r = read_all(buf.getvalue())
    assert r.error is None and len(r.interfaces) == 3
    assert [(g.iface_name, g.iface_id, g.linktype) for g in got] == [
        ("eth0", eth0, 1), ("lo", lo, 1), (None, raw, 101)]
    assert [g.data for g in got] == [fs[0], fs[1], fs[2][14:]]
    assert [g.flags for g in got] == [1, 2, 0]
    assert got[1].truncated and got[1].origlen == 1000
    step = 1 if nano else 1000
    assert [g.ts_ns for g in got] == [(T0 + i) // step * step for i in range(3)]
    with pytest.raises(ValueError):
        w.write(b"x", 0, 7)


def test_multiple_sections_both_byte_orders() -> None:
    a, b = io.BytesIO(), io.BytesIO()
    wa = PcapngWriter(a, big_endian=False)
    wa.write(b"first", 1, wa.interface("a0", 101))
    wb = PcapngWriter(b, big_endian=True)
    wb.interface("b0", 1)
    wb.write(b"second", 2, wb.interface("b1", 228))
    got, r = read_all(a.getvalue() + b.getvalue() + a.getvalue())
    assert r.error is None
    assert [(g.data, g.iface_name, g.iface_id, g.linktype) for g in got] == [
        (b"first", "a0", 0, 101), (b"second", "b1", 1, 228), (b"first", "a0", 0, 101)]


# --- pcapng details -------------------------------------------------------------------------

def test_tsresol_power_of_two_and_tsoffset() -> None:
    # 2^-20 s units; 1.5 s + offset 100 s
    data = (shb() + idb(1, 0, opt(9, b"\x94") + opt(14, struct.pack("<q", 100)))
            + epb(b"abc", (3 << 19)))
    got, r = read_all(data)
    assert r.error is None and got[0].ts_ns == 101_500_000_000 and got[0].ts == 101.5
    # 10^-3 (ms) and 10^-12 (ps, floored to ns)
    data = shb() + idb(1, 0, opt(9, b"\x03")) + idb(1, 0, opt(9, b"\x0c")) + epb(
        b"x", 1234) + epb(b"y", 1_234_567_891_999, ifid=1)
    got, _ = read_all(data)
    assert [g.ts_ns for g in got] == [1_234_000_000, 1_234_567_891]


def test_default_resolution_is_microseconds() -> None:
    got, _ = read_all(shb() + idb() + epb(b"x", 1_700_000_000_000_001))
    assert got[0].ts_ns == 1_700_000_000_000_001_000


def test_unknown_blocks_are_skipped() -> None:
    nrb = block(4, struct.pack("<HH", 1, 8) + b"\x01\x02\x03\x04abc\0" + b"\0" * 4)
    isb = block(5, struct.pack("<III", 0, 0, 0))
    custom = block(0x00000BAD, struct.pack("<I", 32473) + b"anything")
    dsb = block(0x0000000A, struct.pack("<II", 0x544C534B, 4) + b"keys")
    weird = block(0x12345678, b"")
    data = shb() + nrb + idb() + isb + epb(b"one", 1) + custom + dsb + weird + epb(b"two", 2)
    got, r = read_all(data)
    assert r.error is None and [g.data for g in got] == [b"one", b"two"]


def test_simple_and_obsolete_packet_blocks() -> None:
    spb = block(3, struct.pack("<I", 10) + b"0123456789")
    pb = block(2, struct.pack("<HHIIII", 0, 0, 0, 5, 4, 9) + b"abcd")
    got, r = read_all(shb() + idb(101, 6) + spb + pb)
    assert r.error is None
    assert got[0].data == b"012345" and got[0].origlen == 10 and got[0].truncated
    assert got[0].ts_ns == 0
    assert (got[1].data, got[1].origlen, got[1].ts_ns) == (b"abcd", 9, 5000)


def test_epb_for_undefined_interface_is_damage() -> None:
    got, r = read_all(shb() + idb() + epb(b"ok", 1) + epb(b"bad", 2, ifid=3))
    assert [g.data for g in got] == [b"ok"]
    assert r.error is not None and "undefined interface 3" in r.error.reason


def test_modified_pcap_magic() -> None:
    hdr = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack("<IIIIIHBx", 10, 500, 3, 3, 7, 0x800, 0) + b"abc"
    got, r = read_all(hdr + rec)
    assert r.error is None and got[0].data == b"abc" and got[0].iface_id == 7
    assert got[0].ts_ns == 10 * 10**9 + 500_000


# --- damage ---------------------------------------------------------------------------------

def make_pcapng(n: int = 4) -> tuple[bytes, int]:
    """A pcapng file and the offset of its last block."""
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    ifid = w.interface("eth0", 1)
    fs = frames(n)
    for i, f in enumerate(fs[:-1]):
        w.write(f, T0 + i, ifid)
    last = buf.tell()
    w.write(fs[-1], T0 + n, ifid)
    return buf.getvalue(), last


def make_pcap(n: int = 4) -> tuple[bytes, int]:
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    fs = frames(n)
    for i, f in enumerate(fs[:-1]):
        w.write(f, T0 + i)
    last = buf.tell()
    w.write(fs[-1], T0 + n)
    return buf.getvalue(), last


@pytest.mark.parametrize("maker", [make_pcapng, make_pcap])
def test_truncated_at_every_offset_of_last_block(maker: object) -> None:
    data, last = maker()  # type: ignore[operator]
    n = 4
    for cut in range(last + 1, len(data)):
        got, r = read_all(data[:cut], "cut.cap")
        assert [g.data for g in got] == frames(n)[:-1], cut
        assert r.error is not None, cut
        assert r.error.offset == last and "truncated" in r.error.reason
        assert "cut.cap" in str(r.error) and str(last) in str(r.error)
    got, r = read_all(data[:last])                 # cut exactly at a boundary: clean end
    assert len(got) == n - 1 and r.error is None


@pytest.mark.parametrize("maker", [make_pcapng, make_pcap])
def test_truncated_anywhere(maker: object) -> None:
    data, _ = maker()  # type: ignore[operator]
    for cut in range(0, len(data)):
        try:
            r = CaptureReader(io.BytesIO(data[:cut]), "x")
        except CaptureError:
            continue
        got = list(r)
        assert [g.data for g in got] == frames(4)[:len(got)]


def test_garbage_in_the_middle_of_pcapng() -> None:
    data, last = make_pcapng()
    bad = data[:last] + b"\xde\xad\xbe\xef" * 5 + data[last:]
    got, r = read_all(bad, "g.pcapng")
    assert [g.data for g in got] == frames(4)[:-1]
    assert r.error is not None and r.error.offset == last
    # plausible block lengths whose trailer disagrees
    bad = data[:last] + struct.pack("<II", 0x77, 16) + b"\0" * 8 + data[last:]
    got, r = read_all(bad)
    assert len(got) == 3 and r.error is not None and "disagree" in r.error.reason


def test_garbage_in_the_middle_of_pcap() -> None:
    data, last = make_pcap()
    got, r = read_all(data[:last] + b"\xff" * 16 + data[last:])
    assert len(got) == 3
    assert r.error is not None and r.error.offset == last and "exceeds" in r.error.reason


def test_huge_block_length_is_damage_not_a_huge_read() -> None:
    data, last = make_pcapng()
    got, r = read_all(data[:last] + struct.pack("<II", 6, 0x7FFFFFF0))
    assert len(got) == 3 and r.error is not None and "exceeds" in r.error.reason


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    fn = tmp_path / "notacap.txt"
    fn.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureError, match="notacap.txt.*not a pcap or pcapng"):
        open_capture(fn)
    fn.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        open_capture(fn)
    with pytest.raises(CaptureError, match="byte-order"):
        CaptureReader(io.BytesIO(b"\x0a\x0d\x0d\x0a" + b"\x1c\0\0\0" + b"XXXX" + bytes(16)))
    with pytest.raises(CaptureError, match="version"):
        CaptureReader(io.BytesIO(struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 0, 1)))


# --- streaming --------------------------------------------------------------------------------

class Trickle:
    """A non-seekable file-like object that records the largest read asked of it."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)
        self.largest = 0

    def read(self, n: int = -1, /) -> bytes:
        assert n >= 0, "the reader must never read to EOF"
        self.largest = max(self.largest, n)
        return self._b.read(n)


@pytest.mark.parametrize("nano_ng", [True, False])
def test_reads_block_by_block(nano_ng: bool) -> None:
    buf = io.BytesIO()
    if nano_ng:
        w = PcapngWriter(buf)
        w.interface("eth0", 1)
        for i in range(2000):
            w.write(bytes(1500), i)
    else:
        pw = PcapWriter(buf)
        for i in range(2000):
            pw.write(bytes(1500), i)
    t = Trickle(buf.getvalue())
    r = CaptureReader(t, "pipe")
    assert sum(1 for _ in r) == 2000 and r.error is None
    assert t.largest <= 1600 < len(buf.getvalue())


class ShortReads(io.RawIOBase):
    """A raw stream (like a pipe) that returns at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self._b.read(min(len(b), 7))
        b[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("maker", [make_pcapng, make_pcap])
def test_raw_stream_with_short_reads(maker: object) -> None:
    data, _ = maker()  # type: ignore[operator]
    r = CaptureReader(ShortReads(data), "pipe")
    assert [g.data for g in r] == frames(4) and r.error is None


def test_pipe(tmp_path: Path) -> None:
    data, _ = make_pcapng()
    rfd, wfd = os.pipe()
    with os.fdopen(wfd, "wb") as w:
        w.write(data)                                  # small enough for the pipe buffer
    with os.fdopen(rfd, "rb", buffering=0) as raw:
        r = CaptureReader(raw, "pipe")
        assert len(list(r)) == 4 and r.error is None


# --- property tests --------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_capture_error(data: bytes) -> None:
    prefixes = [b"", shb() + idb(), shb() + idb()[:8], struct.pack(
        "<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), struct.pack(
        ">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 100, 1)]
    for pre in prefixes:
        try:
            r = CaptureReader(io.BytesIO(pre + data), "fuzz")
        except CaptureError:
            continue
        for fr in r:
            assert len(fr.data) == fr.caplen
        assert r.error is None or isinstance(r.error, CaptureError)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.binary(max_size=64)), max_size=8),
       st.integers(0, 400), st.binary(max_size=16))
def test_random_damage_after_valid_blocks(blocks: list[tuple[int, bytes]], at: int,
                                          junk: bytes) -> None:
    data = shb() + idb(1) + idb(101)
    for ifid, payload in blocks:
        data += epb(payload, 1, ifid)
    at = min(at, len(data))
    try:
        r = CaptureReader(io.BytesIO(data[:at] + junk + data[at:]), "fuzz")
    except CaptureError:
        assert at < len(shb()) and junk       # only damage inside the SHB stops the open
        return
    got = list(r)
    assert len(got) <= len(blocks) + 1


@pytest.mark.parametrize("nano", [False, True])
def test_scapy_reads_our_pcapng(tmp_path: Path, nano: bool) -> None:
    from scapy.utils import rdpcap
    fn = tmp_path / "ours.pcapng"
    with open(fn, "wb") as f:
        w = PcapngWriter(f, nanosecond=nano)
        for i, fr in enumerate(frames(4)):
            w.write(fr, T0 + i * 1000, w.interface(("eth0", "eth1")[i % 2], 1))
    pkts = rdpcap(str(fn))
    assert [bytes(p) for p in pkts] == frames(4)
    assert [p.sniffed_on for p in pkts] == ["eth0", "eth1"] * 2
    step = 1 if nano else 1000
    assert [int(p.time * 10**9) for p in pkts] == [(T0 + i * 1000) // step * step
                                                   for i in range(4)]


def test_scapy_reads_our_big_endian_pcap(tmp_path: Path) -> None:
    from scapy.utils import rdpcap
    fn = tmp_path / "ours.pcap"
    with open(fn, "wb") as f:
        w = PcapWriter(f, 1, big_endian=True, nanosecond=True)
        for i, fr in enumerate(frames(3)):
            w.write(fr, T0 + i)
    assert [bytes(p) for p in rdpcap(str(fn))] == frames(3)
    got, r = read_all(fn.read_bytes())
    assert [g.ts_ns for g in got] == [T0, T0 + 1, T0 + 2] and r.error is None
