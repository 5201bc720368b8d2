"""``statewall run --metrics``: the Prometheus endpoint.

Pure parts: the exposition text (live/metrics.py) parsed back with prometheus_client's own
parser, values and label escaping checked; a worker's snapshot against ``conntrack -C`` /
``-L`` on the same table; the cost of a snapshot of 100,000 entries. The HTTP server
(live/metrics_http.py) in this process against real worker control servers: 404 / 405 /
400, concurrent scrapes, idle and slow clients, a client limit, a worker that never
answers. Live: ``statewall run --queues 0-1 --metrics`` in the lab namespaces with real
traffic (TCP, pings, an INVALID SYN+FIN crafted here), scraped with urllib and compared
with ``statewall conntrack -C/-L`` and ``statewall status``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from statewall.conntrack.core import Tracker
from statewall.conntrack.sysctl import Settings
from statewall.ctl import ops
from statewall.firewall import Firewall
from statewall.lab.netns import CLIENT_V4, FW_CLIENT_V4, FW_SERVER_V4, SERVER_V4, \
    Topology
from statewall.live import metrics as m
from statewall.live.metrics_http import MetricsServer, format_listen, parse_listen
from statewall.packet.checksum import inet_checksum, ones_sum, pseudo_sum
from statewall.packet.decode import decode_ip

from served import Served  # noqa: E402  (tests/served.py)

T = TypeVar("T")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """prometheus_client's parser: family name -> type, and every sample's value."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return types, samples


def val(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


# -- literal packets (no scapy) --------------------------------------------------------------
def ip_tcp(src: str, dst: str, sport: int, dport: int, flags: int, seq: int = 1000,
           ack: int = 0) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    c = ones_sum(tcp) + pseudo_sum(s, d, 6, len(tcp))
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    tcp = tcp[:16] + struct.pack("!H", ~c & 0xFFFF) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, s, d)
    return ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:] + tcp


def ip_udp(src: str, dst: str, sport: int, dport: int) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    udp = struct.pack("!HHHH", sport, dport, 8, 0)
    c = ones_sum(udp) + pseudo_sum(s, d, 17, len(udp))
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    udp = udp[:6] + struct.pack("!H", ~c & 0xFFFF)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0x4000, 64, 17, 0, s, d)
    return ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:] + udp


SYN, SYNACK, ACK, SYNFIN = 0x02, 0x12, 0x10, 0x03


# -- the exposition text ------------------------------------------------------------------
def _snap(queue: int, entries: int, **over: Any) -> dict[str, Any]:
    lat = [0] * (len(m.BOUNDS_NS) + 1)
    lat[2] = 3
    lat[-1] = 1
    s: dict[str, Any] = {
        "queue": queue, "entries": entries, "limit": 1000,
        "by_state": [["tcp", "ESTABLISHED", entries - 1], ["udp", "", 1]],
        "expectations": 1,
        "stats": {"found": 0, "invalid": 5, "insert": 0, "insert_failed": 1, "drop": 2,
                  "early_drop": 3, "error": 0, "search_restart": 0, "clash_resolve": 4,
                  "chaintoolong": 0},
        "invalid": {"bad \"flags\" \\ here\nnext": 2, "short": 3},
        "counters": {"accepted": 10, "dropped": 4, "icmp_passed_on": 1, "undecodable": 1,
                     "errors": 0, "held": 0, "reloads": 2, "reloads_refused": 1,
                     "reject_sent": 1},
        "queue_overflow": 7, "netlink_overrun": 1, "queue_waiting": 0,
        "latency": {"counts": lat, "sum_ns": 150_000},
        "snapshot_seconds": 0.001,
    }
    s.update(over)
    return s


def test_render_parses_and_sums() -> None:
    text = m.render([(1, _snap(1, 5)), (0, _snap(0, 3)), (2, None)], 0.25)
    types, s = parse(text)
    assert text.endswith("\n")
    # node_exporter's names and types (gauges, also the conntrack -S counters)
    for name in ("node_nf_conntrack_entries", "node_nf_conntrack_entries_limit",
                 *(f"node_nf_conntrack_stat_{k}" for k, _, _ in m.NODE_STATS)):
        assert types[name] == "gauge", name
    assert val(s, "node_nf_conntrack_entries") == 8
    assert val(s, "node_nf_conntrack_entries_limit") == 2000
    assert val(s, "node_nf_conntrack_stat_invalid") == 10
    assert val(s, "node_nf_conntrack_stat_early_drop") == 6
    assert val(s, "node_nf_conntrack_stat_ignore") == 0
    assert val(s, "statewall_conntrack_stat", counter="clash_resolve") == 8
    assert val(s, "statewall_conntrack_entries", proto="tcp", state="ESTABLISHED") == 6
    assert val(s, "statewall_conntrack_entries", proto="udp") == 2
    assert val(s, "statewall_conntrack_expectations") == 2
    # label escaping survives the round trip
    assert types["statewall_conntrack_invalid"] == "counter"
    assert val(s, "statewall_conntrack_invalid_total",
               reason="bad \"flags\" \\ here\nnext") == 4
    assert '\\"flags\\" \\\\ here\\nnext' in text
    assert by_label(s, "statewall_packets_total", "verdict") == \
        {"accept": 20, "drop": 8, "queue": 2}
    assert val(s, "statewall_packets_dropped_total", reason="undecodable") == 2
    assert val(s, "statewall_worker_events_total", event="reject_sent") == 2
    assert by_label(s, "statewall_queue_overflow_total", "queue") == {"0": 7, "1": 7}
    assert val(s, "statewall_reloads_total", queue="1", result="refused") == 1
    # the histogram: cumulative buckets, +Inf == count, sum in seconds
    assert types["statewall_decision_seconds"] == "histogram"
    b = by_label(s, "statewall_decision_seconds_bucket", "le")
    assert b["5e-06"] == 0 and b["2e-05"] == 6 and b["0.05"] == 6 and b["+Inf"] == 8
    assert val(s, "statewall_decision_seconds_count") == 8
    assert val(s, "statewall_decision_seconds_sum") == pytest.approx(300e-6)
    assert by_label(s, "statewall_worker_up", "queue") == {"0": 1, "1": 1, "2": 0}
    assert val(s, "statewall_scrape_duration_seconds") == 0.25
    # every family has HELP and TYPE, in that order, once
    lines = text.splitlines()
    helps = [x.split()[2] for x in lines if x.startswith("# HELP")]
    assert helps == [x.split()[2] for x in lines if x.startswith("# TYPE")]
    assert len(helps) == len(set(helps)) == len(types)


def test_render_all_down_and_garbage() -> None:
    """No worker answered, or one answered nonsense: still valid text, zeros."""
    bad = {"entries": "many", "by_state": [["tcp"], 5], "invalid": ["x"],
           "latency": {"counts": [1, 2]}, "counters": None}
    types, s = parse(m.render([(0, None), (1, bad)]))
    assert val(s, "node_nf_conntrack_entries") == 0
    assert val(s, "statewall_decision_seconds_count") == 0
    assert by_label(s, "statewall_worker_up", "queue") == {"0": 0, "1": 1}


def test_escaping_and_values() -> None:
    assert m.escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert m.escape_help("x\\y\nz") == "x\\\\y\\nz"
    assert [m.fmt_value(v) for v in (3, 2.0, 0.5, 5e-06, float("inf"))] == \
        ["3", "2", "0.5", "5e-06", "+Inf"]


def test_invalid_reasons_capped() -> None:
    tr = Tracker()
    tr.invalid_reasons.update({f"reason {i}": i + 1 for i in range(m.MAX_REASONS + 50)})
    snap = m.snapshot(tr, 0.0, 0, {}, [0] * (len(m.BOUNDS_NS) + 1), 0)
    assert len(snap["invalid"]) == m.MAX_REASONS
    assert sum(snap["invalid"].values()) == sum(tr.invalid_reasons.values())


# -- a worker's snapshot against the conntrack CLI -------------------------------------------
C, S = "198.51.100.2", "203.0.113.2"


def _handshake(fw: Firewall, c: str, s: str, sport: int, now: float, full: bool) -> None:
    fw.process(decode_ip(ip_tcp(c, s, sport, 80, SYN, 1000)), now)
    if full:
        fw.process(decode_ip(ip_tcp(s, c, 80, sport, SYNACK, 5000, 1001)), now)
        fw.process(decode_ip(ip_tcp(c, s, sport, 80, ACK, 1001, 5001)), now)


def _cli_counts(tr: Tracker, now: float) -> tuple[int, dict[tuple[str, str], int]]:
    """What ``conntrack -C`` and ``-L`` say: the count, and entries per (proto, state)."""
    count = int(ops.run(tr, ["-C"], now).out)
    per: dict[tuple[str, str], int] = {}
    for line in ops.run(tr, ["-L"], now).out.splitlines():
        f = line.split()
        k = (f[0], f[3] if f[0] == "tcp" else "")
        per[k] = per.get(k, 0) + 1
    return count, per


def test_snapshot_matches_conntrack_cli() -> None:
    fw = Firewall(Settings())
    now = 1000.0
    for i in range(30):
        _handshake(fw, C, S, 2000 + i, now, full=i % 3 != 0)
    for i in range(7):
        fw.process(decode_ip(ip_udp(C, S, 3000 + i, 53)), now)
    fw.process(decode_ip(ip_tcp(C, S, 4000, 80, SYNFIN)), now)     # INVALID
    tr = fw.tracker
    snap = m.snapshot(tr, now + 1, 3, {"counters": {"accepted": 5}}, [0] * 13, 0)
    count, per = _cli_counts(tr, now + 1)
    assert snap["entries"] == count == 37
    assert {(p, st): n for p, st, n in snap["by_state"]} == per == {
        ("tcp", "ESTABLISHED"): 20, ("tcp", "SYN_SENT"): 10, ("udp", ""): 7}
    assert snap["limit"] == tr.settings.nf_conntrack_max
    assert snap["stats"]["invalid"] == 1 and sum(snap["invalid"].values()) == 1
    assert snap["counters"] == {"accepted": 5} and snap["queue"] == 3
    json.dumps(snap)                                   # it crosses the control socket
    # an entry past its timeout, not yet reaped: neither -C nor the snapshot count it
    later = now + 40                                    # UDP unreplied: 30 s
    assert m.snapshot(tr, later, 0, {}, [0] * 13, 0)["entries"] == \
        _cli_counts(tr, later)[0] == 30


def test_snapshot_cost_100k_entries() -> None:
    """One pass over a table of 100,000 entries: measured, and bounded generously (the
    worker's packet path waits for it)."""
    fw = Firewall(Settings("linux", [("nf_conntrack_max", "200000")]))
    now = 1000.0
    for i in range(100_000):
        c = f"198.51.{(i >> 8) & 0xFF}.{i & 0xFF}"
        _handshake(fw, c, f"203.0.113.{i % 250 + 1}", 1024 + i % 60000, now, full=i % 2 == 1)
    tr = fw.tracker
    assert len(tr.table) == 100_000
    best = min(_timed(lambda: m.snapshot(tr, now + 1, 0, {}, [0] * 13, 0)) for _ in range(3))
    snap = m.snapshot(tr, now + 1, 0, {}, [0] * 13, 0)
    print(f"snapshot of 100,000 entries: {best * 1000:.1f} ms")
    assert snap["entries"] == 100_000
    assert {(p, st): n for p, st, n in snap["by_state"]} == {
        ("tcp", "ESTABLISHED"): 50_000, ("tcp", "SYN_SENT"): 50_000}
    assert best < 0.5


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- the listen address ----------------------------------------------------------------------
def test_parse_listen() -> None:
    assert parse_listen("9464") == ("127.0.0.1", 9464)
    assert parse_listen(":9464") == ("127.0.0.1", 9464)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("localhost:1") == ("127.0.0.1", 1)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    assert parse_listen("[2001:db8::1]:65535") == ("2001:db8::1", 65535)
    assert format_listen("::1", 5) == "[::1]:5" and format_listen("127.0.0.1", 5) == \
        "127.0.0.1:5"
    for bad, why in (("", "empty"), ("0", "bad port"), ("70000", "bad port"),
                     ("::1:9464", "[ADDR]:PORT"), ("[::1]9464", "[ADDR]:PORT"),
                     ("example.com:80", "not an IP address"), ("1.2.3.4:", "bad port"),
                     ("1.2.3.4:x", "bad port"), ("[nope]:80", "not an IP address")):
        with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
            parse_listen(bad)


def test_cli_refuses_bad_metrics_option(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    from statewall.cli.main import main
    rules = tmp_path / "r"
    rules.write_text("*filter\nCOMMIT\n")
    assert main(["run", "--rules", str(rules), "--metrics", "host:1"]) == 2
    assert "'host' is not an IP address" in capsys.readouterr().err
    assert main(["run", "--rules", str(rules), "--metrics", "9464", "--control", ""]) == 2
    assert "--metrics needs the control socket" in capsys.readouterr().err


# -- the HTTP server, in this process -------------------------------------------------------
class FakeWorker(Served):
    """A worker's control server (the real CtlServer) with a table and the ``metrics``
    handler, served from a thread."""

    def __init__(self, path: str, queue: int, entries: int, lat: int,
                 reasons: int = 0) -> None:
        tr = Tracker()
        for i in range(reasons):                 # long INVALID reasons: a big response
            tr.invalid_reasons[f"q{queue} reason {i} " + "x" * 20_000] = 1
        for i in range(entries):
            ops.run(tr, ["-I", "-s", "192.0.2.1", "-d", "192.0.2.2", "-p", "udp", "--sport",
                         str(1000 + i), "--dport", "53", "-t", "100"], 1.0)
        lat_counts = [0] * (len(m.BOUNDS_NS) + 1)
        lat_counts[3] = lat
        super().__init__(path, tr, lambda: 2.0, handlers={"metrics": lambda line, now: {
            "ok": True, "metrics": m.snapshot(tr, now, queue, {"counters": {"accepted": lat}},
                                              lat_counts, lat * 30_000)}})


class Served:
    """A MetricsServer driven by a thread that plays the supervisor's select loop."""

    def __init__(self, targets: list[tuple[int, str | None]], **kw: Any) -> None:
        self.srv = MetricsServer("127.0.0.1", 0, lambda: targets, **kw)
        self.port = int(self.srv.address.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.stop = False
        self.loops = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            select.select([self.srv.fileno()], [], [], self.srv.wait(0.05))
            self.srv.poll()
            self.loops += 1

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.srv.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[tuple[int, str | None]]]:
    w0 = FakeWorker(str(tmp_path / "c.q0"), 0, 3, 5)
    w1 = FakeWorker(str(tmp_path / "c.q1"), 1, 4, 7)
    try:
        yield [(0, w0.srv.path), (1, w1.srv.path)]
    finally:
        w0.close()
        w1.close()


def _get(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, dict[str, str],
                                                                          str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_http_scrape_sums_workers(workers: list[tuple[int, str | None]]) -> None:
    srv = Served(workers + [(2, None)])
    try:
        code, headers, body = _get(srv.url + "/metrics")
        assert code == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert int(headers["Content-Length"]) == len(body.encode())
        _, s = parse(body)
        assert val(s, "node_nf_conntrack_entries") == 7
        assert val(s, "statewall_conntrack_entries", proto="udp") == 7
        assert val(s, "statewall_decision_seconds_count") == 12
        assert val(s, "statewall_packets_total", verdict="accept") == 12
        assert by_label(s, "statewall_worker_up", "queue") == {"0": 1, "1": 1, "2": 0}
        assert _get(srv.url + "/metrics?x=1")[0] == 200
        assert _get(srv.url + "/")[0] == 404
        assert _get(srv.url + "/metricsx")[0] == 404
        code, headers, _ = _get(srv.url + "/metrics", "POST")
        assert code == 405 and headers["Allow"] == "GET"
        assert _get(srv.url + "/metrics", "DELETE")[0] == 405
        assert _raw(srv.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert _raw(srv.port, b"GET /metrics HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert _raw(srv.port, b"GET /metrics HTTP/1.0\n\n").startswith(b"HTTP/1.1 200 ")
        assert _raw(srv.port, b"GET /" + b"x" * 9000).startswith(b"HTTP/1.1 431 ")
    finally:
        srv.close()


def test_http_ipv6_loopback(workers: list[tuple[int, str | None]]) -> None:
    host, port = parse_listen("[::1]:1")
    srv = MetricsServer(host, 0, lambda: workers)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            select.select([srv.fileno()], [], [], srv.wait(0.05))
            srv.poll()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        assert srv.address.startswith("[::1]:")
        code, _, body = _get(f"http://{srv.address}/metrics")
        assert code == 200 and val(parse(body)[1], "node_nf_conntrack_entries") == 7
    finally:
        stop.set()
        t.join(5)
        srv.close()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_http_concurrent_and_slow_clients(workers: list[tuple[int, str | None]]) -> None:
    """Idle connections, a half-sent request and a client that never reads do not hold up
    twenty concurrent scrapes; the idle ones are closed at their deadline."""
    srv = Served(workers, client_timeout=3.0)
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(5)]
    partial = socket.create_connection(("127.0.0.1", srv.port))
    partial.sendall(b"GET /metr")
    deaf = socket.socket()
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    deaf.connect(("127.0.0.1", srv.port))
    deaf.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        results: list[tuple[int, float]] = []
        lock = threading.Lock()

        def scrape() -> None:
            code, _, body = _get(srv.url + "/metrics")
            with lock:
                results.append((code, val(parse(body)[1], "node_nf_conntrack_entries")))
        t0 = time.monotonic()
        threads = [threading.Thread(target=scrape) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        took = time.monotonic() - t0
        assert results == [(200, 7.0)] * 20
        assert took < 2.5, took                # not one client timeout (3 s)
        # the idle clients are closed at their deadline
        for s in idle + [partial]:
            s.settimeout(5)
            assert s.recv(100) == b""
        deadline = time.monotonic() + 3
        while srv.srv.clients:                 # the deaf one too, by its deadline
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        for s in idle + [partial, deaf]:
            s.close()
        srv.close()


def test_http_slow_reader_does_not_block(tmp_path: Path) -> None:
    """A response far bigger than the socket buffers (tcp_wmem's 4 MiB at most), to a
    client that does not read: the server keeps the rest and goes on; other scrapes are
    served meanwhile; the stuck one is closed at its deadline."""
    big = [FakeWorker(str(tmp_path / f"big.q{q}"), q, 1, 1, reasons=150) for q in (0, 1)]
    srv = Served([(0, big[0].srv.path), (1, big[1].srv.path)], client_timeout=5.0)
    deaf = socket.socket()
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    deaf.connect(("127.0.0.1", srv.port))
    deaf.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        deadline = time.monotonic() + 5
        while not any(c.state == "writing" and c.out for c in srv.srv.clients.values()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        t0 = time.monotonic()
        for _ in range(3):
            code, _, body = _get(srv.url + "/metrics")
            assert code == 200 and len(body) > 6_000_000
        assert time.monotonic() - t0 < 4.0         # not the stuck client's deadline (5 s)
        # (the server thread may not have counted its last send yet: the client already
        # has the bytes; give it a moment)
        deadline = time.monotonic() + 2
        while len(srv.srv.clients) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        stuck = list(srv.srv.clients.values())
        assert len(stuck) == 1 and stuck[0].state == "writing"
        assert stuck[0].sock.getpeername() == deaf.getsockname()
        assert len(stuck[0].out) > 100_000
        deadline = time.monotonic() + 7
        while srv.srv.clients:                     # dropped at its deadline
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        deaf.close()
        srv.close()
        for b in big:
            b.close()


def test_http_survives_a_fork_closing_its_copy(workers: list[tuple[int, str | None]]) -> None:
    """The supervisor forks workers while clients are connected; the child closes its
    copies (close(forked=True)) without taking them out of the shared epoll set."""
    srv = Served(workers)
    c = socket.create_connection(("127.0.0.1", srv.port))
    try:
        deadline = time.monotonic() + 5
        while not srv.srv.clients:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pid = os.fork()
        if pid == 0:
            try:
                srv.srv.close(forked=True)
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        c.settimeout(5)
        c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        out = b""
        while chunk := c.recv(65536):
            out += chunk
        assert out.startswith(b"HTTP/1.1 200 OK") and b"node_nf_conntrack_entries 7" in out
        assert _get(srv.url + "/metrics")[0] == 200
    finally:
        c.close()
        srv.close()


def test_http_client_limit(workers: list[tuple[int, str | None]]) -> None:
    srv = Served(workers, max_clients=3, client_timeout=1.0)
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", srv.port))
        extra.settimeout(0.8)
        assert extra.recv(10) == b""             # closed at once: over the limit
        extra.close()
        time.sleep(1.2)                          # the idle ones expire
        assert _get(srv.url + "/metrics")[0] == 200
    finally:
        for s in idle:
            s.close()
        srv.close()


def test_http_worker_that_does_not_answer(workers: list[tuple[int, str | None]],
                                          tmp_path: Path) -> None:
    """A worker whose socket accepts but never answers (busy, stopped) is reported down
    after the worker timeout; the others' numbers are there."""
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(tmp_path / "c.q7"))
    hung.listen(8)
    srv = Served(workers + [(7, str(tmp_path / "c.q7")), (8, str(tmp_path / "nothing"))],
                 worker_timeout=0.5)
    try:
        t0 = time.monotonic()
        code, _, body = _get(srv.url + "/metrics")
        took = time.monotonic() - t0
        assert code == 200 and 0.4 < took < 2.0, took
        _, s = parse(body)
        assert by_label(s, "statewall_worker_up", "queue") == \
            {"0": 1, "1": 1, "7": 0, "8": 0}
        assert val(s, "node_nf_conntrack_entries") == 7
        assert val(s, "statewall_scrape_duration_seconds") >= 0.5
    finally:
        srv.close()
        hung.close()


# -- live: statewall run --metrics in the lab -------------------------------------------------
PORT = 9464
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state INVALID -j DROP
-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp ! --syn -m state --state NEW -j DROP
-A FORWARD -i c0 -o s0 -m state --state NEW -j ACCEPT
COMMIT
"""


_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that entered network namespace ``ns`` (urllib's sockets are
    opened there)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, 0x40000000) != 0:            # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            box["v"] = fn()
        except BaseException as e:                # handed to the caller
            box["e"] = e
    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(30)
    if "e" in box:
        raise box["e"]
    return box["v"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def metrics_daemon(lab: Topology, tmp: Path, *extra: str) -> Iterator[str]:
    """``statewall run --queues 0-1 --metrics 9464`` in fw; the kernel rules are the ones
    --print-kernel-setup prints plus "loopback is not queued", so the scrapes (over fw's
    loopback) are not themselves in the numbers they check. Yields the control socket."""
    (tmp / "rules").write_text(RULES)
    ctl = str(tmp / "ctl")
    log = open(tmp / "log", "wb")
    argv = [sys.executable, "-m", "statewall", "run", "--rules", str(tmp / "rules"),
            "--control", ctl, "--queues", "0-1", "--no-kernel-setup", "--no-ipv6",
            "--stats-interval", "0", "--checkpoint", "0", "--metrics", str(PORT), *extra]
    p = lab.popen("fw", argv, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while b"supervisor: running" not in (tmp / "log").read_bytes():
            assert p.poll() is None, (tmp / "log").read_text()
            assert time.monotonic() < deadline, (tmp / "log").read_text()
            time.sleep(0.05)
        text = subprocess.run([sys.executable, "-m", "statewall", "run",
                               "--print-kernel-setup", "--no-ipv6", "--queues", "0-1"],
                              capture_output=True, text=True, check=True).stdout
        body = text.split("<<'EOF'\n", 1)[1].split("EOF\n", 1)[0]
        body = body.replace("-A statewall-pre -j CT --notrack\n",
                            "-A statewall-pre -i lo -j ACCEPT\n"
                            "-A statewall-pre -j CT --notrack\n")
        body = body.replace("-A statewall-out -j CT --notrack\n",
                            "-A statewall-out -o lo -j ACCEPT\n"
                            "-A statewall-out -j CT --notrack\n")
        assert body.count("-j ACCEPT\n") >= 3
        lab.run("fw", ["iptables-restore", "--noflush"], input=body)
        yield ctl
    finally:
        lab.stop(p, signal.SIGTERM, timeout=15.0)
        log.close()
        lab.run("fw", ["iptables", "-t", "raw", "-F"], check=False)
        lab.run("fw", ["iptables", "-t", "raw", "-X"], check=False)


def scrape(lab: Topology, path: str = "/metrics") -> tuple[dict[str, str], Samples, str]:
    code, headers, body = in_netns(lab.ns["fw"],
                                   lambda: _get(f"http://127.0.0.1:{PORT}{path}"))
    assert code == 200, (code, body)
    assert headers["Content-Type"] == m.CONTENT_TYPE
    types, s = parse(body)
    return types, s, body


def conntrack(ctl: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "statewall", "conntrack", *args],
                       env=dict(os.environ, STATEWALL_CONTROL=ctl), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def status(ctl: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "statewall", "status", "--control", ctl],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert isinstance(st, dict)
    return st


def _per_state(listing: str) -> dict[tuple[str, str], int]:
    per: dict[tuple[str, str], int] = {}
    for line in listing.splitlines():
        f = line.split()
        k = (f[0], f[3] if f[0] == "tcp" else "")
        per[k] = per.get(k, 0) + 1
    return per


def _entries(s: Samples) -> dict[tuple[str, str], int]:
    return {(dict(k[1])["proto"], dict(k[1]).get("state", "")): int(v)
            for k, v in s.items() if k[0] == "statewall_conntrack_entries"}


def _ping(lab: Topology, dst: str, src: str | None = None) -> bool:
    argv = ["ping", "-c", "2", "-i", "0.2", "-W", "1", dst] + (["-I", src] if src else [])
    return lab.run("client", argv, check=False).returncode == 0


def test_live_scrape_matches_conntrack_cli(lab: Topology, tmp_path: Path) -> None:
    with metrics_daemon(lab, tmp_path) as ctl:
        types, s0, body = scrape(lab)
        assert by_label(s0, "statewall_worker_up", "queue") == {"0": 1, "1": 1}
        assert in_netns(lab.ns["fw"], lambda: _get(f"http://127.0.0.1:{PORT}/x"))[0] == 404
        invalid0 = val(s0, "node_nf_conntrack_stat_invalid")
        reasons0 = by_label(s0, "statewall_conntrack_invalid_total", "reason")
        # real traffic: a TCP connection left open, another closed, pings to three
        # addresses, a UDP datagram nobody answers
        srv = lab.socket("server", socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((SERVER_V4, 7100))
        srv.listen(4)
        conns = []
        for _ in range(2):
            c = lab.socket("client", socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(3)
            c.connect((SERVER_V4, 7100))
            a, _ = srv.accept()
            c.sendall(b"metrics")
            assert a.recv(100) == b"metrics"
            conns.append((c, a))
        conns[1][0].close()
        conns[1][1].close()
        for dst in (SERVER_V4, FW_CLIENT_V4, FW_SERVER_V4):
            assert _ping(lab, dst)
        # the kernel spreads flows over the two queues by address pair: more client
        # addresses until both workers have decided packets
        extra = 10
        while min(int(w["counters"]["packets"]) for w in status(ctl)["workers"].values()) \
                == 0:
            assert extra < 30, status(ctl)
            addr = f"198.51.100.{extra}"
            lab.run("client", ["ip", "addr", "add", f"{addr}/24", "dev", "eth0"])
            assert _ping(lab, SERVER_V4, addr)
            extra += 1
        u = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", (SERVER_V4, 7101))
        u.close()
        # INVALID: a SYN+FIN, crafted here, sent from the client
        rs = lab.socket("client", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        rs.sendto(ip_tcp(CLIENT_V4, SERVER_V4, 41000, 80, SYNFIN), (SERVER_V4, 0))
        rs.close()
        time.sleep(0.5)                           # FINs settle, the raw packet is decided
        for attempt in range(5):
            _, s1, body = scrape(lab)
            count = int(conntrack(ctl, "-C"))
            listing = conntrack(ctl, "-L")
            st = status(ctl)
            _, s2, _ = scrape(lab)
            if _entries(s1) == _entries(s2) and \
                    val(s1, "node_nf_conntrack_entries") == val(s2, "node_nf_conntrack_entries"):
                break
            time.sleep(0.3)                       # something moved in between: again
        else:
            pytest.fail("the table kept changing")
        print(body)
        # node_exporter's entries == conntrack -C; per state == conntrack -L
        assert val(s1, "node_nf_conntrack_entries") == count >= 6
        assert _entries(s1) == _per_state(listing)
        assert _entries(s1)[("tcp", "ESTABLISHED")] >= 1
        assert _entries(s1)[("icmp", "")] >= 3
        # INVALID counted, with its reason
        assert val(s1, "node_nf_conntrack_stat_invalid") >= invalid0 + 1
        reasons = by_label(s1, "statewall_conntrack_invalid_total", "reason")
        assert sum(reasons.values()) >= sum(reasons0.values()) + 1
        # latency: one observation per packet statewall decided (the rest were dropped
        # undecoded, errors or ICMP errors passed on to the other queue)
        verdict = by_label(s1, "statewall_packets_total", "verdict")
        dropped = by_label(s1, "statewall_packets_dropped_total", "reason")
        decided = verdict["accept"] + verdict["drop"] - dropped["undecodable"] - \
            dropped["error"]
        assert val(s1, "statewall_decision_seconds_count") == decided > 10
        b = by_label(s1, "statewall_decision_seconds_bucket", "le")
        assert b["+Inf"] == decided and 0 < val(s1, "statewall_decision_seconds_sum") < decided
        # two workers: the sums of what each worker says
        ws = list(st["workers"].values())
        assert len(ws) == 2 and all(w["counters"]["packets"] > 0 for w in ws)
        assert verdict["accept"] == sum(w["counters"]["accepted"] for w in ws)
        assert verdict["drop"] == sum(w["counters"]["dropped"] for w in ws)
        assert val(s1, "node_nf_conntrack_stat_invalid") == \
            sum(w["conntrack"]["invalid"] for w in ws)
        assert val(s1, "node_nf_conntrack_entries_limit") == \
            2 * Settings().nf_conntrack_max
        assert by_label(s1, "statewall_worker_up", "queue") == {"0": 1, "1": 1}
        for c, a in conns[:1]:
            c.close()
            a.close()
        srv.close()
        # a stopped worker: reported down within the timeout, the scrape still answers
        pid = int(ws[0]["pid"])
        q = next(k for k, w in st["workers"].items() if w["pid"] == pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            _, s3, _ = scrape(lab)
            assert time.monotonic() - t0 < 5
            assert val(s3, "statewall_worker_up", queue=q) == 0
            assert val(s3, "statewall_worker_up", queue=str(1 - int(q))) == 1
        finally:
            os.kill(pid, signal.SIGCONT)
        _, s4, _ = scrape(lab)
        assert by_label(s4, "statewall_worker_up", "queue") == {"0": 1, "1": 1}
