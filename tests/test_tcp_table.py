"""TCP tracker: the transition table cell by cell, flag classes, header checks, tcp_new.

Also home of the small literal packet builder and the ``Flow`` helper (one connection
played from both ends through ``Tcp`` with a fake core) that test_tcp_window.py uses.
The expected table below is an independent copy typed from the kernel source
(net/netfilter/nf_conntrack_proto_tcp.c, Linux 6.17), in the kernel's own notation.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from statewall.conntrack.conn import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_NEW,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_FIXED_TIMEOUT,
    IPS_SEEN_REPLY,
    Conn,
)
from statewall.conntrack.proto import tcp as T
from statewall.conntrack.proto.base import (
    CONTINUE,
    INVALID,
    NF_ACCEPT,
    NF_DROP,
    NF_INET_LOCAL_OUT,
    NF_INET_PRE_ROUTING,
    REPEAT,
)
from statewall.conntrack.sysctl import Settings
from statewall.packet.checksum import l4_checksum
from statewall.packet.packet import AF_INET, AF_INET6, Packet

# --- builders ---------------------------------------------------------------------------------

A4 = bytes([192, 0, 2, 1])
B4 = bytes([198, 51, 100, 1])
A6 = bytes.fromhex("20010db8000100000000000000000001")
B6 = bytes.fromhex("20010db8000200000000000000000001")

FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40,
         "C": 0x80}


def flagbits(flags: str | int) -> int:
    if isinstance(flags, int):
        return flags
    n = 0
    for ch in flags:
        n |= FLAGS[ch]
    return n


def tcp_bytes(src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int, ack: int,
              win: int, options: bytes, payload: bytes, doff: int | None = None,
              csum: int | None = None, urg: int = 0) -> bytes:
    """A TCP segment with a correct checksum (or ``csum`` if given)."""
    opts = options + b"\x00" * (-len(options) % 4)
    hl = 20 + len(opts)
    d = (hl // 4) if doff is None else doff
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (d & 0xF) << 4, flags & 0xFF, win & 0xFFFF, 0, urg) + opts
    seg = hdr + payload
    if csum is None:
        csum = l4_checksum(seg, 0, src, dst, 6)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def ip_bytes(src: bytes, dst: bytes, l4: bytes, proto: int = 6) -> bytes:
    if len(src) == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src,
                        dst)
        from statewall.packet.checksum import inet_checksum
        c = inet_checksum(h)
        return h[:10] + struct.pack("!H", c) + h[12:] + l4
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, src, dst) + l4


def packet_from(buf: bytes) -> Packet:
    """Decode our own builder's output the way the decoder fills a Packet."""
    if buf[0] >> 4 == 4:
        l3, src, dst, off = AF_INET, buf[12:16], buf[16:20], (buf[0] & 15) * 4
    else:
        l3, src, dst, off = AF_INET6, buf[8:24], buf[24:40], 40
    p = Packet(buf, l3, src, dst, 6, off)
    if len(buf) - off >= 20:
        sport, dport, seq, ack, doffb, flags, win = struct.unpack_from("!HHIIBBH", buf, off)
        doff = (doffb >> 4) * 4
        p.sport, p.dport, p.seq, p.ack, p.flags, p.win = sport, dport, seq, ack, flags, win
        p.doff = doff
        p.tcp_optoff = off + 20
        p.tcp_optlen = max(doff - 20, 0)
        p.payload_off = off + doff
    return p


def build(flags: str | int, seq: int = 0, ack: int = 0, win: int = 65535,
          options: bytes = b"", payload: bytes = b"", *, reply: bool = False,
          v6: bool = False, sport: int = 40000, dport: int = 80, csum: int | None = None,
          doff: int | None = None) -> Packet:
    a, b = (A6, B6) if v6 else (A4, B4)
    src, dst = (b, a) if reply else (a, b)
    sp, dp = (dport, sport) if reply else (sport, dport)
    seg = tcp_bytes(src, dst, sp, dp, flagbits(flags), seq, ack, win, options, payload,
                    doff=doff, csum=csum)
    return packet_from(ip_bytes(src, dst, seg))


def opts(mss: int | None = None, wscale: int | None = None, sack_perm: bool = False,
         ts: tuple[int, int] | None = None, sack: tuple[tuple[int, int], ...] = ()) -> bytes:
    from statewall.packet.tcpopt import build_options
    return build_options(mss=mss, wscale=wscale, sack_perm=sack_perm, ts=ts, sack=sack)


# --- a fake core ------------------------------------------------------------------------------

class FakeTable:
    def __init__(self) -> None:
        self.filed: list[tuple[Conn, float]] = []

    def file(self, ct: Conn, now: float) -> None:
        self.filed.append((ct, now))


class FakeTracker:
    """What Tcp uses of core.Tracker: settings, refresh_acct, acct, kill, table.file."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.table = FakeTable()
        self.killed: list[Conn] = []

    def refresh_acct(self, ct: Conn, pkt: Packet, dir: int, now: float, timeout: float) -> None:
        if not ct.status & IPS_FIXED_TIMEOUT:
            ct.timeout = now + timeout
        self.acct(ct, pkt, dir)

    def acct(self, ct: Conn, pkt: Packet, dir: int) -> None:
        ct.acct[2 * dir] += 1
        ct.acct[2 * dir + 1] += len(pkt.buf)

    def kill(self, ct: Conn, now: float, why: str = "killed") -> None:
        ct.status |= IPS_DYING
        self.killed.append(ct)


class Flow:
    """One TCP connection between A (original side) and B, through ``Tcp`` and a minimal
    ``nf_conntrack_in``: error -> lookup/new -> packet (REPEAT looks up again) -> SEEN_REPLY
    -> confirm. ``o``/``r`` send from A / from B and return the packet's ctstate name."""

    def __init__(self, settings: Settings | None = None, v6: bool = False,
                 profile: str = "linux", tcp: Any = None, **sysctls: int) -> None:
        if settings is None:
            settings = Settings(profile, [(k, str(v)) for k, v in sysctls.items()])
        self.tcp = T.Tcp() if tcp is None else tcp
        self.tr: Any = FakeTracker(settings)
        self.ct: Conn | None = None
        self.flipped = False        # the live entry's ORIGINAL is B -> A
        self.now = 1000.0
        self.v6 = v6
        self.ret = NF_ACCEPT
        self.pkt: Packet | None = None
        self.entries: list[Conn] = []

    # packet entry points
    def o(self, flags: str | int, seq: int = 0, ack: int = 0, win: int = 65535,
          options: bytes = b"", payload: bytes = b"", dt: float = 0.0, **kw: Any) -> str:
        return self.send(False, flags, seq, ack, win, options, payload, dt, **kw)

    def r(self, flags: str | int, seq: int = 0, ack: int = 0, win: int = 65535,
          options: bytes = b"", payload: bytes = b"", dt: float = 0.0, **kw: Any) -> str:
        return self.send(True, flags, seq, ack, win, options, payload, dt, **kw)

    def send(self, from_b: bool, flags: str | int, seq: int, ack: int, win: int,
             options: bytes, payload: bytes, dt: float = 0.0, hook: int = NF_INET_PRE_ROUTING,
             **kw: Any) -> str:
        self.now += dt
        pkt = build(flags, seq, ack, win, options, payload, reply=from_b, v6=self.v6, **kw)
        return self.inject(pkt, from_b, hook)

    def inject(self, pkt: Packet, from_b: bool, hook: int = NF_INET_PRE_ROUTING) -> str:
        self.pkt = pkt
        now = self.now
        tr = self.tr
        for _ in range(3):
            if self.tcp.error(tr, pkt, hook, now) != CONTINUE:
                self.ret = INVALID
                return "INVALID"
            ct = self.ct
            if ct is None or ct.status & IPS_DYING or ct.timeout <= now:
                ct = Conn((pkt.src, pkt.dst, 6, pkt.sport, pkt.dport, 0),
                          (pkt.dst, pkt.src, 6, pkt.dport, pkt.sport, 0), pkt.l3num, now)
                if not self.tcp.new(tr, ct, pkt, now):
                    self.ret = INVALID
                    return "INVALID"
                fresh = True
                dir = 0
                ctinfo = IP_CT_NEW
            else:
                fresh = False
                dir = int(from_b != self.flipped)
                if dir:
                    ctinfo = IP_CT_ESTABLISHED_REPLY
                else:
                    ctinfo = IP_CT_ESTABLISHED if ct.status & IPS_SEEN_REPLY else IP_CT_NEW
            ret = self.tcp.packet(tr, ct, pkt, dir, ctinfo, now)
            self.ret = ret
            if ret == REPEAT:
                continue
            if ret != NF_ACCEPT:
                return "DROP" if ret == NF_DROP else "INVALID"
            if ctinfo == IP_CT_ESTABLISHED_REPLY:
                ct.status |= IPS_SEEN_REPLY
            if fresh:
                ct.status |= IPS_CONFIRMED
                self.ct = ct
                self.flipped = from_b
                self.entries.append(ct)
            return "NEW" if ctinfo == IP_CT_NEW else "ESTABLISHED"
        raise AssertionError("REPEAT loop")

    # views
    @property
    def state(self) -> str:
        ct = self.ct
        if ct is None or ct.status & IPS_DYING:
            return "(none)"
        return str(self.tcp.state_name(ct))

    @property
    def left(self) -> float:
        """Remaining lifetime of the entry, seconds."""
        assert self.ct is not None
        return self.ct.timeout - self.now

    @property
    def assured(self) -> bool:
        return self.ct is not None and bool(self.ct.status & IPS_ASSURED)

    def seen(self, dir: int, field: int) -> int:
        assert self.ct is not None
        return int(self.ct.l4[T.SEEN_SIZE * dir + field])

    def last(self, field: int) -> int:
        assert self.ct is not None
        return int(self.ct.l4[field])

    def handshake(self, isn_a: int = 1000, isn_b: int = 5000, win: int = 65535,
                  wscale: int | None = None) -> None:
        o = opts(mss=1460, wscale=wscale, sack_perm=True)
        assert self.o("S", isn_a, 0, win, o) == "NEW"
        assert self.r("SA", isn_b, isn_a + 1, win, o) == "ESTABLISHED"
        assert self.o("A", isn_a + 1, isn_b + 1, win) == "ESTABLISHED"
        assert self.state == "ESTABLISHED" and self.assured


# --- the expected table, typed from the kernel source -----------------------------------------

STATES = ["sNO", "sSS", "sSR", "sES", "sFW", "sCW", "sLA", "sTW", "sCL", "sS2"]
STATE_NUM = {name: i for i, name in enumerate(STATES)} | {"sIV": 10, "sIG": 11}
CLASSES = ["syn", "synack", "fin", "ack", "rst", "none"]

EXPECTED = {
    0: {  # ORIGINAL      sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2
        "syn":    "sSS  sSS  sIG  sIG  sIG  sIG  sIG  sSS  sSS  sS2",
        "synack": "sIV  sIV  sSR  sIV  sIV  sIV  sIV  sIV  sIV  sSR",
        "fin":    "sIV  sIV  sFW  sFW  sLA  sLA  sLA  sTW  sCL  sIV",
        "ack":    "sES  sIV  sES  sES  sCW  sCW  sTW  sTW  sCL  sIV",
        "rst":    "sIV  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL",
        "none":   "sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV",
    },
    1: {  # REPLY         sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2
        "syn":    "sIV  sS2  sIV  sIV  sIV  sIV  sIV  sSS  sIV  sS2",
        "synack": "sIV  sSR  sIG  sIG  sIG  sIG  sIG  sIG  sIG  sSR",
        "fin":    "sIV  sIV  sFW  sFW  sLA  sLA  sLA  sTW  sCL  sIV",
        "ack":    "sIV  sIG  sSR  sES  sCW  sCW  sTW  sTW  sCL  sIG",
        "rst":    "sIV  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL  sCL",
        "none":   "sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV  sIV",
    },
}
CLASS_FLAGS = {"syn": "S", "synack": "SA", "fin": "FA", "ack": "A", "rst": "R", "none": "U"}

CELLS = [(d, c, s, EXPECTED[d][c].split()[STATES.index(s)])
         for d in (0, 1) for c in CLASSES for s in STATES]


def test_state_names_and_numbers() -> None:
    assert T.TCP_CONNTRACK_NAMES == ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED",
                                     "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
                                     "CLOSE", "SYN_SENT2")
    assert [int(x) for x in T.TcpConntrack] == list(range(14))
    assert T.TcpConntrack.MAX == 10 and T.TcpConntrack.IGNORE == 11


@pytest.mark.parametrize("flags,cls", [
    ("S", "syn"), ("SA", "synack"), ("SAF", "synack"), ("F", "fin"), ("FA", "fin"),
    ("A", "ack"), ("PA", "ack"), ("R", "rst"), ("RA", "rst"), ("RS", "rst"), ("RF", "rst"),
    ("SF", "syn"), ("", "none"), ("U", "none"), ("P", "none"), ("EC", "none"),
])
def test_flag_class(flags: str, cls: str) -> None:
    assert T.get_conntrack_index(flagbits(flags)) == CLASSES.index(cls)


@pytest.mark.parametrize("d,cls,old,cell", CELLS)
def test_table_data(d: int, cls: str, old: str, cell: str) -> None:
    assert T.TCP_CONNTRACKS[d][CLASSES.index(cls)][STATES.index(old)] == STATE_NUM[cell]


def _ct_in_state(old: int, status: int) -> Conn:
    """An entry in state ``old`` whose window data cannot fail (both sides BE_LIBERAL and
    not yet initialised) and with no RST/ignore history."""
    ct = Conn((A4, B4, 6, 40000, 80, 0), (B4, A4, 6, 80, 40000, 0), AF_INET, 0.0)
    st = T._ZERO.__copy__()
    st[T.TD_FLAGS] = st[T.SEEN_SIZE + T.TD_FLAGS] = T.IP_CT_TCP_FLAG_BE_LIBERAL
    st[T.LAST_INDEX] = T.TCP_NONE_SET
    st[T.LAST_WIN] = 1
    ct.l4 = st
    ct.state = old
    ct.status = status
    ct.timeout = 50.0
    return ct


@pytest.mark.parametrize("d,cls,old,cell", CELLS)
def test_table_behaviour(d: int, cls: str, old: str, cell: str) -> None:
    """Each cell through ``packet()``: the new state, or IGNORE (no change, accepted, no
    refresh), or INVALID; a SYN at TIME_WAIT/CLOSE is ignored without CLOSE_INIT."""
    tr = FakeTracker()
    status = IPS_CONFIRMED | IPS_SEEN_REPLY
    ct = _ct_in_state(STATES.index(old), status)
    pkt = build(CLASS_FLAGS[cls], 1000, 1, reply=bool(d))
    ctinfo = IP_CT_ESTABLISHED_REPLY if d else IP_CT_ESTABLISHED
    ret = T.Tcp().packet(tr, ct, pkt, d, ctinfo, 10.0)
    if cell == "sIV":
        assert ret == INVALID
        assert ct.state == STATES.index(old)
        assert pkt.reason == (f"packet (index {CLASSES.index(cls)}) in dir {d} invalid, "
                              f"state {T.TCP_CONNTRACK_NAMES[STATES.index(old)]}")
        return
    if cell == "sIG" or (cell == "sSS" and old in ("sTW", "sCL")):
        assert ret == NF_ACCEPT
        assert ct.state == STATES.index(old)
        assert ct.timeout == 50.0                 # not refreshed
        assert pkt.reason is not None and "ignored" in pkt.reason
        return
    assert ret == NF_ACCEPT, pkt.reason
    assert ct.state == STATE_NUM[cell]
    assert ct.timeout != 50.0                     # refreshed


@pytest.mark.parametrize("d,old", [(d, s) for d in (0, 1) for s in ("sTW", "sCL")
                                   if EXPECTED[d]["syn"].split()[STATES.index(s)] == "sSS"])
def test_table_syn_reopen_cells(d: int, old: str) -> None:
    """The sSS cells at TIME_WAIT/CLOSE: with CLOSE_INIT the old entry is killed and the
    lookup repeated (the reply-direction SYN only exists at TIME_WAIT)."""
    tr = FakeTracker()
    ct = _ct_in_state(STATES.index(old), IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED)
    ct.l4[T.TD_FLAGS] |= T.IP_CT_TCP_FLAG_CLOSE_INIT
    pkt = build("S", 77, reply=bool(d))
    assert T.Tcp().packet(tr, ct, pkt, d, IP_CT_ESTABLISHED, 10.0) == REPEAT
    assert tr.killed == [ct]


@pytest.mark.parametrize("cls", CLASSES)
def test_new_connection_cells(cls: str) -> None:
    """Column NONE of ORIGINAL through tcp_new: SYN -> SYN_SENT, ACK -> ESTABLISHED (pickup),
    anything else creates nothing ("invalid new")."""
    tr = FakeTracker()
    ct = Conn((A4, B4, 6, 40000, 80, 0), (B4, A4, 6, 80, 40000, 0), AF_INET, 0.0)
    pkt = build(CLASS_FLAGS[cls], 1000, 1)
    ok = T.Tcp().new(tr, ct, pkt, 0.0)
    cell = EXPECTED[0][cls].split()[0]
    if cell == "sIV":
        assert not ok and pkt.reason == "invalid new"
        return
    assert ok and ct.state == T.TCP_CONNTRACK_NONE
    assert T.Tcp().packet(tr, ct, pkt, 0, IP_CT_NEW, 0.0) == NF_ACCEPT
    assert ct.state == STATE_NUM[cell]


def test_can_early_drop_states() -> None:
    tcp = T.Tcp()
    ct = _ct_in_state(0, 0)
    drop = []
    for s in range(10):
        ct.state = s
        if tcp.can_early_drop(ct):
            drop.append(T.TCP_CONNTRACK_NAMES[s])
        assert tcp.state_name(ct) == T.TCP_CONNTRACK_NAMES[s]
    assert drop == ["FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE"]


# --- tcp_error --------------------------------------------------------------------------------

# SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG
VALID_COMBOS = {0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30}


@pytest.mark.parametrize("flags", range(256))
def test_flag_combinations(flags: int) -> None:
    expect_ok = flags & ~0xC8 in VALID_COMBOS        # ECE, CWR and PSH never matter
    pkt = build(flags, 1, 1)
    ret = T.Tcp().error(FakeTracker(), pkt, NF_INET_PRE_ROUTING, 0.0)
    if expect_ok:
        assert ret == CONTINUE
    else:
        assert ret == INVALID and pkt.reason == "invalid tcp flag combination"


@pytest.mark.parametrize("v6", [False, True])
def test_bad_checksum_only_at_prerouting(v6: bool) -> None:
    tr = FakeTracker()
    good = build("S", 1, v6=v6)
    assert T.Tcp().error(tr, good, NF_INET_PRE_ROUTING, 0.0) == CONTINUE
    bad = build("S", 1, v6=v6, csum=0x1234)
    assert T.Tcp().error(tr, bad, NF_INET_PRE_ROUTING, 0.0) == INVALID
    assert bad.reason == "bad checksum"
    bad.reason = None
    assert T.Tcp().error(tr, bad, NF_INET_LOCAL_OUT, 0.0) == CONTINUE
    off = FakeTracker(Settings("linux", [("nf_conntrack_checksum", "0")]))
    assert T.Tcp().error(off, bad, NF_INET_PRE_ROUTING, 0.0) == CONTINUE


def test_checksum_with_payload_and_options() -> None:
    tr = FakeTracker()
    for v6 in (False, True):
        for n in (0, 1, 2, 3, 1399):
            p = build("PA", 5, 6, options=opts(ts=(1, 2)), payload=b"\xab" * n, v6=v6)
            assert T.Tcp().error(tr, p, NF_INET_PRE_ROUTING, 0.0) == CONTINUE


@pytest.mark.parametrize("cut,doff", [(19, None), (10, None), (0, None), (30, 10), (40, 4),
                                      (20, 0), (44, 11)])
def test_truncated(cut: int, doff: int | None) -> None:
    full = build("SA", 1, 2, options=opts(mss=1460, wscale=7, sack_perm=True, ts=(1, 2)),
                 doff=doff)
    buf = full.buf[:full.l4off + cut]
    pkt = packet_from(buf)
    ret = T.Tcp().error(FakeTracker(Settings("linux", [("nf_conntrack_checksum", "0")])),
                        pkt, NF_INET_PRE_ROUTING, 0.0)
    assert ret == INVALID and pkt.reason == "truncated packet"


def test_pkt_to_tuple_and_invert() -> None:
    tcp = T.Tcp()
    p = build("S", 1)
    assert tcp.pkt_to_tuple(p) == (40000, 80)
    assert tcp.invert(40000, 80) == (80, 40000)
    short = packet_from(p.buf[:p.l4off + 7])
    assert tcp.pkt_to_tuple(short) is None
    assert tcp.name == "tcp"


# --- tcp_new ----------------------------------------------------------------------------------

def test_new_syn_records_window_and_options() -> None:
    f = Flow()
    assert f.o("S", 1000, 0, 29200, opts(mss=1460, wscale=20, sack_perm=True)) == "NEW"
    assert f.seen(0, T.TD_END) == 1001
    assert f.seen(0, T.TD_MAXEND) == 1001
    assert f.seen(0, T.TD_MAXWIN) == 29200
    assert f.seen(0, T.TD_SCALE) == 14                       # capped
    assert f.seen(0, T.TD_FLAGS) == (T.IP_CT_TCP_FLAG_WINDOW_SCALE
                                     | T.IP_CT_TCP_FLAG_SACK_PERM)
    assert f.state == "SYN_SENT" and f.left == 120
    assert f.ct is not None and f.ct.events & 32      # IPCT_PROTOINFO


def test_new_syn_zero_window_and_payload() -> None:
    f = Flow()
    f.o("S", 0xFFFFFFFF, 0, 0, payload=b"hello")
    assert f.seen(0, T.TD_MAXWIN) == 1
    assert f.seen(0, T.TD_END) == (0xFFFFFFFF + 5 + 1) & 0xFFFFFFFF


@pytest.mark.parametrize("loose", [1, 0])
def test_new_pickup(loose: int) -> None:
    f = Flow(nf_conntrack_tcp_loose=loose)
    got = f.o("A", 1000, 5000, 500, payload=b"x" * 10)
    if not loose:
        assert got == "INVALID" and f.ct is None
        return
    assert got == "NEW"
    assert f.state == "ESTABLISHED" and not f.assured
    lib = T.IP_CT_TCP_FLAG_SACK_PERM | T.IP_CT_TCP_FLAG_BE_LIBERAL
    assert f.seen(0, T.TD_FLAGS) & lib == lib
    assert f.seen(1, T.TD_FLAGS) & lib == lib
    assert f.seen(0, T.TD_END) == 1010
    assert f.seen(0, T.TD_MAXWIN) == 500
    assert f.seen(0, T.TD_MAXEND) == 1510
    # picked up without a reply: capped at the UNACK timeout
    assert f.left == 300
    # the answer makes it ASSURED (ES -> ES after a reply)
    assert f.r("A", 5000, 1010, 500) == "ESTABLISHED"
    assert not f.assured                       # SEEN_REPLY is set after this packet
    assert f.o("A", 1010, 5000, 500) == "ESTABLISHED"
    assert f.assured and f.left == 432000


@pytest.mark.parametrize("flags", ["SA", "FA", "R", "RA"])
def test_new_rejects(flags: str) -> None:
    f = Flow()
    assert f.o(flags, 1, 1) == "INVALID"
    assert f.ct is None


def test_memory_per_connection() -> None:
    import sys
    f = Flow()
    f.handshake(wscale=7)
    assert f.ct is not None
    # the whole TCP state of a connection is one array: no int objects behind it
    assert sys.getsizeof(f.ct.l4) < 400
    assert len(f.ct.l4) == T.L4_SIZE


# --- checksum helpers (packet/checksum.py) ----------------------------------------------------

def _naive_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_ones_sum_matches_rfc1071() -> None:
    from hypothesis import given, settings, strategies as st

    from statewall.packet import checksum as C

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.integers(0, 10))
    def check(data: bytes, start: int) -> None:
        assert C.ones_sum(data, start) == _naive_sum(data[start:])
        assert C.inet_checksum(data) == ~_naive_sum(data) & 0xFFFF
    check()
    assert C.ones_sum(b"") == 0 and C.ones_sum(b"\x00" * 9) == 0
    assert C.ones_sum(b"\xff\xff") == 0xFFFF and C.ones_sum(b"\xff\xfe\x00\x01") == 0xFFFF


@pytest.mark.parametrize("v6", [False, True])
def test_l4_checksum_agrees_with_scapy(v6: bool) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import raw

    from statewall.packet.checksum import l4_checksum, l4_checksum_ok
    net = IPv6(src="2001:db8::1", dst="2001:db8::2") if v6 else IP(src="192.0.2.1",
                                                                   dst="203.0.113.9")
    for l4, proto in ((TCP(sport=1, dport=2, flags="PA", seq=7, options=[("MSS", 1460)]), 6),
                      (UDP(sport=53, dport=1053), 17)):
        for payload in (b"", b"a", b"hello world!!"):
            buf = raw(net / l4 / payload)
            pkt = packet_from(buf) if proto == 6 else None
            off = 40 if v6 else 20
            src, dst = (buf[8:24], buf[24:40]) if v6 else (buf[12:16], buf[16:20])
            assert l4_checksum_ok(buf, off, src, dst, proto)
            csum_at = off + (16 if proto == 6 else 6)
            stored = int.from_bytes(buf[csum_at:csum_at + 2], "big")
            zeroed = buf[:csum_at] + b"\x00\x00" + buf[csum_at + 2:]
            assert l4_checksum(zeroed, off, src, dst, proto) == stored
            bad = buf[:-1] + bytes([buf[-1] ^ 1]) if payload else zeroed
            assert not l4_checksum_ok(bad, off, src, dst, proto) or stored == 0
            if pkt is not None:
                assert T.Tcp().error(FakeTracker(), pkt, NF_INET_PRE_ROUTING, 0.0) == CONTINUE


def test_checksum_incremental_update() -> None:
    from statewall.packet.checksum import inet_checksum, update
    data = bytearray(b"\x45\x00\x00\x54\x12\x34\x40\x00\x40\x06\x00\x00\xc0\x00\x02\x01"
                     b"\xc6\x33\x64\x01")
    c = inet_checksum(data)
    new = bytes([203, 0, 113, 7])
    c2 = update(c, data[16:20], new)
    data[16:20] = new
    assert c2 == inet_checksum(data)


# --- TCP options (packet/tcpopt.py) -----------------------------------------------------------

def test_option_scans_follow_the_kernel() -> None:
    from statewall.packet.tcpopt import highest_sack, parse_options, wscale_sackperm
    syn = opts(mss=1460, wscale=7, sack_perm=True, ts=(1, 2))
    assert wscale_sackperm(syn, 0, len(syn)) == (7, True)
    assert wscale_sackperm(b"\x03\x03\x0f\x01", 0, 4) == (14, False)        # capped
    assert wscale_sackperm(b"\x03\x04\x07\x00", 0, 4) == (-1, False)        # wrong size
    assert wscale_sackperm(b"\x00\x04\x02\x03\x03\x07", 0, 6) == (-1, False)  # EOL first
    assert wscale_sackperm(b"\x08\x01\x04\x02", 0, 4) == (-1, False)        # silly size ends
    assert wscale_sackperm(b"\x04\x02\x03\x03", 0, 4) == (-1, True)         # partial wscale
    assert wscale_sackperm(b"\x01\x04\x02", 0, 3) == (-1, True)
    assert wscale_sackperm(b"\x01\x04", 0, 2) == (-1, False)                # no length byte
    assert wscale_sackperm(b"\x01\x04\x02", 0, 2) == (-1, False)           # area ends first
    assert wscale_sackperm(b"\x03\x03\x02\x03\x03\x05", 0, 6) == (5, False)  # later wins
    # SACK: the first well-formed SACK option only, highest edge in sequence order
    blocks = opts(sack=((10, 20), (30, 0xFFFFFFF0), (5, 40)))
    assert highest_sack(blocks, 0, len(blocks), 25) == 40     # 0xFFFFFFF0 is before 25
    # greedy in block order, like the kernel: 20 is after 0xFFFFFF00, then 40 after 20
    assert highest_sack(blocks, 0, len(blocks), 0xFFFFFF00) == 40
    one = opts(sack=((30, 0xFFFFFFF0),))
    assert highest_sack(one, 0, len(one), 0xFFFFFF00) == 0xFFFFFFF0
    assert highest_sack(blocks, 0, len(blocks), 0x70000000) == 0x70000000   # none after it
    wrap = opts(sack=((1, 0x10),))
    assert highest_sack(wrap, 0, len(wrap), 0xFFFFFFF0) == 0x10              # mod 2**32
    ts_only = opts(ts=(1, 2))
    assert len(ts_only) == 12 and highest_sack(ts_only, 0, 12, 99) == 99
    bad = bytes([5, 9]) + bytes(7) + opts(sack=((1, 500),))                 # size 9: skipped
    assert highest_sack(bad, 0, len(bad), 3) == 500
    two = opts(sack=((1, 100),)) + opts(sack=((1, 900),))
    assert highest_sack(two, 0, len(two), 3) == 100
    p = parse_options(opts(mss=1460, wscale=20, sack_perm=True, ts=(7, 8),
                           sack=((1, 2), (3, 4))) + b"\xfe\x04\x00\x00", 0, 44)
    assert (p.mss, p.wscale, p.wscale_raw, p.sack_perm, p.ts) == (1460, 14, 20, True, (7, 8))
    assert p.sack == [(1, 2), (3, 4)] and p.unknown == [254] and not p.truncated
    assert parse_options(b"\x02\x04\x05", 0, 3).truncated
    assert parse_options(b"\x02", 0, 5).truncated
