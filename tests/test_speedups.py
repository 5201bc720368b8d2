"""The optional C accelerator (statewall._speedups) against the pure-Python reference.

Differential property tests: the same inputs through the C functions and through the Python
ones they replace (``l4_checksum_ok_py``, ``decode_ip*_py``, ``TcpPy``), comparing every
result, every Packet slot, every exception, and for TCP every entry's state, status,
timeout, window data (``Conn.l4``), accounting and events after each packet, plus verdicts,
reasons and counters. Also: STATEWALL_PURE disables the module, the package works without
it, and a failed compile does not fail the build.

Without the module (not built, or STATEWALL_PURE=1) the differential tests are skipped; set
STATEWALL_REQUIRE_SPEEDUPS=1 to make that an error instead.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from statewall.conntrack.conn import IPS, Conn
from statewall.conntrack.core import Tracker as CoreTracker
from statewall.conntrack.proto import tcp as T
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Firewall
from statewall.packet import checksum, decode
from statewall.packet.checksum import inet_checksum, l4_checksum
from statewall.packet.packet import Packet, ParseError
from statewall.packet.tcpopt import build_options

try:
    from statewall import _speedups
except ImportError:
    _speedups = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
PURE_ENV = os.environ.get("STATEWALL_PURE", "") not in ("", "0")

needs_c = pytest.mark.skipif(_speedups is None, reason="statewall._speedups not available")
HYP = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


# --- the switch ------------------------------------------------------------------------------

def test_accelerator_state() -> None:
    """Built and not disabled: every part is installed (a binding that silently fell back to
    Python would show here). Disabled or missing: every part is the Python one."""
    if _speedups is None:
        if os.environ.get("STATEWALL_REQUIRE_SPEEDUPS") and not PURE_ENV:
            pytest.fail("statewall._speedups is not built")
        assert not checksum.ACCELERATED and not decode.ACCELERATED and not T.ACCELERATED
        assert checksum.l4_checksum_ok is checksum.l4_checksum_ok_py
        assert decode.decode_ip is decode.decode_ip_py
        assert T.Tcp.packet is T.TcpPy.packet and T.Tcp.error is T.TcpPy.error
        return
    assert not PURE_ENV
    assert checksum.ACCELERATED and decode.ACCELERATED and T.ACCELERATED
    assert checksum.l4_checksum_ok is _speedups.l4_checksum_ok
    assert decode.decode_ip is _speedups.decode_ip
    assert decode.decode_ipv4 is _speedups.decode_ipv4
    assert decode.decode_ipv6 is _speedups.decode_ipv6
    for name in ("error", "packet", "new"):
        assert getattr(T.Tcp, name) is not getattr(T.TcpPy, name)
        assert T.Tcp.__dict__[name].__objclass__ is T.Tcp
    assert T.TcpPy.packet.__module__ == T.__name__        # the reference stays Python


def test_statewall_pure_disables_the_module() -> None:
    code = ("import statewall.packet.decode as d, statewall.packet.checksum as c, "
            "statewall.conntrack.proto.tcp as t\n"
            "try:\n    import statewall._speedups\nexcept ImportError:\n    print('no module')\n"
            "print(d.ACCELERATED, c.ACCELERATED, t.ACCELERATED)\n")
    env = dict(os.environ, STATEWALL_PURE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[:2] == ["no module", "False False False"]


def test_failed_compile_still_builds(tmp_path: Path) -> None:
    """setup.py with a compiler that cannot work: a warning, no extension, exit status 0."""
    env = dict(os.environ, CC="false", LDSHARED="false")
    env.pop("STATEWALL_PURE", None)
    r = subprocess.run([sys.executable, str(ROOT / "setup.py"), "-q", "build_ext",
                        "--build-lib", str(tmp_path / "lib"), "--build-temp",
                        str(tmp_path / "tmp")],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "statewall._speedups not built" in r.stderr
    assert not list((tmp_path / "lib").rglob("_speedups*"))


# --- helpers -----------------------------------------------------------------------------------

MISSING = object()


def outcome(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args, **kw))
    except ParseError as e:
        return ("ParseError", e.reason)
    except Exception as e:
        return (type(e).__name__, str(e))


def slots(p: Packet) -> dict[str, tuple[type, Any]]:
    out = {}
    for name in Packet.__slots__:
        v = getattr(p, name, MISSING)
        out[name] = (type(v), v)
    return out


def same_decode(fc: Callable[..., Packet], fp: Callable[..., Packet], data: Any,
                *args: Any) -> None:
    rc = outcome(fc, data, *args)
    rp = outcome(fp, data, *args)
    assert rc[0] == rp[0], (rc, rp)
    if rc[0] != "ok":
        assert rc == rp
        return
    pc, pp = rc[1], rp[1]
    assert type(pc) is type(pp) is Packet
    assert slots(pc) == slots(pp)
    assert (pc.buf is data) == (pp.buf is data)


# --- checksum ----------------------------------------------------------------------------------

addr = st.one_of(st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16),
                 st.binary(max_size=17), st.just(bytes(4)), st.just(b"\xff" * 16))
proto = st.sampled_from([-1, -7, 0, 1, 6, 17, 58, 136, 255, 65535, 2**32 - 1, 2**32, 2**70])


@st.composite
def checksum_args(draw: Any) -> tuple[bytes, int, int | None]:
    data = draw(st.one_of(st.binary(max_size=1600), st.binary(max_size=8).map(lambda b: b * 50),
                          st.integers(0, 100).map(bytes)))
    off = draw(st.one_of(st.integers(0, len(data)), st.integers(-4, len(data) + 4)))
    length = draw(st.one_of(st.none(), st.integers(-3, len(data) + 3), st.integers(-3, 40)))
    return data, off, length


@needs_c
@HYP
@given(args=checksum_args(), src=addr, dst=addr, proto=proto,
       kind=st.sampled_from(["bytes", "bytearray", "memoryview"]), fix=st.booleans())
def test_l4_checksum_ok_differential(args: tuple[bytes, int, int | None], src: bytes,
                                     dst: bytes, proto: int, kind: str, fix: bool) -> None:
    data, off, length = args
    if fix and 0 <= off and off + 18 <= len(data) and (length is None or length >= 18):
        # make it verify: the right checksum in a 16-bit field at an even offset (covered)
        b = bytearray(data)
        b[off + 16:off + 18] = b"\0\0"
        c = l4_checksum(bytes(b), off, src, dst, proto, length)
        b[off + 16:off + 18] = struct.pack("!H", c)
        data = bytes(b)
    buf: Any = {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data)}[kind]
    args = (buf, off, src, dst, proto) if length is None else (buf, off, src, dst, proto, length)
    assert outcome(_speedups.l4_checksum_ok, *args) == outcome(checksum.l4_checksum_ok_py, *args)
    if length is not None:
        kw = outcome(_speedups.l4_checksum_ok, buf, off, src, dst, proto, length=length)
        assert kw == outcome(checksum.l4_checksum_ok_py, buf, off, src, dst, proto, length)


@needs_c
@HYP
@given(payload=st.binary(max_size=1500), v6=st.booleans(), proto=st.sampled_from([6, 17, 58]))
def test_l4_checksum_ok_valid_segments(payload: bytes, v6: bool, proto: int) -> None:
    src, dst = (bytes(range(1, 17)), bytes(range(17, 33))) if v6 else (b"\1\2\3\4", b"\5\6\7\x08")
    seg = bytearray(b"\0" * 20 + payload)
    struct.pack_into("!H", seg, 16, l4_checksum(bytes(seg), 0, src, dst, proto))
    buf = bytes(b"\x45" + bytes(19) + seg)
    assert _speedups.l4_checksum_ok(buf, 20, src, dst, proto) is True
    assert checksum.l4_checksum_ok_py(buf, 20, src, dst, proto) is True
    bad = bytearray(buf)
    bad[-1] ^= 1
    assert _speedups.l4_checksum_ok(bytes(bad), 20, src, dst, proto) is \
        checksum.l4_checksum_ok_py(bytes(bad), 20, src, dst, proto)


# --- decoder -----------------------------------------------------------------------------------

L4_PROTOS = [6, 17, 136, 1, 58, 132, 33, 47, 0, 255, 50]


@st.composite
def l4_header(draw: Any, proto: int) -> bytes:
    if proto == 6:
        o = draw(st.sampled_from([b"", build_options(mss=1460, wscale=7, sack_perm=True,
                                                     ts=(1, 2)),
                                  build_options(ts=(5, 6)), build_options(sack=((1, 2),)),
                                  draw(st.binary(max_size=40))]))
        o = o + bytes(-len(o) % 4)
        doff = draw(st.one_of(st.just(5 + len(o) // 4), st.integers(0, 15)))
        return struct.pack("!HHIIBBHHH", draw(st.integers(0, 65535)),
                           draw(st.integers(0, 65535)), draw(st.integers(0, 2**32 - 1)),
                           draw(st.integers(0, 2**32 - 1)), doff << 4,
                           draw(st.integers(0, 255)), draw(st.integers(0, 65535)), 0, 0) + o
    if proto == 33:
        return struct.pack("!HHB", 1, 2, draw(st.integers(0, 255))) + draw(st.binary(
            min_size=7, max_size=40))
    n = {17: 8, 136: 8, 1: 8, 58: 8, 132: 12}.get(proto, 0)
    return draw(st.binary(min_size=n, max_size=n + 4))


def damaged(draw: Any) -> bool:
    """One knob of a generated datagram is broken (1 in 8)."""
    return draw(st.integers(0, 7)) == 0


@st.composite
def ipv4_datagram(draw: Any) -> bytes:
    proto = draw(st.sampled_from(L4_PROTOS))
    opts = b"" if draw(st.booleans()) else draw(st.binary(max_size=40).map(
        lambda b: b + bytes(-len(b) % 4)))
    ihl = 5 + len(opts) // 4
    body = draw(l4_header(proto)) + draw(st.binary(max_size=64))
    if damaged(draw):
        body = body[:draw(st.integers(0, len(body)))]
    tot = 4 * ihl + len(body)
    if damaged(draw):
        tot = draw(st.one_of(st.integers(0, 80), st.integers(0, 65535)))
    frag = draw(st.sampled_from([0, 0, 0x4000, 0x4000, 0x2000, 0x2000 | 3, 5, 0x8000,
                                 0x6000, 0x1FFF]))
    vihl = draw(st.integers(0, 255)) if damaged(draw) else 0x40 | ihl
    h = struct.pack("!BBHHHBBH4s4s", vihl, draw(st.integers(0, 255)), tot,
                    draw(st.integers(0, 65535)), frag, draw(st.integers(0, 255)), proto, 0,
                    draw(st.binary(min_size=4, max_size=4)),
                    draw(st.binary(min_size=4, max_size=4))) + opts
    if not damaged(draw):
        h = h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:]
    pad = draw(st.binary(max_size=20)) if damaged(draw) else b""
    return h + body + pad


SPECIAL6 = [bytes.fromhex("ff000000000000000000000000000001"),
            bytes.fromhex("ff010000000000000000000000000001"),
            bytes.fromhex("ff020000000000000000000000000001"), bytes(15) + b"\1", bytes(16),
            bytes.fromhex("fe800000000000000000000000000001")]


@st.composite
def ipv6_datagram(draw: Any) -> bytes:
    addr6 = st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from(SPECIAL6))
    nxt = draw(st.sampled_from([6, 17, 58, 6, 17, 0, 43, 44, 51, 60, 59, 132, 47, 33]))
    if nxt in (0, 43, 44, 51, 60):
        inner = draw(st.sampled_from([6, 17, 58, 59, 44]))
        ext = bytes([inner, 0]) + draw(st.binary(min_size=6, max_size=6))
        if nxt == 0:
            ext = bytes([inner, 0, 1, 4, 0, 0, 0, 0])    # PadN
        body = ext + draw(l4_header(inner if inner not in (59, 44) else 6))
    else:
        body = draw(l4_header(nxt))
    body += draw(st.binary(max_size=64))
    if damaged(draw):
        body = body[:draw(st.integers(0, len(body)))]
    plen = draw(st.integers(0, 65535)) if damaged(draw) else len(body)
    vtcfl = draw(st.integers(0, 2**32 - 1)) if damaged(draw) else \
        0x60000000 | draw(st.integers(0, 0xFFFFFFF))
    h = struct.pack("!IHBB16s16s", vtcfl, plen, nxt, draw(st.integers(0, 255)), draw(addr6),
                    draw(addr6))
    return h + body + (draw(st.binary(max_size=20)) if damaged(draw) else b"")




def mutate(data: bytes, muts: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, val in muts:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


@needs_c
@HYP
@pytest.mark.parametrize("family", ["ipv4", "ipv6", "bytes"])
@given(data=st.data(), muts=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                     max_size=3),
       loopback=st.sampled_from([None, True, False]))
def test_decode_differential(family: str, data: Any, muts: list[tuple[int, int]],
                             loopback: bool | None) -> None:
    gen = {"ipv4": ipv4_datagram(), "ipv6": ipv6_datagram(), "bytes": st.binary(max_size=80)}
    data = data.draw(gen[family])
    data = mutate(data, muts) if muts and len(data) > 30 else data
    same_decode(_speedups.decode_ip, decode.decode_ip_py, data)
    same_decode(_speedups.decode_ip, decode.decode_ip_py, data, loopback)
    same_decode(_speedups.decode_ipv4, decode.decode_ipv4_py, data)
    same_decode(_speedups.decode_ipv6, decode.decode_ipv6_py, data)
    same_decode(_speedups.decode_ipv6, decode.decode_ipv6_py, data, loopback)
    rc = outcome(_speedups.decode_ipv6, data, loopback=loopback)
    rp = outcome(decode.decode_ipv6_py, data, loopback=loopback)
    assert rc[0] == rp[0]


@needs_c
@pytest.mark.parametrize("proto", [6, 17, 136, 1, 58, 132, 33, 47])
def test_decode_transport_header_lengths(proto: int) -> None:
    """Every transport header length up to 64 bytes, with every value of the byte that holds
    the data offset (TCP: byte 12, DCCP: byte 4)."""
    doff_at = {6: 12, 33: 4}.get(proto)
    for n in range(65):
        for v in (range(256) if doff_at is not None and n > doff_at else [0x50]):
            l4 = bytearray(range(1, n + 1))
            if doff_at is not None and n > doff_at:
                l4[doff_at] = v
            for data in (tcp_like_v4(proto, bytes(l4)), tcp_like_v6(proto, bytes(l4))):
                same_decode(_speedups.decode_ip, decode.decode_ip_py, data)


@needs_c
@pytest.mark.parametrize("proto", [6, 47])
def test_decode_ipv4_lengths(proto: int) -> None:
    """Every total length and header length around the real ones."""
    for ihl in (5, 6, 15):
        for tot in range(0, 80):
            l4 = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x50, 0x10, 5, 0, 0) + bytes(20)
            h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, 1, 0, 64, proto, 0, CA, SA_)
            h += bytes(4 * ihl - 20)
            h = h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:]
            same_decode(_speedups.decode_ip, decode.decode_ip_py, h + l4)


def tcp_like_v4(proto: int, l4: bytes) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, CA, SA_)
    return h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:] + l4


def tcp_like_v6(proto: int, l4: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, CA6, SA6) + l4


@needs_c
def test_decode_odd_arguments() -> None:
    ok = bytes.fromhex("450000280001400040060000c000020100000000") + bytes(20)
    for arg in (bytearray(ok), memoryview(ok), b"", None, 5, "x"):
        for fc, fp in ((_speedups.decode_ip, decode.decode_ip_py),
                       (_speedups.decode_ipv4, decode.decode_ipv4_py),
                       (_speedups.decode_ipv6, decode.decode_ipv6_py)):
            rc, rp = outcome(fc, arg), outcome(fp, arg)
            assert rc[0] == rp[0]
            if rc[0] == "ok":
                assert slots(rc[1]) == slots(rp[1])
    assert outcome(_speedups.decode_ip, ok, None, 3)[0] == "TypeError"
    assert outcome(_speedups.l4_checksum_ok, ok, 20)[0] == "TypeError"


# --- TCP: whole flows through two firewalls ------------------------------------------------

CA, SA_ = bytes([198, 51, 100, 7]), bytes([203, 0, 113, 9])
CA6, SA6 = bytes.fromhex("20010db8000100000000000000000007"), \
    bytes.fromhex("20010db8000200000000000000000009")


def tcp_datagram(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
                 flags: int, win: int, opts: bytes, payload: bytes, bad_csum: bool) -> bytes:
    opts = opts + bytes(-len(opts) % 4)
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF,
                                ack & 0xFFFFFFFF, (5 + len(opts) // 4) << 4, flags, win, 0, 0)
                    + opts + payload)
    c = l4_checksum(bytes(seg), 0, src, dst, 6) ^ (0x5A5A if bad_csum else 0)
    struct.pack_into("!H", seg, 16, c)
    if len(src) == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, 0x4000, 64, 6, 0, src, dst)
        h = h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:]
    else:
        h = struct.pack("!IHBB16s16s", 0x60000000, len(seg), 6, 64, src, dst)
    return h + bytes(seg)


FLAG_CHOICES = [0x10, 0x10, 0x10, 0x18, 0x18, 0x11, 0x02, 0x12, 0x04, 0x14, 0x01, 0x00,
                0x19, 0x03, 0x30, 0x50, 0x90, 0x06, 0x13, 0x15]


def _sack(lo: int, hi: int) -> Callable[[int], bytes]:
    return lambda ack: build_options(sack=(((ack + lo) & 0xFFFFFFFF, (ack + hi) & 0xFFFFFFFF),))


# TCP options: bytes, or a function of the segment's ACK number (SACK blocks near it)
OPTS: list[bytes | Callable[[int], bytes]] = [
    b"", b"", b"", build_options(mss=1460, wscale=7, sack_perm=True, ts=(1, 0)),
    build_options(mss=1460, sack_perm=True), build_options(mss=536),
    build_options(wscale=14), build_options(wscale=2, sack_perm=True), build_options(wscale=20),
    build_options(ts=(100, 200)), build_options(sack=((0, 0),)),
    b"\x01\x01\x05\x0a\x00\x00\x00\x00\x00\x00\x00\x00", b"\x03\x03\x0f\x00", b"\x05\x02",
    _sack(100, 1000), _sack(-100, 50), _sack(0, 70000), _sack(2**31, 2**31 + 5),
    lambda ack: b"\x01\x01\x05\x0c" + struct.pack("!II", ack, (ack + 200) & 0xFFFFFFFF)
    + b"\0\0",                                                 # SACK of a wrong size
    lambda ack: build_options(ts=(7, 8), sack=((ack, (ack + 10) & 0xFFFFFFFF),
                                               (ack, (ack + 900) & 0xFFFFFFFF))),
]


def opt_bytes(i: int, ack: int) -> bytes:
    o = OPTS[i]
    return o if isinstance(o, bytes) else o(ack & 0xFFFFFFFF)


step = st.tuples(
    st.booleans(),                                             # from the server?
    st.sampled_from(FLAG_CHOICES),
    st.sampled_from([0, 0, 0, 0, 1, -1, 1000, -1000, 70000, 2**31, -2**31]),   # seq skew
    st.sampled_from([0, 0, 0, 0, 1, -1, 300, -300, -1000, 70000, 2**31]),     # ack skew
    st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 502, 65535])),    # window
    st.sampled_from(range(len(OPTS))),
    st.sampled_from([0, 0, 1, 10, 300, 1400]),                 # payload bytes
    st.sampled_from([0.0, 0.0, 0.5, 5.0, 100.0, 400.0]),       # time step
    st.integers(0, 40),                                        # 0: bad checksum; 1: seqadj
)

SYSCTLS = st.fixed_dictionaries({}, optional={
    "nf_conntrack_tcp_be_liberal": st.sampled_from([0, 1]),
    "nf_conntrack_tcp_loose": st.sampled_from([0, 1]),
    "nf_conntrack_checksum": st.sampled_from([0, 1]),
    "nf_conntrack_tcp_max_retrans": st.sampled_from([0, 1, 3, 255]),
    "nf_conntrack_tcp_ignore_invalid_rst": st.sampled_from([0, 1]),
    "nf_conntrack_tcp_timeout_established": st.sampled_from([1, 200, 432000]),
    "nf_conntrack_tcp_timeout_unacknowledged": st.sampled_from([1, 300, 500000]),
    "nf_conntrack_tcp_timeout_max_retrans": st.sampled_from([2, 300, 500000]),
    "nf_conntrack_tcp_timeout_syn_recv": st.sampled_from([1, 60]),
    "nf_conntrack_tcp_timeout_time_wait": st.sampled_from([1, 120]),
})


def snapshot(fw: Firewall) -> list[tuple[Any, ...]]:
    out = []
    for ct in fw.tracker.table.entries():
        out.append(conn_state(ct))
    return out


def conn_state(ct: Conn | None) -> tuple[Any, ...] | None:
    if ct is None:
        return None
    l4 = list(ct.l4) if ct.l4 is not None else None
    return (ct.orig, ct.state, ct.status, ct.timeout, l4, list(ct.acct), ct.events, ct.bucket)


def decision(d: Any) -> tuple[Any, ...]:
    pkt = d.pkt
    return (d.verdict, d.reason, d.ctinfo, conn_state(d.ct),
            None if pkt is None else (pkt.reason, pkt.ctinfo, conn_state(pkt.ct)))


class Pair:
    """The same packets through an accelerated and a pure-Python firewall."""

    def __init__(self, sysctls: dict[str, int]) -> None:
        items = [(k, str(v)) for k, v in sysctls.items()]
        self.events: tuple[list[Any], list[Any]] = ([], [])
        self.fast, self.slow = (
            Firewall(st, CoreTracker(st, lambda now, ev, ct, log=log: log.append(
                (now, ev, conn_state(ct)))))
            for st, log in ((Settings("linux", items), self.events[0]),
                            (Settings("linux", items), self.events[1])))
        self.slow.tracker.l4[6] = T.TcpPy()
        assert type(self.fast.tracker.l4[6]) is T.Tcp

    def send(self, data: bytes, now: float) -> None:
        rf = outcome(_speedups.decode_ip, data)
        rs = outcome(decode.decode_ip_py, data)
        assert rf[0] == rs[0]
        if rf[0] != "ok":
            return
        assert slots(rf[1]) == slots(rs[1])
        df = self.fast.process(rf[1], now)
        ds = self.slow.process(rs[1], now)
        assert decision(df) == decision(ds)
        assert snapshot(self.fast) == snapshot(self.slow)
        tf, ts = self.fast.tracker, self.slow.tracker
        assert tf.stats == ts.stats
        assert tf.invalid_reasons == ts.invalid_reasons
        assert tf.table.count == ts.table.count
        assert [c.orig for c in tf.table.unassured] == [c.orig for c in ts.table.unassured]
        assert self.events[0] == self.events[1]

    def seqadj(self, off0: int, off1: int) -> None:
        """Mark every entry IPS_SEQ_ADJUST with these sequence offsets (as seqadj would)."""
        for fw in (self.fast, self.slow):
            for ct in fw.tracker.table.entries():
                ct.status |= int(IPS.SEQ_ADJUST)
                T.set_seq_offset(ct, 0, off0)
                T.set_seq_offset(ct, 1, off1)


@needs_c
@HYP
@given(sysctls=SYSCTLS, v6=st.booleans(),
       isn=st.one_of(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                     st.integers(0, 2**32 - 1).map(lambda x: (x, x))),
       handshake=st.sampled_from([None, (3, 3), (3, 4), (4, 3), (6, 0), (0, 7), (8, 8)]),
       steps=st.lists(step, min_size=1, max_size=40))
def test_tcp_flows_differential(sysctls: dict[str, int], v6: bool, isn: tuple[int, int],
                                handshake: tuple[int, int] | None, steps: list[Any]) -> None:
    pair = Pair(sysctls)
    c, s = (CA6, SA6) if v6 else (CA, SA_)
    nxt = [isn[0], isn[1]]          # next sequence number each side would send
    now = 1000.0
    if handshake is not None:
        oc, os_ = OPTS[handshake[0]], OPTS[handshake[1]]
        assert isinstance(oc, bytes) and isinstance(os_, bytes)
        pair.send(tcp_datagram(c, s, 40000, 80, nxt[0], 0, 0x02, 64240, oc, b"", False), now)
        nxt[0] = (nxt[0] + 1) & 0xFFFFFFFF
        pair.send(tcp_datagram(s, c, 80, 40000, nxt[1], nxt[0], 0x12, 65160, os_, b"", False),
                  now)
        nxt[1] = (nxt[1] + 1) & 0xFFFFFFFF
        pair.send(tcp_datagram(c, s, 40000, 80, nxt[0], nxt[1], 0x10, 502, b"", b"", False),
                  now)
    for from_s, flags, dseq, dack, win, oi, plen, dt, special in steps:
        d = int(from_s)
        src, dst, sp, dp = (s, c, 80, 40000) if from_s else (c, s, 40000, 80)
        if special == 1:
            pair.seqadj(dseq, dack)
        now += dt
        payload = bytes(plen)
        ack = nxt[1 - d] + dack
        data = tcp_datagram(src, dst, sp, dp, nxt[d] + dseq, ack, flags, win,
                            opt_bytes(oi, ack), payload, special == 0)
        pair.send(data, now)
        if dseq == 0:
            nxt[d] = (nxt[d] + plen + (flags & 1) + ((flags >> 1) & 1)) & 0xFFFFFFFF


@needs_c
@HYP
@given(sysctls=SYSCTLS, steps=st.lists(step, min_size=1, max_size=25))
def test_tcp_many_flows_differential(sysctls: dict[str, int], steps: list[Any]) -> None:
    """Several flows sharing one table: reopen, tuple reuse and expiry interleave."""
    pair = Pair(sysctls)
    nxt: dict[int, list[int]] = {}
    now = 50.0
    for from_s, flags, dseq, dack, win, oi, plen, dt, special in steps:
        flow = special % 3
        seqs = nxt.setdefault(flow, [1000 * (flow + 1), 7000 * (flow + 1)])
        d = int(from_s)
        sp = 41000 + flow
        src, dst, a, b = (SA_, CA, 80, sp) if from_s else (CA, SA_, sp, 80)
        now += dt
        ack = seqs[1 - d] + dack
        pair.send(tcp_datagram(src, dst, a, b, seqs[d] + dseq, ack, flags, win,
                               opt_bytes(oi, ack), bytes(plen), False), now)
        if dseq == 0:
            seqs[d] = (seqs[d] + plen + (flags & 1) + ((flags >> 1) & 1)) & 0xFFFFFFFF


@needs_c
def test_tcp_bench_sessions_differential() -> None:
    """The benchmark's own capture, packet by packet (many interleaved sessions)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import io

        from gen import generate

        from statewall.io.capture import CaptureReader
    finally:
        sys.path.pop(0)
    f = io.BytesIO()
    generate(f, 6000, concurrent=200)
    f.seek(0)
    pair = Pair({})
    with CaptureReader(f) as cap:
        for fr in cap:
            pair.send(fr.data[14:], fr.ts)
    assert len(pair.fast.tracker.table) > 50


WS = build_options(mss=1460, wscale=7, sack_perm=True)
NOWS = build_options(mss=1460, sack_perm=True)

# (from the server?, flags, seq, ack, window, options, payload bytes, time step); sequence
# numbers relative: client ISN 1000, server ISN 5000
SCENARIOS: dict[str, list[tuple[bool, int, int, int, int, bytes, int, float]]] = {
    "simultaneous open": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x02, 5000, 0, 65160, WS, 0, 0.1),
        (False, 0x12, 1000, 5001, 64240, WS, 0, 0.1), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (True, 0x10, 5001, 1001, 500, b"", 0, 0), (False, 0x10, 1001, 5001, 500, b"", 0, 0),
        (False, 0x18, 1001, 5001, 500, b"", 100, 0), (True, 0x10, 5001, 1101, 500, b"", 0, 0)],
    "window scale on one side only": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x12, 5000, 1001, 65160, NOWS, 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (True, 0x18, 5001, 1001, 65160, b"", 1400, 0),
        (False, 0x10, 1001, 6401, 60000, b"", 0, 0), (False, 0x18, 1001, 6401, 9, b"", 60000, 0)],
    "SYN retransmitted, then answered": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (False, 0x02, 1000, 0, 64240, WS, 0, 1),
        (False, 0x02, 1000, 0, 64240, WS, 0, 3), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (True, 0x12, 5000, 1001, 65160, WS, 0, 1), (False, 0x10, 1001, 5001, 502, b"", 0, 0)],
    "SYN with a new ISN": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (False, 0x02, 1500, 0, 65535, NOWS, 0, 1),
        (True, 0x12, 5000, 1501, 65160, WS, 0, 0), (False, 0x10, 1501, 5001, 502, b"", 0, 0)],
    "retransmissions both ways": [
        (False, 0x02, 1000, 0, 64240, b"", 0, 0), (True, 0x12, 1000, 1001, 64240, b"", 0, 0),
        (False, 0x10, 1001, 1001, 502, b"", 0, 0), (True, 0x10, 1001, 1001, 502, b"", 0, 0),
        (False, 0x10, 1001, 1001, 502, b"", 0, 0), (True, 0x10, 1001, 1001, 502, b"", 0, 0),
        (False, 0x18, 1001, 1001, 502, b"", 10, 0), (False, 0x18, 1001, 1001, 502, b"", 10, 0),
        (False, 0x18, 1001, 1001, 502, b"", 10, 0), (False, 0x18, 1001, 1001, 502, b"", 10, 0),
        (False, 0x18, 1001, 1001, 502, b"", 10, 0), (True, 0x10, 1001, 1011, 0, b"", 0, 0)],
    "close, then reopen and challenge ACK": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (False, 0x11, 1001, 5001, 502, b"", 0, 0),
        (True, 0x11, 5001, 1002, 509, b"", 0, 0), (False, 0x02, 9000, 0, 64240, WS, 0, 1),
        (True, 0x10, 5002, 1002, 509, b"", 0, 0), (False, 0x10, 1002, 5002, 502, b"", 0, 0),
        (False, 0x02, 20000, 0, 64240, WS, 0, 200), (True, 0x12, 30000, 20001, 65160, WS, 0, 0),
        (False, 0x10, 20001, 30001, 502, b"", 0, 0)],
    "keepalive and zero window": [
        (False, 0x02, 1000, 0, 64240, b"", 0, 0), (True, 0x12, 5000, 1001, 65160, b"", 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (False, 0x10, 1000, 5001, 502, b"", 0, 60),
        (True, 0x10, 5001, 1001, 0, b"", 0, 0), (False, 0x18, 1001, 5001, 502, b"", 1, 10),
        (True, 0x10, 5001, 1001, 0, b"", 0, 0), (True, 0x10, 5001, 1002, 100, b"", 0, 0)],
    "mid-stream pickup": [
        (False, 0x18, 1001, 5001, 502, b"", 100, 0), (True, 0x10, 5001, 1101, 509, b"", 0, 0),
        (True, 0x18, 5001, 1101, 509, b"", 300, 0), (False, 0x10, 1101, 5301, 502, b"", 0, 0)],
    "pickup before the peer is seen": [
        (False, 0x10, 1001, 0, 502, b"", 0, 0), (False, 0x18, 1001, 0, 502, b"", 600, 1),
        (False, 0x10, 1601, 2**32 - 5, 502, b"", 0, 1), (False, 0x11, 1601, 0, 502, b"", 0, 1)],
    "SACK blocks": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (True, 0x18, 5001, 1001, 509, b"", 1400, 0),
        (True, 0x18, 6401, 1001, 509, b"", 1400, 0),
        (False, 0x10, 1001, 5001, 502, b"\x01\x01\x05\x0c" + struct.pack("!II", 5001, 6001)
         + b"\0\0" + build_options(sack=((6401, 6501),)), 0, 0),
        (False, 0x10, 1001, 5001, 502, build_options(sack=((6401, 7801),)), 0, 0),
        (False, 0x10, 1001, 5001, 502, build_options(ts=(1, 2), sack=((5001, 5101),
                                                                      (6401, 7001))), 0, 0)],
    "reopen from TIME_WAIT": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (False, 0x11, 1001, 5001, 502, b"", 0, 0),
        (True, 0x11, 5001, 1002, 509, b"", 0, 0), (False, 0x10, 1002, 5002, 502, b"", 0, 0),
        (False, 0x02, 1500, 0, 64240, WS, 0, 1), (True, 0x12, 7000, 1501, 65160, WS, 0, 0),
        (False, 0x10, 1501, 7001, 502, b"", 0, 0), (False, 0x04, 1501, 0, 0, b"", 0, 0),
        (False, 0x02, 1502, 0, 64240, WS, 0, 1), (True, 0x02, 9000, 0, 64240, WS, 0, 1)],
    "SYN/ACK with a new ISN in SYN_RECV": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x02, 5000, 0, 65160, NOWS, 0, 0),
        (False, 0x12, 1000, 5001, 64240, WS, 0, 0), (False, 0x12, 1001, 5001, 1000, NOWS, 0, 0),
        (True, 0x12, 5000, 1002, 65160, WS, 0, 0), (False, 0x10, 1002, 5001, 500, b"", 0, 0),
        (True, 0x10, 5001, 1002, 500, b"", 0, 0)],
    "SACK without SACK_PERM": [
        (False, 0x02, 1000, 0, 64240, build_options(mss=1460), 0, 0),
        (True, 0x12, 5000, 1001, 65160, build_options(mss=1460), 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (True, 0x18, 5001, 1001, 509, b"", 1400, 0),
        (False, 0x10, 1001, 5001, 502, build_options(sack=((5101, 6001),)), 0, 0),
        (False, 0x10, 1001, 5501, 40000, build_options(sack=((5601, 6401),)), 0, 0)],
    "sequence adjustment": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (False, -1, 7, 100, 0, b"", 0, 0),
        (False, 0x18, 1001, 5001, 502, b"", 100, 0), (True, 0x18, 5001, 1201, 509, b"", 100, 0),
        (False, 0x10, 1101, 5107, 502, b"", 0, 0), (True, 0x10, 5101, 1101, 509, b"", 0, 0),
        (False, -1, 2**32 - 7, 0, 0, b"", 0, 0), (True, 0x10, 5101, 1094, 509, b"", 0, 0),
        (False, 0x10, 1101, 5094, 502, b"", 0, 0)],
    "RST answering a SYN": [
        (False, 0x02, 1000, 0, 64240, WS, 0, 0), (True, 0x14, 0, 1001, 0, b"", 0, 0),
        (False, 0x02, 1000, 0, 64240, WS, 0, 1), (True, 0x12, 5000, 1001, 65160, WS, 0, 0),
        (False, 0x10, 1001, 5001, 502, b"", 0, 0), (False, 0x04, 1001, 0, 0, b"", 0, 0)],
}


@needs_c
@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("v6", [False, True])
def test_tcp_scenarios_differential(name: str, v6: bool) -> None:
    pair = Pair({})
    c, s = (CA6, SA6) if v6 else (CA, SA_)
    now = 10.0
    for from_s, flags, seq, ack, win, o, plen, dt in SCENARIOS[name]:
        if flags < 0:
            pair.seqadj(seq, ack)       # (NAT hook: offsets of the two directions)
            continue
        src, dst, sp, dp = (s, c, 80, 40000) if from_s else (c, s, 40000, 80)
        now += dt
        pair.send(tcp_datagram(src, dst, sp, dp, seq, ack, flags, win, o, bytes(plen), False),
                  now)


@needs_c
@pytest.mark.parametrize("loopback", [None, True, False])
@pytest.mark.parametrize("nxt", [6, 17, 58, 132])
def test_decode_ipv6_addresses(loopback: bool | None, nxt: int) -> None:
    l4 = {6: struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x50, 0x10, 5, 0, 0)}.get(nxt, bytes(12))
    for src in SPECIAL6 + [bytes(range(16))]:
        for dst in SPECIAL6 + [bytes(range(16))]:
            data = struct.pack("!IHBB16s16s", 0x6ABCDEF1, len(l4), nxt, 9, src, dst) + l4
            same_decode(_speedups.decode_ip, decode.decode_ip_py, data, loopback)
            same_decode(_speedups.decode_ipv6, decode.decode_ipv6_py, data, loopback)


@needs_c
@HYP
@given(v6=st.booleans(), flags=st.integers(0, 255), doff=st.integers(0, 15),
       opt=st.binary(max_size=40), payload=st.binary(max_size=40), cut=st.integers(0, 80),
       csum=st.sampled_from([None, None, 0, 0xFFFF, 1]), hook=st.sampled_from([0, 0, 1, 3, 4]),
       check=st.sampled_from([0, 1, 1]))
def test_tcp_error_differential(v6: bool, flags: int, doff: int, opt: bytes, payload: bytes,
                                cut: int, csum: int | None, hook: int, check: int) -> None:
    """Header checks before the lookup: truncation, data offset, checksum, flag combination,
    on segments the decoder let through (or built by hand, bypassing the decoder)."""
    c, s = (CA6, SA6) if v6 else (CA, SA_)
    opt = opt + bytes(-len(opt) % 4)
    seg = bytearray(struct.pack("!HHIIBBHHH", 1, 2, 3, 4, doff << 4, flags, 5, 0, 0) + opt
                    + payload)
    struct.pack_into("!H", seg, 16, l4_checksum(bytes(seg), 0, c, s, 6) if csum is None
                     else csum)
    seg = seg[:len(seg) - cut % (len(seg) + 1)]
    data = tcp_like_v6(6, bytes(seg)) if v6 else tcp_like_v4(6, bytes(seg))
    tr = Tracker()
    tr.settings.nf_conntrack_checksum = check
    pkts = [decode.decode_ip_py(data) for _ in range(2)]
    res = [(impl.error(tr, p, hook, 0.0), p.reason) for impl, p in zip((T.Tcp(), T.TcpPy()),
                                                                       pkts)]
    assert res[0] == res[1]


# --- TCP: unit-level calls with odd arguments go to the Python methods -----------------------

class Tracker:
    """A stand-in core (no slots) for direct calls."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.calls: list[Any] = []

    def refresh_acct(self, *args: Any) -> None:
        self.calls.append(args)


@needs_c
def test_tcp_methods_fall_back_for_unusual_calls() -> None:
    data = tcp_datagram(CA, SA_, 1, 2, 100, 0, 0x02, 1000, b"", b"", False)
    pkts = [decode.decode_ip_py(data) for _ in range(2)]
    trs = [Tracker(), Tracker()]
    cts = [Conn((CA, SA_, 6, 1, 2, 0), (SA_, CA, 6, 2, 1, 0), 2, 0.0) for _ in range(2)]
    impls: list[Any] = [T.Tcp(), T.TcpPy()]
    res = [(i.new(tracker=t, ct=c, pkt=p, now=0.0), i.error(t, p, hook=0, now=0.0),
            i.packet(t, c, p, 0, 2, now=1.0)) for i, t, c, p in zip(impls, trs, cts, pkts)]
    assert res[0] == res[1]
    assert conn_state(cts[0]) == conn_state(cts[1])
    assert trs[0].calls[0][2:] == trs[1].calls[0][2:]
    for impl in impls:
        with pytest.raises(TypeError):
            impl.packet(trs[0], cts[0])
        with pytest.raises(TypeError):
            impl.error(trs[0], pkts[0], 0, 0.0, 5)
    with pytest.raises(TypeError):
        T.Tcp.packet(object(), trs[0], cts[0], pkts[0], 0, 2, 1.0)   # descriptor type check


@needs_c
def test_non_packet_objects_take_the_python_path() -> None:
    """A Packet subclass or a Conn whose l4 is not an array('I') of 23: TcpPy decides."""

    class P(Packet):
        __slots__ = ()

    data = tcp_datagram(CA, SA_, 1, 2, 100, 0, 0x02, 1000, b"", b"", False)
    q = decode.decode_ip_py(data)
    p = P(q.buf, q.l3num, q.src, q.dst, q.proto, q.l4off)
    for name in Packet.__slots__:
        setattr(p, name, getattr(q, name))
    outs = []
    for impl in (T.Tcp(), T.TcpPy()):
        tr = Tracker()
        ct = Conn((CA, SA_, 6, 1, 2, 0), (SA_, CA, 6, 2, 1, 0), 2, 0.0)
        assert impl.new(tr, ct, p, 0.0)
        ct.l4 = list(ct.l4)             # not an array: the C code must not touch it
        outs.append((impl.error(tr, p, 0, 0.0), impl.packet(tr, ct, p, 0, 2, 1.0),
                     conn_state(ct)))
    assert outs[0] == outs[1]
