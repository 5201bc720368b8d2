"""The state file (io/statefile.py): round trip, timeouts adjusted for the downtime, TCP
windows re-learnt, atomic replace, and every kind of damage rejected whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flows import C4, FW, S4, icmp, tcp, udp
from statewall.conntrack.format import conntrack_line
from statewall.conntrack.proto.tcp import SEEN_SIZE, TD_MAXWIN
from statewall.io import statefile
from statewall.io.statefile import StateFileError


def lines(fw: FW, now: float) -> list[str]:
    t = fw.fw.tracker
    return sorted(conntrack_line(ct, now, t.l4[ct.proto]) for ct in t.entries(now))


def busy() -> FW:
    """A tracker with an established TCP connection, a UDP stream, a ping, an unreplied
    SYN and an INVALID packet counted."""
    fw = FW()
    fw.send(tcp(flags="S", seq=100))
    fw.send(tcp(S4, C4, 80, 40000, "SA", seq=500, ack=101), 0.01)
    fw.send(tcp(flags="A", seq=101, ack=501), 0.01)
    fw.send(tcp(flags="PA", seq=101, ack=501, payload=b"GET / HTTP/1.0\r\n\r\n"), 0.01)
    fw.send(udp(), 0.1)
    fw.send(udp(S4, C4, 53, 1032), 0.1)
    fw.send(icmp(), 0.1)
    fw.send(tcp(sport=40001, flags="S", seq=7), 0.1)
    fw.send(tcp(sport=40002, flags="A", seq=7, ack=9, ), 0.1)   # picked up: NEW
    fw.send(tcp(sport=40003, flags="F", seq=7), 0.1)            # INVALID
    return fw


def test_round_trip_same_time(tmp_path: Path) -> None:
    fw = busy()
    path = str(tmp_path / "state")
    n = statefile.save(path, fw.fw.tracker, fw.now, 1_000_000.0, {"queue": 0})
    assert n == len(fw.fw.tracker.table)
    other = FW()
    res = statefile.load(path, other.fw.tracker, 50.0, 1_000_000.0)
    assert res is not None and res.entries == n and res.expired == 0
    assert res.meta == {"queue": 0}
    assert lines(other, 50.0) == lines(fw, fw.now)
    t0, t1 = fw.fw.tracker, other.fw.tracker
    assert t1.stats == t0.stats and t1.invalid_reasons == t0.invalid_reasons
    assert t1.table.next_id == t0.table.next_id
    ids = sorted(ct.id for ct in t1.table.entries())
    assert ids == sorted(ct.id for ct in t0.table.entries())


def test_downtime_shortens_timeouts_and_drops_expired(tmp_path: Path) -> None:
    fw = busy()
    path = str(tmp_path / "state")
    statefile.save(path, fw.fw.tracker, fw.now, 1000.0)
    other = FW()
    # 40 s later: the ICMP entry (30 s) and the unreplied UDP... the UDP one was replied
    res = statefile.load(path, other.fw.tracker, 7.0, 1040.0)
    assert res is not None and res.downtime == pytest.approx(40.0)
    assert res.expired >= 1
    protos = sorted(ct.proto for ct in other.fw.tracker.table.entries())
    assert 1 not in protos                      # the ping's 30 s ran out while down
    for ct in other.fw.tracker.table.entries():
        orig = next(c for c in fw.fw.tracker.table.entries() if c.orig == ct.orig)
        assert ct.timeout - 7.0 == pytest.approx((orig.timeout - fw.now) - 40.0)


def test_clock_going_backwards_is_no_downtime(tmp_path: Path) -> None:
    fw = busy()
    path = str(tmp_path / "state")
    statefile.save(path, fw.fw.tracker, fw.now, 5000.0)
    other = FW()
    res = statefile.load(path, other.fw.tracker, 1.0, 4000.0)
    assert res is not None and res.downtime == 0.0 and res.expired == 0


def test_restored_tcp_relearns_windows_and_continues(tmp_path: Path) -> None:
    fw = busy()
    path = str(tmp_path / "state")
    statefile.save(path, fw.fw.tracker, fw.now, 1000.0)
    other = FW()
    other.now = 20.0
    statefile.load(path, other.fw.tracker, other.now, 1002.0)
    ct = next(c for c in other.fw.tracker.table.entries() if c.orig[3] == 40000)
    assert ct.l4[TD_MAXWIN] == 0 and ct.l4[SEEN_SIZE + TD_MAXWIN] == 0
    # far beyond the old window: peers went on while statewall was down
    r = other.send(tcp(flags="PA", seq=101 + 5_000_000, ack=501, payload=b"x" * 100), 0.1)
    assert r.verdict == "ACCEPT" and r.state == "ESTABLISHED", r
    r = other.send(tcp(S4, C4, 80, 40000, "A", seq=501, ack=101 + 5_000_100), 0.1)
    assert r.state == "ESTABLISHED", r
    # and from then on the window is tracked again: a wild segment is INVALID
    r = other.send(tcp(flags="PA", seq=101 + 900_000_000, ack=501, payload=b"y"), 0.1)
    assert r.state == "INVALID", r


def test_atomic_replace_leaves_no_temp(tmp_path: Path) -> None:
    fw = busy()
    path = tmp_path / "state"
    statefile.save(str(path), fw.fw.tracker, fw.now, 1.0)
    first = path.read_bytes()
    fw.send(udp(sport=2000), 1.0)
    statefile.save(str(path), fw.fw.tracker, fw.now, 2.0)
    assert path.read_bytes() != first
    assert os.listdir(tmp_path) == ["state"]


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert statefile.load(str(tmp_path / "none"), FW().fw.tracker, 0.0, 0.0) is None


def _damaged(tmp_path: Path, how: str) -> str:
    fw = busy()
    path = tmp_path / "state"
    statefile.save(str(path), fw.fw.tracker, fw.now, 1000.0)
    data = path.read_bytes()
    head, body = data.split(b"\n", 1)
    header = json.loads(head)
    if how == "flip":
        i = len(body) // 2
        body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
    elif how == "truncate":
        body = body[:-10]
    elif how == "magic":
        header["magic"] = "conntrackd"
    elif how == "version":
        header["version"] = 99
    elif how == "profile":
        header["profile"] = "linux-2.4"
    elif how == "host":
        header["host"] = "elsewhere"
    elif how == "garbage":
        path.write_bytes(b"\x00\x01garbage" * 100)
        return str(path)
    elif how in ("bad-port", "bad-addr", "bad-window", "bad-helper", "dup-id"):
        doc = json.loads(body)
        if how == "bad-port":
            doc["conns"][0][2][3] = 70000
        elif how == "bad-addr":
            doc["conns"][0][2][0] = "c0a8"          # 2 bytes
        elif how == "bad-window":
            tcp_row = next(r for r in doc["conns"] if r[2][2] == 6)
            tcp_row[7] = tcp_row[7][:5]
        elif how == "bad-helper":
            doc["conns"][0][13] = {"helper": ["no-such-helper", 2, 6], "data": None}
        else:
            doc["conns"][1][0] = doc["conns"][0][0]
        body = json.dumps(doc).encode()
        header["body_len"] = len(body)
        import hashlib
        header["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)
    return str(path)


@pytest.mark.parametrize("how, words", [
    ("flip", "checksum"), ("truncate", "truncated"), ("magic", "not a statewall"),
    ("version", "version"), ("profile", "profile"), ("host", "host"),
    ("garbage", "not a statewall"), ("bad-port", "invalid content"),
    ("bad-addr", "invalid content"), ("bad-window", "TCP window"),
    ("bad-helper", "helper"), ("dup-id", "duplicate"),
])
def test_damaged_or_foreign_files_are_refused_whole(tmp_path: Path, how: str,
                                                    words: str) -> None:
    path = _damaged(tmp_path, how)
    other = FW()
    with pytest.raises(StateFileError) as ei:
        statefile.load(path, other.fw.tracker, 0.0, 1000.0)
    assert words in str(ei.value)
    assert len(other.fw.tracker.table) == 0 and other.fw.tracker.table.count == 0
    new = statefile.set_aside(path, 0.0)
    assert not os.path.exists(path) and os.path.exists(new) and ".bad-" in new


def test_over_max_keeps_the_freshest(tmp_path: Path) -> None:
    fw = busy()
    path = str(tmp_path / "state")
    statefile.save(path, fw.fw.tracker, fw.now, 1000.0)
    small = FW(nf_conntrack_max=2)
    res = statefile.load(path, small.fw.tracker, 0.0, 1000.0)
    assert res is not None and res.entries == 2 and res.over_max >= 1
    assert small.fw.tracker.table.count == 2


def test_ftp_helper_entry_and_expectation_survive(tmp_path: Path) -> None:
    """An FTP control connection with a helper (CT --helper ftp) and the expectation its
    PORT command created: both come back, the expectation still bound to its master, and
    the data connection is RELATED after the restore."""
    from test_expect import HelperFW, flow, ftp_login
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n")).verdict == "ACCEPT"
    t = fw.tracker
    assert t.expect.count == 1
    path = str(tmp_path / "state")
    statefile.save(path, t, fw.now, 1000.0)
    other = HelperFW()
    other.now = 3.0
    res = statefile.load(path, other.tracker, 3.0, 1001.0)
    assert res is not None and res.expectations == 1
    e = other.tracker.expect.entries(3.0)[0]
    assert e.master.helper == "ftp" and e.dport == 40000
    assert e.timeout is not None and 3.0 < e.timeout < 3.0 + 300
    r = other.send(tcp(S4, C4, 20, 40000, "S", seq=1), 0.5)
    assert r.state == "RELATED", r
    assert r.ct.master is e.master


def test_nat_extension_round_trip_and_damage(tmp_path: Path) -> None:
    """MASQUERADE's interface and the FTP sequence adjustment survive a restart (without
    them an FTP control connection under NAT breaks after it); a bad one rejects the file."""
    from statewall.nat.core import ext
    fw = busy()
    t = fw.fw.tracker
    ct = next(c for c in t.table.entries() if c.proto == 6 and c.state == 3)
    e = ext(ct)
    e.masq_iface = "eth1"
    e.seqadj = [[1000, 0, 5], [0, 0, 0]]
    path = str(tmp_path / "state")
    statefile.save(path, t, fw.now, 1_000_000.0, {})
    other = FW()
    statefile.load(path, other.fw.tracker, 50.0, 1_000_000.0)
    got = next(c for c in other.fw.tracker.table.entries() if c.orig == ct.orig)
    assert got.nat is not None and got.nat.masq_iface == "eth1"
    assert got.nat.seqadj == [[1000, 0, 5], [0, 0, 0]]
    plain = next(c for c in other.fw.tracker.table.entries() if c.proto == 17)
    assert plain.nat is None
    e.seqadj = [[1000, 0, 5]]                       # one direction missing: damaged
    statefile.save(path, t, fw.now, 1_000_000.0, {})
    third = FW()
    with pytest.raises(StateFileError, match="sequence adjustment"):
        statefile.load(path, third.fw.tracker, 50.0, 1_000_000.0)
    assert len(third.fw.tracker.table) == 0
