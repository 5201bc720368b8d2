"""Flow records: building them from DESTROY events, the background writer, the SQLite and
PostgreSQL stores through ``statewall flows``, and ``statewall run --flows`` end to end.

The PostgreSQL tests run a real server: ``initdb`` into a temporary directory as the
``postgres`` user, ``pg_ctl start`` on a unix socket in that directory (no TCP), one
database per test; the server is always stopped at the end. The live test runs the
firewall in network namespaces (tests/test_live.py's lab) with real TCP/UDP/ICMP traffic.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import raw

from flows import C4, S4, dec, icmp, tcp, udp
from statewall.cli.main import main as cli_main
from statewall.conntrack import ecache
from statewall.conntrack.sysctl import Settings
from statewall.ctl import ops
from statewall.firewall import Firewall
from statewall.flows import record, store
from statewall.flows.record import COLUMN_NAMES, as_dict, build, listener
from statewall.flows.sink_sqlite import SqliteSink
from statewall.flows.writer import Writer
from statewall.rules.parse import parse_ruleset

OFFSET = 1_790_000_000.0          # wall - monotonic in the pure tests


class Rec:
    """A firewall whose DESTROY events become rows (offset fixed)."""

    def __init__(self, fw: Firewall | None = None, **sysctls: int) -> None:
        self.fw = fw or Firewall(Settings("linux", [(k, str(v)) for k, v in sysctls.items()]))
        self.snaps: list[Any] = []
        ecache.notifier(self.fw.tracker).add(listener(self.fw.tracker, self.snaps.append))
        self.now = 100.0
        self.sizes = [0, 0]

    def send(self, p: Any, dt: float = 0.1, iface: str | None = None, reply: bool = False
             ) -> Any:
        self.now += dt
        pkt = dec(p)
        pkt.iface = iface
        self.sizes[reply] += len(raw(p))
        d = self.fw.process(pkt, self.now, 0)
        assert d.verdict == "ACCEPT", d.reason
        return d

    def rows(self) -> list[dict[str, Any]]:
        return [as_dict(build(s, OFFSET, 3)) for s in self.snaps]


def _tcp_session(r: Rec, close: str = "fin") -> None:
    c = dict(src=C4, dst=S4, sport=40000, dport=80)
    s = dict(src=S4, dst=C4, sport=80, dport=40000)
    r.send(tcp(**c, flags="S", seq=1000))
    r.send(tcp(**s, flags="SA", seq=5000, ack=1001), reply=True)
    r.send(tcp(**c, flags="A", seq=1001, ack=5001))
    r.send(tcp(**c, flags="PA", seq=1001, ack=5001, payload=b"x" * 10))
    r.send(tcp(**s, flags="A", seq=5001, ack=1011), reply=True)
    r.send(tcp(**s, flags="PA", seq=5001, ack=1011, payload=b"y" * 20), reply=True)
    r.send(tcp(**c, flags="A", seq=1011, ack=5021))
    if close == "none":
        return
    if close == "fin":
        r.send(tcp(**c, flags="FA", seq=1011, ack=5021))
        r.send(tcp(**s, flags="FA", seq=5021, ack=1012), reply=True)
        r.send(tcp(**c, flags="A", seq=1012, ack=5022))
    else:
        r.send(tcp(**c, flags="R", seq=1011))


# -- record building (pure) ----------------------------------------------------------------
def test_tcp_close_record_after_time_wait_expiry() -> None:
    r = Rec()
    start = r.now + 0.1
    _tcp_session(r)
    end_pkt = r.now
    assert r.snaps == []                            # TIME_WAIT: still in the table
    r.fw.tracker.expire(end_pkt + 119.0)
    assert r.snaps == []
    r.fw.tracker.expire(end_pkt + 120.0)            # nf_conntrack_tcp_timeout_time_wait
    [row] = r.rows()
    assert row["orig_packets"] == 6 and row["reply_packets"] == 4
    assert (row["orig_bytes"], row["reply_bytes"]) == tuple(r.sizes)
    assert row["state"] == "TIME_WAIT" and row["ended_by"] == "close"
    assert row["status"] == "SEEN_REPLY,ASSURED,CONFIRMED"
    assert (row["orig_src"], row["orig_dst"], row["orig_sport"], row["orig_dport"]) == \
        (C4, S4, 40000, 80)
    assert (row["reply_src"], row["reply_dst"], row["reply_sport"], row["reply_dport"]) == \
        (S4, C4, 80, 40000)
    assert row["start_time"] == pytest.approx(start + OFFSET)
    assert row["end_time"] == pytest.approx(end_pkt + 120.0 + OFFSET)
    assert (row["family"], row["proto"], row["protonum"], row["zone"], row["mark"]) == \
        ("ipv4", "tcp", 6, 0, 0)
    assert (row["snat"], row["dnat"], row["nat_src"], row["icmp_type"]) == (0, 0, None, None)
    assert row["queue"] == 3 and row["ct_id"] == 1


def test_rst_and_refused_connections_end_by_rst() -> None:
    r = Rec()
    _tcp_session(r, close="rst")
    r.fw.tracker.expire(r.now + 10.0)               # CLOSE: nf_conntrack_tcp_timeout_close
    [row] = r.rows()
    assert (row["state"], row["ended_by"]) == ("CLOSE", "rst")
    # a SYN answered by a RST: the entry dies at once (tcp_packet's unreplied RST)
    r2 = Rec()
    r2.send(tcp(sport=40001, flags="S", seq=1))
    r2.send(tcp(src=S4, dst=C4, sport=80, dport=40001, flags="RA", seq=0, ack=2), reply=True)
    [row] = r2.rows()
    assert row["ended_by"] == "rst" and row["reply_packets"] == 1
    assert "SEEN_REPLY" not in row["status"]


def test_conntrack_delete_flush_timeout_and_early_drop() -> None:
    r = Rec(nf_conntrack_max=2)
    r.send(udp(sport=1000))
    r.send(udp(src=S4, dst=C4, sport=53, dport=1000), reply=True)
    r.send(udp(sport=1001))
    res = ops.run(r.fw.tracker, ["-D", "-p", "udp", "--sport", "1000"], r.now)
    assert res.rc == 0
    [row] = r.rows()
    assert row["ended_by"] == "deleted" and row["state"] is None
    assert (row["orig_packets"], row["reply_packets"]) == (1, 1)
    r.send(udp(sport=1002))
    r.send(udp(sport=1003))                         # table full: the oldest unassured goes
    rows = r.rows()
    assert [(x["orig_sport"], x["ended_by"]) for x in rows[1:]] == [(1001, "early_drop")]
    ops.run(r.fw.tracker, ["-F"], r.now)
    assert [x["ended_by"] for x in r.rows()[2:]] == ["deleted", "deleted"]
    r.send(udp(sport=1004))
    r.fw.tracker.expire(r.now + 30.0)               # nf_conntrack_udp_timeout
    assert r.rows()[-1]["ended_by"] == "timeout"


def test_icmp_and_ipv6_and_nat_records() -> None:
    rules = parse_ruleset(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 203.0.113.7:80\n"
        "-A POSTROUTING -p tcp -j SNAT --to-source 203.0.113.1:30000\nCOMMIT\n", "t4", 4)
    from statewall.host import HostModel, parse_iface
    host = HostModel([parse_iface("c0=198.51.100.1/24,2001:db8:1::1/64"),
                      parse_iface("s0=203.0.113.1/24,2001:db8:2::1/64")])
    r = Rec(Firewall(Settings(), rules4=rules, host=host))
    r.send(icmp(type=8, id=77), iface="c0")
    r.send(IP(src=C4, dst=S4) / TCP(sport=40000, dport=8080, flags="S", seq=1), iface="c0")
    r.send(tcp(src="2001:db8:1::2", dst="2001:db8:2::2", sport=5, dport=6, flags="S"),
           iface="c0")
    ops.run(r.fw.tracker, ["-F"], r.now)
    by = {x["proto"] + x["family"]: x for x in r.rows()}
    ic = by["icmpipv4"]
    assert (ic["icmp_type"], ic["icmp_code"], ic["icmp_id"], ic["reply_icmp_type"]) == \
        (8, 0, 77, 0)
    assert ic["orig_sport"] is None
    t = by["tcpipv4"]
    assert (t["snat"], t["dnat"]) == (1, 1)
    assert (t["nat_dst"], t["nat_dport"], t["nat_src"], t["nat_sport"]) == \
        ("203.0.113.7", 80, "203.0.113.1", 30000)
    assert (t["reply_src"], t["reply_dst"], t["reply_sport"], t["reply_dport"]) == \
        ("203.0.113.7", "203.0.113.1", 80, 30000)
    assert "SRC_NAT" in t["status"] and "DST_NAT" in t["status"]
    v6 = by["tcpipv6"]
    assert (v6["orig_src"], v6["state"]) == ("2001:db8:1::2", "SYN_SENT")


def test_ended_by_table() -> None:
    e = record.ended_by
    assert e("timeout", 6, "TIME_WAIT") == "close"
    assert e("killed", 6, "TIME_WAIT") == "close"      # reopened by a new SYN
    assert e("timeout", 6, "CLOSE") == "rst"
    assert e("timeout", 6, "ESTABLISHED") == "timeout"
    assert e("timeout", 17, None) == "timeout"
    assert e("deleted", 6, "TIME_WAIT") == "deleted"
    assert e("shutdown", 6, "ESTABLISHED") == "shutdown"
    assert e("nonsense", 1, None) == "killed"
    assert set(record.ENDED_BY) >= {"timeout", "close", "rst", "deleted", "early_drop",
                                    "killed", "shutdown"}


# -- the writer ----------------------------------------------------------------------------
class FakeStore:
    def __init__(self, fail: int = 0, gate: threading.Event | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.fail = fail
        self.gate = gate
        self.closed = False
        self.entered = threading.Event()

    def write(self, rows: list[Any]) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise store.StoreError("database is down")
        self.batches.append(list(rows))

    def select(self, where: str, params: list[Any], desc: bool) -> Iterator[Any]:
        return iter(())

    def close(self) -> None:
        self.closed = True


def _snap(i: int) -> Any:
    o = (b"\xc6\x33\x64\x02", b"\xcb\x00\x71\x02", 17, i, 53, 0)
    rp = (o[1], o[0], 17, 53, i, 0)
    return (o, rp, 2, 0xA, None, 0, [1, 40, 0, 0], 1.0, 2.0, "timeout", None, i)


def test_writer_batches_and_flushes_on_close() -> None:
    fs = FakeStore()
    w = Writer(lambda: fs, batch=10, interval=30.0)
    for i in range(10):
        w.put(_snap(i))
    deadline = time.monotonic() + 5
    while not fs.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in fs.batches] == [10]         # woken by a full batch, not time
    for i in range(10, 25):
        w.put(_snap(i))
    while len(fs.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert [len(b) for b in fs.batches] == [10, 10]     # the 5 after it wait (30 s)
    st = w.close()
    assert [len(b) for b in fs.batches] == [10, 10, 5]  # close writes them
    assert st["written"] == 25 and st["lost"] == 0 and st["unwritten"] == 0
    assert [b[0][COLUMN_NAMES.index("orig_sport")] for b in fs.batches] == [0, 10, 20]
    assert fs.closed


def test_writer_bounded_counts_losses_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    fs = FakeStore(fail=2, gate=gate)
    log = logging.getLogger("test.flows")
    w = Writer(lambda: fs, batch=4, interval=0.01, maxlen=8, log=log)
    for i in range(4):
        w.put(_snap(i))
    assert fs.entered.wait(5)                # the thread holds those 4, stuck in write()
    t0 = time.perf_counter()
    for i in range(4, 104):
        w.put(_snap(i))                      # never blocks: 8 buffered, the rest lost
    took = time.perf_counter() - t0
    assert took < 0.05
    assert len(w.buf) == 8 and w.lost == 92
    with caplog.at_level(logging.WARNING, logger="test.flows"):
        gate.set()                           # the database fails twice, then works
        st = w.close()
    assert st["written"] == 12 and st["lost"] == 92 and st["errors"] == 2
    assert [b[0][COLUMN_NAMES.index("orig_sport")] for b in fs.batches] == [0, 4, 8]
    assert any("flow records lost" in m for m in caplog.messages)
    assert any("not written yet" in m for m in caplog.messages)


def test_writer_close_gives_up_on_a_dead_database() -> None:
    fs = FakeStore(fail=10**9)
    w = Writer(lambda: fs, batch=4, interval=0.01)
    for i in range(6):
        w.put(_snap(i))
    st = w.close(timeout=0.5)
    assert st["written"] == 0 and st["unwritten"] == 6 and st["errors"] >= 1


# -- PostgreSQL server for the tests -------------------------------------------------------
def _pg_bin() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


class PgServer:
    """initdb + pg_ctl on a unix socket in a temporary directory (as user postgres)."""

    def __init__(self) -> None:
        b = _pg_bin()
        if b is None:
            pytest.fail("PostgreSQL is not installed (Debian package postgresql; make setup)")
        self.bin = b
        self.dir = tempfile.mkdtemp(prefix="sw-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.mkdir(self.sock)
        shutil.chown(self.dir, "postgres", "postgres")
        shutil.chown(self.sock, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.started = False

    def _run(self, *argv: str) -> None:
        r = subprocess.run(argv, user="postgres" if os.geteuid() == 0 else None,
                           capture_output=True, text=True, timeout=120, cwd=self.dir)
        assert r.returncode == 0, f"{argv[0]}: {r.stdout}{r.stderr}"

    def start(self) -> PgServer:
        self._run(f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.started = True
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-t", "60",
                  "-l", os.path.join(self.dir, "log"), "-o",
                  f"-k {self.sock} -p {self.port} -c listen_addresses= -c fsync=off", "start")
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.sock}&port={self.port}"

    def createdb(self, name: str) -> str:
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            subprocess.run([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                            "stop"], user="postgres" if os.geteuid() == 0 else None,
                           capture_output=True, timeout=60, cwd=self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    if os.geteuid() != 0:
        pytest.skip("the PostgreSQL fixture runs initdb as user postgres: needs root")
    srv = PgServer()
    try:
        yield srv.start()
    finally:
        srv.stop()


_DBN = [0]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "flows.db")
    srv: PgServer = request.getfixturevalue("pg")
    _DBN[0] += 1
    return srv.createdb(f"flows{os.getpid()}_{_DBN[0]}")


# -- stores and `statewall flows` ----------------------------------------------------------
def _flows(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli_main(["flows", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _fill(db: str) -> list[dict[str, Any]]:
    """A store with a few known flows (through the real record path)."""
    r = Rec()
    _tcp_session(r)                                           # tcp, close
    r.send(udp(sport=1000))
    r.send(udp(src=S4, dst=C4, sport=53, dport=1000), reply=True)
    r.send(udp(src="198.51.100.9", sport=1001))
    r.send(icmp(id=5))
    r.send(tcp(src="2001:db8:1::2", dst="2001:db8:2::2", sport=5, dport=6, flags="S"),
           iface="c0")
    r.fw.tracker.expire(r.now + 29.0)
    ops.run(r.fw.tracker, ["-D", "-s", "198.51.100.9"], r.now + 29.0)
    r.fw.tracker.expire(r.now + 200.0)                        # the rest time out
    rows = [build(s, OFFSET, 0) for s in r.snaps]
    s = store.open_writer(db)
    s.write(rows[:2])
    s.write(rows[2:])
    s.close()
    return [as_dict(x) for x in rows]


def test_store_round_trip_filters_and_formats(db: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rows = _fill(db)
    assert len(rows) == 5
    rc, out, _ = _flows(capsys, "--db", db, "-o", "json")
    assert rc == 0
    got = [json.loads(x) for x in out.splitlines()]
    assert [{k: v for k, v in g.items() if k != "id"} for g in got] == \
        sorted(rows, key=lambda x: x["end_time"])
    ends = {g["proto"] + str(g["orig_sport"]): g["ended_by"] for g in got}
    assert ends == {"udp1001": "deleted", "udp1000": "timeout", "icmpNone": "timeout",
                    "tcp40000": "close", "tcp5": "timeout"}

    def q(*a: str) -> list[dict[str, Any]]:
        rc, out, err = _flows(capsys, "--db", db, "-o", "json", *a)
        assert rc == 0, err
        return [json.loads(x) for x in out.splitlines()]
    assert [x["orig_sport"] for x in q("-p", "udp")] == [1001, 1000]
    assert [x["orig_sport"] for x in q("-s", "198.51.100.9")] == [1001]
    assert {x["orig_src"] for x in q("-s", "198.51.100.0/24")} == {C4, "198.51.100.9"}
    assert len(q("-s", "198.51.100.0/24")) == 4
    assert [x["family"] for x in q("-s", "2001:db8::/32")] == ["ipv6"]
    assert [x["orig_dport"] for x in q("-p", "tcp", "--dport", "80")] == [80]
    assert [x["orig_sport"] for x in q("--state", "time_wait")] == [40000]
    assert [x["proto"] for x in q("--ended-by", "close,deleted")] == ["udp", "tcp"]
    assert [x["proto"] for x in q("--status", "ASSURED")] == ["tcp"]
    assert len(q("--status", "SEEN_REPLY")) == 2
    assert [x["proto"] for x in q("-p", "icmp")] == ["icmp"]
    assert len(q("-f", "ipv6")) == 1 and len(q("-d", S4, "-r", S4)) == 4
    last = max(r["end_time"] for r in rows)
    iso_last = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last - 1))
    assert len(q("--since", iso_last)) == 4          # the four that timed out at the end
    assert [x["ended_by"] for x in q("--until", "2020-01-01T00:00:00Z")] == []
    assert len(q("--since", "10m")) == 0              # OFFSET lies in 2026-09: long ago
    assert [x["proto"] for x in q("--limit", "2")] == [
        g["proto"] for g in got[-2:]]                 # the newest two, oldest first
    assert q("--limit", "0") == []
    # CSV: a header and the same values
    rc, out, _ = _flows(capsys, "--db", db, "-o", "csv", "-p", "tcp", "--dport", "80")
    rdr = list(csv.reader(io.StringIO(out)))
    assert rdr[0] == ["id", *COLUMN_NAMES]
    d = dict(zip(rdr[0], rdr[1]))
    assert (d["orig_packets"], d["state"], d["ended_by"], d["nat_src"]) == \
        ("6", "TIME_WAIT", "close", "")
    # table (default)
    rc, out, _ = _flows(capsys, "--db", db, "-p", "tcp", "--dport", "80")
    head, line = out.splitlines()
    assert head.split() == ["START", "DURATION", "PROTO", "STATE", "ORIGINAL", "REPLY",
                            "PACKETS", "BYTES", "ENDED-BY"]
    assert f"{C4}:40000 > {S4}:80" in line and f"{S4}:80 > {C4}:40000" in line
    assert line.split()[-3:] == ["6/4", f"{d['orig_bytes']}/{d['reply_bytes']}", "close"]
    assert line.startswith("2026-")
    rc, out, _ = _flows(capsys, "--db", db, "-p", "icmp")
    assert f"{C4} > {S4} type=8 code=0 id=5" in out


def test_flows_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "f.db")
    _fill(db)
    for argv, what in ((["-s", "300.1.1.1"], "-s: bad address"),
                       (["--sport", "70000"], "--sport: bad port"),
                       (["-p", "bogus"], "unknown protocol"),
                       (["--state", "OPEN"], "--state: unknown TCP state"),
                       (["--ended-by", "magic"], "--ended-by: unknown reason"),
                       (["--since", "yesterday"], "--since: bad time"),
                       (["--status", "SHINY"], "--status: unknown flag"),
                       (["--limit", "-1"], "--limit"),
                       (["-m", "x"], "--mark: bad value")):
        rc, out, err = _flows(capsys, "--db", db, *argv)
        assert rc == 2 and what in err and out == "", (argv, err)
    rc, _, err = _flows(capsys, "--db", str(tmp_path / "none.db"))
    assert rc == 1 and "no such flow database" in err
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite at all" * 100)
    rc, _, err = _flows(capsys, "--db", str(tmp_path / "junk.db"))
    assert rc == 1 and "junk.db" in err
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    rc, _, err = _flows(capsys, "--db", str(other))
    assert rc == 1 and "not a statewall flow database" in err
    with sqlite3.connect(db) as c:
        c.execute("UPDATE flows_schema SET version = 99")
    rc, _, err = _flows(capsys, "--db", db)
    assert rc == 1 and "schema version 99" in err
    for bad in ("http://x", str(tmp_path / "nodir" / "f.db"), str(tmp_path)):
        with pytest.raises(ValueError):
            store.check_target(bad)


def test_sqlite_readers_and_several_writers_at_once(tmp_path: Path) -> None:
    """Two writers (as two workers) and a reader on one file: WAL, no 'database is
    locked', every row there."""
    db = str(tmp_path / "f.db")
    store.prepare(db)
    snaps = [_snap(i) for i in range(400)]
    errors: list[BaseException] = []

    def writer(q: int) -> None:
        try:
            s = SqliteSink(db)
            for k in range(0, 400, 40):
                s.write([build(x, 0.0, q) for x in snaps[k:k + 40]])
            s.close()
        except BaseException as e:
            errors.append(e)
    ts = [threading.Thread(target=writer, args=(q,)) for q in (0, 1)]
    for t in ts:
        t.start()
    seen = 0
    while any(t.is_alive() for t in ts):
        r = store.open_reader(db)
        seen = max(seen, sum(1 for _ in r.select("", [], False)))
        r.close()
    for t in ts:
        t.join()
    assert not errors
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("SELECT queue, count(*) FROM flows GROUP BY queue").fetchall() == \
            [(0, 400), (1, 400)]


def test_postgresql_schema_race_and_version(pg: PgServer) -> None:
    url = pg.createdb(f"race{os.getpid()}")
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            store.open_writer(url).close()
        except BaseException as e:
            errors.append(e)
    ts = [threading.Thread(target=open_one) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    import psycopg
    with psycopg.connect(url, autocommit=True) as c:
        assert c.execute("SELECT version FROM flows_schema").fetchall() == [(1,)]
        c.execute("UPDATE flows_schema SET version = 7")
    with pytest.raises(store.StoreError, match="schema version 7"):
        store.open_reader(url)
    with pytest.raises(store.StoreError):
        store.open_reader(pg.url("no_such_db"))
    assert "***" in store.describe("postgresql://u:secret@/x?host=/tmp")


# -- live: statewall run --flows -----------------------------------------------------------
def test_run_refuses_an_unusable_flow_database(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r").write_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    for bad, what in ((str(tmp_path / "no" / "f.db"), "no such directory"),
                      ("mysql://x", "a file path or a postgresql:// URL")):
        rc = cli_main(["run", "--rules", str(tmp_path / "r"), "--flows", bad,
                       "--no-kernel-setup", "--control", str(tmp_path / "c")])
        assert rc == 2 and what in capsys.readouterr().err


# -- live: real traffic through `statewall run --flows` ------------------------------------
def _ct(control: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statewall", "conntrack",
                           f"--control={control}", *argv], capture_output=True, text=True,
                          timeout=30)


def _side_of(entry: dict[str, Any]) -> tuple[Any, ...]:
    o, r = entry["original"], entry["reply"]
    return (entry["proto"], o["src"], o["dst"], o.get("sport"), o.get("dport"), o.get("id"),
            r["src"], r["dst"], r.get("sport"), r.get("dport"))


def _side_of_row(x: dict[str, Any]) -> tuple[Any, ...]:
    return (x["proto"], x["orig_src"], x["orig_dst"], x["orig_sport"], x["orig_dport"],
            x["icmp_id"], x["reply_src"], x["reply_dst"], x["reply_sport"], x["reply_dport"])


def test_live_flow_records(lab: Any, tmp_path: Path, db: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Real TCP/UDP/ICMP through the firewall: a closed TCP connection ends by ``close``
    after TIME_WAIT (1 s here), ``conntrack -F`` ends the rest as ``deleted`` with the
    tuples and counters ``conntrack -L`` showed, SIGTERM writes everything buffered, and
    a connection still open at the stop (kept in the state file) is no record."""
    from test_live import SEED_RULES, Daemon, TcpServer, _connect, _echo, _ping, \
        _udp_exchange
    from statewall.lab.netns import CLIENT_V4, SERVER_V4
    d = Daemon(lab, tmp_path, "--flows", db, "--queues", "0-1",   # two workers, one db
               "--sysctl", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
               rules=SEED_RULES)
    srv = None
    socks: list[socket.socket] = []
    try:
        d.start()
        port = 8091 if "://" in db else 8090
        srv = TcpServer(lab, port, "echo")
        a = _connect(lab, "client", SERVER_V4, port)
        assert _echo(a, b"a" * 3000) == b"a" * 3000
        a_port = a.getsockname()[1]
        a.shutdown(socket.SHUT_WR)
        assert a.recv(10) == b""                # the server closed too
        a.close()
        b = _connect(lab, "client", SERVER_V4, port)
        socks.append(b)
        assert _echo(b, b"b" * 500) == b"b" * 500
        b_port = b.getsockname()[1]
        assert _udp_exchange(lab, 5353) == b"HELLO"
        assert _ping(lab, "client", SERVER_V4, 2)
        for q in (0, 1):                        # one entry in each worker's table
            r = _ct(f"{d.control}.q{q}", "-I", "-s", "192.0.2.10", "-d", "192.0.2.20", "-p",
                    "udp", "--sport", str(q + 1), "--dport", "9", "-t", "100", "-m", "7")
            assert r.returncode == 0, r.stderr
        time.sleep(1.5)                         # quiet; A's TIME_WAIT (1 s) has expired
        r = _ct(d.control, "-L", "-o", "json")
        assert r.returncode == 0, r.stderr
        listed = [json.loads(x) for x in r.stdout.splitlines()]
        kinds = sorted(e["proto"] for e in listed)
        assert kinds == ["icmp", "tcp", "udp", "udp", "udp"], listed
        assert not any(e["original"].get("sport") == a_port for e in listed)
        assert _ct(d.control, "-F").returncode == 0
        c = _connect(lab, "client", SERVER_V4, port)   # open at the stop: state file
        socks.append(c)
        assert _echo(c, b"c") == b"c"
        c_port = c.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "statewall", "status", "--control",
                            d.control], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        for w in json.loads(r.stdout)["workers"].values():
            assert w["flows"]["lost"] == 0 and w["flows"]["errors"] == 0, w
        assert d.stop() == 0
        log = d.text()
        ends = [x for x in log.splitlines() if "flow records" in x]
        assert len(ends) == 2, log                     # one line per worker
        assert all("lost=0" in x and "unwritten=0" in x for x in ends), log
    finally:
        if d.p is not None:
            d.stop()
        for s in socks:
            s.close()
        if srv is not None:
            try:
                srv.s.shutdown(socket.SHUT_RDWR)   # wakes its accept(): the port is free
            except OSError:
                pass
            srv.close()
    rc = cli_main(["flows", "--db", db, "-o", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    by_port = {x["orig_sport"]: x for x in rows if x["proto"] == "tcp"}
    ra = by_port[a_port]
    assert (ra["orig_src"], ra["orig_dst"], ra["orig_dport"]) == (CLIENT_V4, SERVER_V4, port)
    assert (ra["reply_src"], ra["reply_dst"], ra["reply_sport"], ra["reply_dport"]) == \
        (SERVER_V4, CLIENT_V4, port, a_port)
    assert (ra["state"], ra["ended_by"]) == ("TIME_WAIT", "close")
    assert "ASSURED" in ra["status"]
    assert ra["orig_packets"] >= 5 and ra["reply_packets"] >= 4
    assert ra["orig_bytes"] >= 3000 + 20 * ra["orig_packets"]
    assert ra["reply_bytes"] >= 3000 + 20 * ra["reply_packets"]
    now = time.time()
    assert now - 60 < ra["start_time"] < ra["end_time"] < now
    assert ra["end_time"] - ra["start_time"] >= 1.0          # TIME_WAIT lasted 1 s
    # everything -L showed ended by -F with the same tuples and counters
    deleted = {_side_of_row(x): x for x in rows if x["ended_by"] == "deleted"}
    assert len(deleted) == 5
    for e in listed:
        x = deleted[_side_of(e)]
        assert (x["orig_packets"], x["orig_bytes"], x["reply_packets"], x["reply_bytes"]) \
            == (e["original"]["packets"], e["original"]["bytes"], e["reply"]["packets"],
                e["reply"]["bytes"]), (e, x)
        assert x["state"] == e["state"] and x["mark"] == e["mark"]
        if x["orig_src"] == CLIENT_V4:                       # real traffic
            assert x["orig_packets"] >= 1 and x["reply_packets"] >= 1
    inserted = sorted((x["orig_sport"], x["queue"], x["mark"], x["orig_packets"])
                      for x in rows if x["orig_src"] == "192.0.2.10")
    assert inserted == [(1, 0, 7, 0), (2, 1, 7, 0)]       # both workers wrote to the db
    assert deleted[next(k for k in deleted if k[3] == b_port)]["state"] == "ESTABLISHED"
    icmp_row = next(x for x in deleted.values() if x["proto"] == "icmp")
    assert (icmp_row["icmp_type"], icmp_row["reply_icmp_type"]) == (8, 0)
    assert icmp_row["orig_packets"] == 2 and icmp_row["reply_packets"] == 2
    assert c_port not in by_port                  # still in the table at the stop
    assert len(rows) == 6


def test_record_module_is_sans_io() -> None:
    """record.py runs on the packet path: no clocks, files, threads or databases."""
    from test_boundaries import FORBIDDEN_MODULES, SRC, _imports
    names = _imports(SRC / "flows" / "record.py")
    assert not [n for n in names if n.split(".")[0] in FORBIDDEN_MODULES | {"sqlite3",
                                                                             "psycopg"}]


def test_recorder_at_shutdown_with_and_without_state_file(tmp_path: Path) -> None:
    """A worker's stop: with a state file the live entries are no records (they continue
    after the restart); without one they end as ``shutdown``; entries already dead end as
    ``timeout`` either way; everything reaches the database before close returns."""
    from statewall.flows.live import Recorder
    for keep, want in ((True, ["timeout"]), (False, ["timeout", "shutdown", "shutdown"])):
        db = str(tmp_path / f"keep{keep}.db")
        r = Rec()
        rec = Recorder(db, r.fw.tracker, 5)
        r.send(udp(sport=1))                          # dies at +30 s
        _tcp_session(r, close="none")                 # ESTABLISHED (5 days)
        r.send(udp(sport=2), dt=25.0)
        st = rec.close(r.now + 10.0, keep_table=keep)
        assert st["written"] == len(want) and st["lost"] == 0 and st["db"] == db
        with sqlite3.connect(db) as c:
            got = c.execute("SELECT ended_by, queue FROM flows ORDER BY id").fetchall()
        assert got == [(w, 5) for w in want]
        assert ecache.notifier(r.fw.tracker).ct == [r.fw.tracker.sink]   # Rec's only
        assert rec.listen not in ecache.notifier(r.fw.tracker).ct


def test_writer_survives_a_record_it_cannot_build() -> None:
    fs = FakeStore()
    w = Writer(lambda: fs, batch=3, interval=0.01, log=logging.getLogger("test.flows"))
    w.put(_snap(1))
    w.put(("garbage",))
    w.put(_snap(2))
    st = w.close()
    assert st["written"] == 2 and st["lost"] == 1 and st["errors"] == 1
