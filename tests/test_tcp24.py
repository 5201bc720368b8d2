"""The Linux 2.4.0 TCP tracker (``linux-2.4`` profile): table cell by cell, ASSURED rule,
RST before a reply, timeouts, no window tracking.

The expected table is typed from net/ipv4/netfilter/ip_conntrack_proto_tcp.c of 2.4.0 in
its own notation (note the 2.4 state order: NONE, ESTABLISHED, SYN_SENT, SYN_RECV, ...).
"""

from __future__ import annotations

import pytest

from statewall.conntrack.conn import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_SEEN_REPLY,
    Conn,
)
from statewall.conntrack.proto import tcp24 as T24
from statewall.conntrack.proto.base import CONTINUE, INVALID, NF_ACCEPT
from statewall.conntrack.sysctl import Settings
from test_tcp_table import A4, B4, FakeTracker, Flow, build, packet_from

STATES = ["sNO", "sES", "sSS", "sSR", "sFW", "sTW", "sCL", "sCW", "sLA", "sLI"]
NUM = {n: i for i, n in enumerate(STATES)} | {"sIV": 10}
CLASSES = ["syn", "fin", "ack", "rst", "none"]
EXPECTED = {
    0: {  # ORIGINAL   sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI
        "syn":  "sSS sES sSS sSR sSS sSS sSS sSS sSS sLI",
        "fin":  "sTW sFW sSS sTW sFW sTW sCL sTW sLA sLI",
        "ack":  "sES sES sSS sES sFW sTW sCL sCW sLA sES",
        "rst":  "sCL sCL sSS sCL sCL sTW sCL sCL sCL sCL",
        "none": "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    },
    1: {  # REPLY      sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI
        "syn":  "sSR sES sSR sSR sSR sSR sSR sSR sSR sSR",
        "fin":  "sCL sCW sSS sTW sTW sTW sCL sCW sLA sLI",
        "ack":  "sCL sES sSS sSR sFW sTW sCL sCW sCL sLI",
        "rst":  "sCL sCL sCL sCL sCL sCL sCL sCL sLA sLI",
        "none": "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    },
}
CLASS_FLAGS = {"syn": "S", "fin": "F", "ack": "A", "rst": "R", "none": "U"}
TIMEOUT = {"sNO": 1800, "sES": 432000, "sSS": 120, "sSR": 60, "sFW": 120, "sTW": 120,
           "sCL": 10, "sCW": 60, "sLA": 30, "sLI": 120}
CELLS = [(d, c, s, EXPECTED[d][c].split()[i]) for d in (0, 1) for c in CLASSES
         for i, s in enumerate(STATES)]


def flow(**sysctls: int) -> Flow:
    return Flow(profile="linux-2.4", tcp=T24.Tcp24(), **sysctls)


def test_names() -> None:
    assert T24.TCP24_NAMES == ("NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT",
                               "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN")
    assert [int(x) for x in T24.Tcp24Conntrack] == list(range(11))


@pytest.mark.parametrize("flags,cls", [("S", "syn"), ("SA", "syn"), ("SF", "syn"),
                                       ("F", "fin"), ("FA", "fin"), ("A", "ack"),
                                       ("PA", "ack"), ("R", "rst"), ("RS", "rst"),
                                       ("RA", "rst"), ("", "none"), ("UP", "none")])
def test_flag_class(flags: str, cls: str) -> None:
    from test_tcp_table import flagbits
    assert T24.get_conntrack_index24(flagbits(flags)) == CLASSES.index(cls)


@pytest.mark.parametrize("d,cls,old,cell", CELLS)
def test_table_data(d: int, cls: str, old: str, cell: str) -> None:
    assert T24.TCP24_CONNTRACKS[d][CLASSES.index(cls)][STATES.index(old)] == NUM[cell]


@pytest.mark.parametrize("d,cls,old,cell", CELLS)
def test_table_behaviour(d: int, cls: str, old: str, cell: str) -> None:
    tr = FakeTracker(Settings("linux-2.4"))
    ct = Conn((A4, B4, 6, 40000, 80, 0), (B4, A4, 6, 80, 40000, 0), 2, 0.0)
    ct.state = STATES.index(old)
    ct.status = IPS_CONFIRMED | IPS_SEEN_REPLY
    ct.l4 = 0
    pkt = build(CLASS_FLAGS[cls], 123, 456, reply=bool(d))
    ret = T24.Tcp24().packet(tr, ct, pkt, d, IP_CT_ESTABLISHED_REPLY if d else
                             IP_CT_ESTABLISHED, 100.0)
    if cell == "sIV":
        assert ret == INVALID and ct.state == STATES.index(old)
        return
    assert ret == NF_ACCEPT
    assert ct.state == NUM[cell]
    assert ct.timeout == 100.0 + TIMEOUT[cell]


@pytest.mark.parametrize("cls", CLASSES)
def test_first_packet(cls: str) -> None:
    """Any flag the table knows starts a connection; the state after tcp_new and the
    first tcp_packet is table[ORIG][class][table[ORIG][class][NONE]]."""
    f = flow()
    got = f.o(CLASS_FLAGS[cls], 1000, 77)
    first = EXPECTED[0][cls].split()[0]
    if first == "sIV":
        assert got == "INVALID" and f.ct is None
        return
    assert got == "NEW"
    second = EXPECTED[0][cls].split()[STATES.index(first)]
    assert f.state == T24.TCP24_NAMES[NUM[second]]
    assert f.left == TIMEOUT[second]


def test_seed_walkthrough() -> None:
    """The 2001 document's handshake: SYN_SENT 119 [UNREPLIED], SYN_RECV 57, ESTABLISHED
    431995 [ASSURED] (seconds left as printed a moment later)."""
    f = flow()
    assert f.o("S", 1000, 0) == "NEW"
    assert f.state == "SYN_SENT" and f.left == 120 and f.ct is not None
    assert not f.ct.status & IPS_SEEN_REPLY
    assert f.r("SA", 5000, 1001) == "ESTABLISHED"
    assert f.state == "SYN_RECV" and f.left == 60 and f.ct.l4 == 5001
    assert f.o("A", 1001, 5001) == "ESTABLISHED"
    assert f.state == "ESTABLISHED" and f.left == 432000 and f.assured
    assert f.ct.events & 16
    # termination: FIN+ACK, ACK, FIN+ACK, ACK
    f.o("FA", 1001, 5001)
    assert f.state == "FIN_WAIT"
    f.r("A", 5001, 1002)
    assert f.state == "FIN_WAIT"
    f.r("FA", 5001, 1002)
    assert f.state == "TIME_WAIT" and f.left == 120
    f.o("A", 1002, 5002)
    assert f.state == "TIME_WAIT"


def test_assured_needs_the_handshake_ack() -> None:
    f = flow()
    f.o("S", 1000, 0)
    f.r("SA", 5000, 1001)
    f.o("A", 1001, 4242)            # wrong ack: ESTABLISHED but not ASSURED
    assert f.state == "ESTABLISHED" and not f.assured
    f.o("A", 1001, 5001)            # old state is ES now: never ASSURED in 2.4
    assert not f.assured


def test_no_window_tracking() -> None:
    f = flow()
    f.o("S", 1000, 0)
    f.r("SA", 5000, 1001)
    f.o("A", 1001, 5001)
    for seq in (0, 0x7FFFFFFF, 0xFFFFFFFF, 12345):
        assert f.o("PA", seq, seq ^ 0x5555, payload=b"x") == "ESTABLISHED"
        assert f.r("A", seq, 1) == "ESTABLISHED"


def test_rst_before_reply_deletes() -> None:
    f = flow()
    f.o("S", 1000, 0)
    ct = f.ct
    assert f.o("R", 1001, 0) == "NEW"
    assert f.tr.killed == [ct] and f.state == "(none)"


def test_first_packet_rst_survives_10s() -> None:
    """An unconfirmed entry has no timer to delete in 2.4.0: it stays CLOSE for 10 s."""
    f = flow()
    assert f.o("R", 1, 0) == "NEW"
    assert f.tr.killed == [] and f.state == "CLOSE" and f.left == 10


def test_rst_after_reply_closes() -> None:
    f = flow()
    f.o("S", 1000, 0)
    f.r("SA", 5000, 1001)
    assert f.r("R", 5001, 0) == "ESTABLISHED"
    assert f.state == "CLOSE" and f.left == 10 and not f.tr.killed


def test_error_accepts_everything() -> None:
    tr = FakeTracker(Settings("linux-2.4"))
    for flags in (0, 0x03, 0xFF):
        assert T24.Tcp24().error(tr, build(flags, 1, csum=0xBAD), 0, 0.0) == CONTINUE


def test_truncated_options_invalid() -> None:
    f = flow()
    full = build("S", 1, options=b"\x02\x04\x05\xb4" * 4)
    pkt = packet_from(full.buf[:full.l4off + 24])
    assert f.inject(pkt, False) == "INVALID"
    assert f.pkt is not None and f.pkt.reason == "truncated packet"


def test_timeouts_follow_settings() -> None:
    f = flow(nf_conntrack_tcp_timeout_syn_sent=7)
    f.o("S", 1, 0)
    assert f.left == 7


def test_can_early_drop_and_tuple() -> None:
    t = T24.Tcp24()
    ct = Conn((A4, B4, 6, 1, 2, 0), (B4, A4, 6, 2, 1, 0), 2, 0.0)
    for s in range(10):
        ct.state = s
        assert not t.can_early_drop(ct)
        assert t.state_name(ct) == T24.TCP24_NAMES[s]
    assert t.pkt_to_tuple(build("S", 1)) == (40000, 80)
    assert t.invert(1, 2) == (2, 1) and t.name == "tcp"
    assert not ct.status & IPS_ASSURED
