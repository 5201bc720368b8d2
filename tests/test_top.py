"""``statewall top``: the model (rows, rates, sorting, filters, totals, highlight), the
keys, the screen text, the ``top`` request word and its fallback, the command line, and a
live run in a real terminal: tmux drives ``statewall top`` against a ``statewall run``
firewalling real traffic between network namespaces (client - fw - server).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from statewall.conntrack.core import Tracker
from statewall.ctl import ops

from served import Served  # noqa: E402  (tests/served.py)
from statewall.top import model, render, snapshot
from statewall.top.fetch import FetchError, fetch
from statewall.top.model import (CLOSING, COLUMNS, NEW, Row, Snapshot, filter_rows, sort_rows,
                                 totals, update)
from statewall.top.view import QUIT, REDRAW, REFRESH, View

STATEWALL = str(Path(sys.executable).with_name("statewall"))
T0 = 1000.0


def R(id: int, src: str = "198.51.100.2", sport: int | None = 40000,
      dst: str = "203.0.113.2", dport: int | None = 80, proto: int = 6,
      state: str = "ESTABLISHED", ttl: int = 300, packets: int = 0, bytes: int = 0) -> Row:
    return Row(id, 6 if ":" in src else 4, proto, src, dst, sport, dport, state, ttl, 6,
               packets, bytes, raw=(sport or 0, dport or 0))


def ids(rows: list[Row]) -> list[int]:
    return [r.id for r in rows]


# -- the model -------------------------------------------------------------------------------
def test_sort_each_column() -> None:
    rows = [
        R(1, src="198.51.100.10", sport=1, dst="203.0.113.9", dport=22, proto=17,
          state="REPLIED", ttl=30, packets=5, bytes=900),
        R(2, src="198.51.100.9", sport=2, dst="203.0.113.10", dport=80, proto=6,
          state="TIME_WAIT", ttl=100, packets=50, bytes=100),
        R(3, src="2001:db8:1::2", sport=3, dst="2001:db8:2::2", dport=443, proto=1,
          state="UNREPLIED", ttl=10, packets=1, bytes=50000),
        R(4, src="198.51.100.9", sport=1, dst="203.0.113.10", dport=8080, proto=6,
          state="ESTABLISHED", ttl=431999, packets=3, bytes=5000),
    ]
    for r, rate in zip(rows, (10.0, None, 3000.0, 0.5)):
        r.rate = rate
    expect = {
        "src": [4, 2, 1, 3],          # numerically (.9 before .10), then port; IPv6 last
        "dst": [1, 2, 4, 3],
        "proto": [3, 4, 2, 1],        # icmp, tcp, tcp, udp (ties: source order)
        "state": [4, 1, 2, 3],        # ESTABLISHED REPLIED TIME_WAIT UNREPLIED
        "ttl": [3, 1, 2, 4],
        "packets": [3, 4, 1, 2],
        "bytes": [2, 1, 4, 3],
        "rate": [2, 4, 1, 3],         # unknown rate first
    }
    assert set(expect) == set(COLUMNS)
    for col, want in expect.items():
        assert ids(sort_rows(rows, col)) == want, col
        assert ids(sort_rows(rows, col, reverse=True)) == want[::-1], col
    with pytest.raises(ValueError):
        sort_rows(rows, "nope")
    assert model.next_column("src") == "dst" and model.next_column("rate") == "src"
    assert model.next_column("src", -1) == "rate"


def test_rates_between_snapshots_and_highlight() -> None:
    a1 = R(1, packets=10, bytes=1000)
    b1 = R(2, sport=40001, state="FIN_WAIT", packets=4, bytes=400)
    first = update(None, Snapshot(T0, [a1, b1], 2))
    assert a1.rate is None and a1.prate is None          # one snapshot: no rates yet
    assert a1.marks == 0 and b1.marks == CLOSING          # nothing NEW on the first screen
    assert totals(first.rows, 2).rate is None
    a2 = R(1, packets=30, bytes=5000)                     # +4000 bytes, +20 packets in 2 s
    b2 = R(2, sport=40001, state="TIME_WAIT", packets=4, bytes=400)
    c2 = R(3, sport=40002, state="SYN_SENT", packets=1, bytes=60)        # new in the interval
    u2 = R(4, proto=17, dport=53, state="UNREPLIED", packets=1, bytes=100)
    cur = update(first, Snapshot(T0 + 2, [a2, b2, c2, u2], 4))
    assert (a2.rate, a2.prate) == (2000.0, 10.0)
    assert (b2.rate, b2.marks) == (0.0, CLOSING)
    assert (c2.rate, c2.prate, c2.marks) == (30.0, 0.5, NEW)
    assert u2.marks == NEW                                # UDP never "closing"
    t = totals(cur.rows, 10)
    assert t.rate == 2000 + 0 + 30 + 50 and t.prate == 10 + 0 + 0.5 + 0.5
    assert (t.entries, t.filtered, t.new, t.closing) == (4, 6, 2, 1)
    assert t.by_proto == {"tcp": 3, "udp": 1, "icmp": 0, "other": 0}
    assert t.tcp_states == {"ESTABLISHED": 1, "SYN_SENT": 1, "TIME_WAIT": 1}
    # the same tuple with another id is another entry (re-created): NEW again
    a3 = R(99, packets=1, bytes=60)
    update(cur, Snapshot(T0 + 3, [a3], 1))
    assert a3.marks == NEW and a3.rate == 60.0
    # counters that went down (a worker restarted from its state file): 0, not negative
    a4 = R(99, packets=0, bytes=0)
    update(Snapshot(T0 + 3, [a3], 1), Snapshot(T0 + 4, [a4], 1))
    assert a4.rate == 0.0 and a4.marks == 0
    for st in ("FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE"):
        assert model.classify(R(1, state=st), False) == CLOSING
    for st in ("SYN_SENT", "SYN_RECV", "ESTABLISHED"):
        assert model.classify(R(1, state=st), True) == NEW
    assert model.classify(R(1, proto=132, state="CLOSE"), False) == 0


def test_filter_terms() -> None:
    rows = [R(1, dport=22), R(2, dport=80, state="TIME_WAIT"),
            R(3, proto=17, dport=53, state="REPLIED", dst="192.0.2.53"),
            R(4, proto=1, sport=None, dport=None, state="UNREPLIED"),
            R(5, src="2001:db8:1::2", dst="2001:db8:2::2", dport=443)]
    assert ids(filter_rows(rows, "")) == [1, 2, 3, 4, 5]
    assert ids(filter_rows(rows, "udp")) == [3]
    assert ids(filter_rows(rows, ":22")) == [1]
    assert ids(filter_rows(rows, "Time_Wait")) == [2]
    assert ids(filter_rows(rows, "tcp !established")) == [2]
    assert ids(filter_rows(rows, "203.0.113.2 tcp")) == [1, 2]
    assert ids(filter_rows(rows, "[2001:db8:2::2]:443")) == [5]
    assert ids(filter_rows(rows, "icmp")) == [4]
    assert ids(filter_rows(rows, "nothing-like-this")) == []


def _tracker(now: float) -> Tracker:
    tr = Tracker()
    for a in (["-s", "198.51.100.2", "-d", "203.0.113.2", "-p", "tcp", "--sport", "40000",
               "--dport", "80", "--state", "ESTABLISHED", "-t", "300", "-u", "SEEN_REPLY,ASSURED"],
              ["-s", "198.51.100.3", "-d", "203.0.113.2", "-p", "tcp", "--sport", "40001",
               "--dport", "22", "--state", "TIME_WAIT", "-t", "100", "-u", "SEEN_REPLY"],
              ["-s", "198.51.100.2", "-d", "203.0.113.9", "-p", "udp", "--sport", "5353",
               "--dport", "53", "-t", "30"],
              ["-s", "2001:db8:1::2", "-d", "2001:db8:2::2", "-p", "tcp", "--sport", "50000",
               "--dport", "443", "--state", "SYN_SENT", "-t", "120"],
              ["-s", "198.51.100.2", "-d", "203.0.113.2", "-p", "icmp", "--icmp-type", "8",
               "--icmp-code", "0", "--icmp-id", "7", "-t", "30"]):
        r = ops.run(tr, ["-I", *a], now)
        assert r.rc == 0, r.err
    for ct in tr.entries(now):
        ct.acct[:] = [3, 300, 2, 200]
    return tr


def test_compact_rows_equal_the_json_rows() -> None:
    """The ``top`` word and ``conntrack -L -o json`` give the same rows."""
    tr = _tracker(T0)
    reply = snapshot.handle(tr, "top " + json.dumps({"argv": []}), T0)
    assert reply["ok"] and reply["fields"] == list(model.FIELDS) and reply["total"] == 5
    compact = sorted((model.row_from_compact(v) for v in reply["rows"]), key=lambda r: r.id)
    out = ops.run(tr, ["-L", "-o", "json"], T0).out
    js = sorted((model.row_from_json(json.loads(x)) for x in out.splitlines()),
                key=lambda r: r.id)
    assert compact == js
    by = {r.id: r for r in compact}
    assert by[1].endpoint("src") == "198.51.100.2:40000" and by[1].state == "ESTABLISHED"
    assert by[3].state == "UNREPLIED" and by[3].proto == "udp"
    assert by[4].endpoint("dst") == "[2001:db8:2::2]:443" and by[4].family == 6
    assert by[5].endpoint("src") == "198.51.100.2" and by[5].sport is None
    assert (by[1].packets, by[1].bytes) == (5, 500)
    # the daemon-side filters are conntrack's
    for argv, want in ((["-p", "udp"], {3}), (["-s", "198.51.100.0/24"], {1, 2, 3, 5}),
                       (["--state", "TIME_WAIT"], {2}), (["-f", "ipv6"], {4}),
                       (["-d", "203.0.113.2", "-p", "tcp", "--dport", "80"], {1})):
        rep = snapshot.handle(tr, "top " + json.dumps({"argv": argv}), T0)
        assert {v[0] for v in rep["rows"]} == want, argv
        assert rep["total"] == 5
    for bad in ("top {", "top " + json.dumps({"argv": "x"}),
                "top " + json.dumps({"argv": ["--state", "BOGUS"]}),
                "top " + json.dumps({"argv": ["-o", "json"]})):
        rep = snapshot.handle(tr, bad, T0)
        assert not rep["ok"] and rep["error"].startswith("bad top"), bad
    with pytest.raises(ValueError, match="bad top row"):
        model.row_from_compact([1, 2, 3])
    with pytest.raises(ValueError, match="bad conntrack JSON"):
        model.row_from_json({"id": 1})


# -- keys and the screen text --------------------------------------------------------------
def test_keys() -> None:
    v = View()
    assert v.press("b") is None and v.sort == "dst"
    for _ in COLUMNS[1:]:
        v.press("b")
    assert v.sort == "src"
    v.press("<")
    assert v.sort == "rate"
    v.press("B")
    assert v.reverse
    v.press("r")
    assert not v.reverse
    v.press("f")
    for k in "udp:5":
        v.press(k)
    v.press("KEY_BACKSPACE")
    assert v.prompt == "udp:" and v.filter == ""
    v.press("q")                                   # typed into the prompt, not quit
    v.press("\n")
    assert v.prompt is None and v.filter == "udp:q"
    v.press("f")
    v.press("x")
    v.press("\x1b")                                # Esc cancels: the filter stays
    assert v.filter == "udp:q" and v.prompt is None
    v.press("f")
    for _ in range(10):
        v.press("KEY_BACKSPACE")
    v.press("\n")
    assert v.filter == ""                          # empty clears
    assert v.press("p") is None and v.paused
    assert v.press("p") == REFRESH and not v.paused
    assert v.press(" ") == REFRESH
    assert v.press("\x0c") == REDRAW and v.press("KEY_RESIZE") == REDRAW
    v.page = 10
    v.press("KEY_NPAGE")
    v.press("KEY_DOWN")
    assert v.top == 11
    v.clamp(15)
    assert v.top == 5
    v.press("KEY_END")
    v.clamp(100)
    assert v.top == 90
    v.press("KEY_HOME")
    v.press("KEY_UP")
    v.clamp(100)
    assert v.top == 0
    v.press("h")
    assert v.help and v.press("x") is None and not v.help
    assert v.press("q") == QUIT
    # undecoded escape sequences ($TERM not describing the terminal)
    from statewall.top.view import escape_key
    assert [escape_key(x) for x in ("[A", "OB", "[5~", "[6~", "[4~", "OF", "[H", "", "[9~")] \
        == ["KEY_UP", "KEY_DOWN", "KEY_PPAGE", "KEY_NPAGE", "KEY_END", "KEY_END", "KEY_HOME",
            "\x1b", ""]


def test_screen_fits_80x24_and_scrolls() -> None:
    rows = [R(i, sport=30000 + i, dport=80, bytes=i * 1000) for i in range(1, 41)]
    rows[0].state, rows[1].marks = "TIME_WAIT", NEW
    rows[0].marks = CLOSING
    t = totals(rows, 40)
    v = View()
    for w, h in ((80, 24), (120, 30), (40, 10), (200, 60), (10, 3), (1, 1)):
        lines = render.screen(v, rows, t, w, h, "12:00:00", 1.0)
        assert len(lines) == h and all(len(x) <= w for x, _ in lines), (w, h)
    lines = render.screen(v, rows, t, 80, 24, "12:00:00", 1.0)
    assert lines[0][1] == render.TITLE and "sort: Source asc" in lines[0][0]
    assert lines[1][0].startswith("Total States: 40 -- TCP: 40 UDP: 0 ICMP: 0 Other: 0")
    assert lines[3][1] == render.HEADER and lines[3][0].split()[:4] == \
        ["Source^", "Destination", "Proto", "State"]
    assert "Pkts" not in lines[3][0]                # 80 columns: Pkts gives way
    assert lines[4][0].split()[:2] == ["198.51.100.2:30001", "203.0.113.2:80"]
    assert lines[4][1] == CLOSING and lines[5][1] == NEW
    assert v.page == 19 and lines[-1][0].startswith("1-19 of 40")
    v.press("KEY_NPAGE")
    lines = render.screen(v, rows, t, 80, 24)
    assert lines[4][0].startswith("198.51.100.2:30020") and lines[-1][0].startswith("20-38")
    v.press("KEY_END")
    lines = render.screen(v, rows, t, 80, 24)
    assert lines[-2][0].startswith("198.51.100.2:30040") and lines[-1][0].startswith("22-40")
    assert "Pkts" in render.screen(View(), rows, t, 120, 30)[3][0]
    v.press("f")
    v.press("x")
    assert render.screen(v, rows, t, 80, 24)[-1] == ("Filter: x", render.STATUS)
    assert render.screen(View(), rows, t, 80, 24, message="cannot reach")[-1][1] == \
        render.ERROR
    assert render.human(999) == "999" and render.human(12345) == "12.1K"
    assert render.human(5 * 1024 ** 3) == "5.0G" and render.ttl_text(432000) == "120:00:00"
    assert render.fit_endpoint("[2001:db8:1::2]:50000", 16) == "[2001:db8+:50000"
    assert render.fit_endpoint("198.51.100.2:40000", 15) == "198.51.1+:40000"


def test_refresh_loop_without_a_terminal() -> None:
    """Top's fetch scheduling (no curses needed): a fetch runs in a thread; an error is
    shown and retried after the delay, keeping the last rows; a slow fetch stretches the
    interval to COST_FACTOR times its cost; rates come from consecutive snapshots; paused:
    no fetch."""
    from statewall.top import screen as tscreen
    clock = [T0]
    answers: list[object] = [FetchError("cannot reach statewall at x: refused"),
                             ([R(1, bytes=1000)], 3), ([R(1, bytes=5000)], 3)]

    def fetcher() -> tuple[list[Row], int]:
        clock[0] += 0.5                            # each fetch takes half a second
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        assert isinstance(a, tuple)
        return a
    top = tscreen.Top(None, fetcher, View(), 1.0, clock=lambda: clock[0])

    def step() -> bool:
        started = top.poll_fetch(clock[0])
        assert not started and top.job is not None
        top.job.join(5)
        return top.poll_fetch(clock[0])
    assert step() and top.message.startswith("cannot reach") and top.prev is None
    assert top.next_at == T0 + 0.5 + 1.0 and top.job is None
    assert not top.poll_fetch(clock[0]) and top.job is None     # not due yet
    clock[0] = top.next_at
    assert step() and top.message == "" and top.prev is not None
    assert top.interval == 2.0 and top.next_at == clock[0] + 2.0  # 4 x 0.5 s
    clock[0] = top.next_at
    top.view.paused = True
    assert not top.poll_fetch(clock[0]) and top.job is None
    top.view.paused = False
    assert step()
    row = top.prev.rows[0]
    assert row.rate == 4000 / 2.5 and row.marks == 0              # midpoints 2.5 s apart


# -- the request word, its fallback, the command line ---------------------------------------
def served_top(path: str, tr: Tracker, top: bool = True) -> Served:
    """A CtlServer over ``tr`` in this process (with or without the ``top`` word)."""
    return Served(path, tr, handlers={snapshot.WORD: lambda line, now:
                                      snapshot.handle(tr, line, now)} if top else None)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = served_top(str(tmp_path / "ctl.sock"), _tracker(time.monotonic()))
    try:
        yield s
    finally:
        s.close()


def test_fetch_and_fallback(tmp_path: Path, served: Served) -> None:
    rows, total = fetch(served.srv.path, [])
    old = served_top(str(tmp_path / "old.sock"), served.tracker, top=False)   # no "top" word
    try:
        rows2, total2 = fetch(old.srv.path, [])
        assert total == total2 == 5
        key = lambda r: r.id                                              # noqa: E731
        assert [(r.key, r.state, r.bytes) for r in sorted(rows, key=key)] == \
            [(r.key, r.state, r.bytes) for r in sorted(rows2, key=key)]
        rows3, total3 = fetch(old.srv.path, ["-p", "udp"])
        assert [r.dport for r in rows3] == [53] and total3 == 5
    finally:
        old.close()
    # a supervisor answers with its workers' sockets: top asks each and merges
    w2 = served_top(str(tmp_path / "w2.sock"), Tracker())
    ops.run(w2.tracker, ["-I", "-s", "192.0.2.7", "-d", "203.0.113.2", "-p", "udp", "--sport",
                         "1", "--dport", "2", "-t", "30"], time.monotonic())
    sup = served_top(str(tmp_path / "sup.sock"), Tracker(), top=False)
    sup.srv.handlers[snapshot.WORD] = \
        lambda line, now: {"ok": True, "workers": [served.srv.path, w2.srv.path]}
    try:
        rows4, total4 = fetch(sup.srv.path, [])
        assert total4 == 6 and sorted(r.src for r in rows4)[0] == "192.0.2.7"
        rows5, total5 = fetch(sup.srv.path, ["-s", "192.0.2.0/24"])
        assert [r.src for r in rows5] == ["192.0.2.7"] and total5 == 6
        w2.close()
        with pytest.raises(FetchError, match="cannot reach"):
            fetch(sup.srv.path, [])
    finally:
        sup.close()
        w2.close()
    with pytest.raises(FetchError, match="cannot reach"):
        fetch(str(tmp_path / "nobody.sock"), [])
    with pytest.raises(FetchError, match="bad top filter"):
        fetch(served.srv.path, ["--state", "BOGUS"])


def _top(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STATEWALL, "top", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_cli_once_json_and_errors(tmp_path: Path, served: Served) -> None:
    env = dict(os.environ, STATEWALL_CONTROL=served.srv.path, COLUMNS="100")
    p = _top(["--once"], env)                      # (stdout is a pipe: plain output anyway)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("statewall top") and "once" in lines[0]
    assert lines[1] == "Total States: 5 -- TCP: 3 UDP: 1 ICMP: 1 Other: 0 (Filtered: 0)"
    body = lines[4:]
    assert [ln.split()[0] for ln in body] == ["198.51.100.2", "198.51.100.2:5353",
                                              "198.51.100.2:40000", "198.51.100.3:40001",
                                              "[2001:db8:1::2]:50000"]
    assert body[3].split()[1:4] == ["203.0.113.2:22", "tcp", "TIME_WAIT"]
    p = _top(["--once", "-b", "t", "-r", "-p", "tcp"], env)             # iptstate's letter
    body = p.stdout.splitlines()[4:]
    assert [ln.split()[3] for ln in body] == ["ESTABLISHED", "SYN_SENT", "TIME_WAIT"]
    assert "(Filtered: 2)" in p.stdout
    p = _top(["--json", "-d", "0.2", "--delay", "1"], env)
    assert p.returncode == 2 and "given twice" in p.stderr
    p = _top(["--json", "--delay", "0.2", "-n", "2", "-d", "203.0.113.9"], env)
    assert p.returncode == 0, p.stderr
    first, second = (json.loads(x) for x in p.stdout.splitlines())
    assert [e["dport"] for e in first["entries"]] == [53]
    assert first["entries"][0]["bytes_per_s"] is None
    assert second["entries"][0]["bytes_per_s"] == 0
    assert second["totals"]["filtered"] == 4
    p = _top(["--once", "--filter", "tcp !established"], env)
    assert [ln.split()[3] for ln in p.stdout.splitlines()[4:]] == ["TIME_WAIT", "SYN_SENT"]
    for bad, msg in ((["--state", "BOGUS"], "unknown state"), (["-b", "nope"], "sort column"),
                     (["-d", "nonsense"], "Invalid IP"), (["--delay", "0"], "out of range"),
                     (["-n", "0"], "at least 1")):
        p = _top(["--once", *bad], env)
        assert p.returncode == 2 and msg in p.stderr, (bad, p.stderr)
    p = _top(["--once", "--control", str(tmp_path / "nobody.sock")], env)
    assert p.returncode == 1 and "cannot reach statewall" in p.stderr


# -- live: a real terminal (tmux), a real daemon, real traffic --------------------------------
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


class Tmux:
    """A tmux server of our own (its own socket, no config file); always killed."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        r = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def screen(self, escapes: bool = False) -> str:
        return self("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "top")

    def wait(self, pred: object, what: str, timeout: float = 20.0,
             escapes: bool = False) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen(escapes)
            if callable(pred) and pred(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"screen never showed {what}:\n{text}")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "top", *keys)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)


def _body(screen: str) -> list[str]:
    """The row lines of a plain capture (between the column titles and the status line)."""
    lines = screen.splitlines()
    i = next((i for i, ln in enumerate(lines) if ln.startswith("Source")), None)
    if i is None:
        return []
    out = []
    for ln in lines[i + 1:]:
        if not re.match(r"^[\[\]0-9a-f:.+]+ ", ln) or " of " in ln:
            break
        out.append(ln)
    return out


def _sgr(line: str) -> set[str]:
    """The SGR parameters (1 bold, 31 red, 32 green, ...) in a ``capture-pane -e`` line."""
    return {p for m in re.findall(r"\x1b\[([0-9;]*)m", line) for p in m.split(";") if p}


def _row(screen: str, needle: str) -> str | None:
    return next((ln for ln in _body(screen) if needle in ln), None)


@pytest.mark.parametrize("term", ["xterm", "screen", "tmux-256color"])
def test_terminals_help_resize_no_colour(term: str, served: Served, tmp_path: Path) -> None:
    """The screen on each terminal type, 80x24, the help page, a resize down to 30x6 and
    back, ``-c`` (no colours: closing rows dim), ``q`` exits 0."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (Debian package tmux, in the Makefile's DEBS)")
    tmux = Tmux(f"sw-top-{os.getpid()}-{term}")
    rc = tmp_path / "rc"
    try:
        tmux("new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
             f"env TERM={term} STATEWALL_CONTROL={served.srv.path} {STATEWALL} top -c "
             f"--delay 0.5; echo $? > {rc}; sleep 600")
        s = tmux.wait(lambda t: len(_body(t)) == 5, "five rows")
        assert max(len(x) for x in s.splitlines()) <= 80 and "1-5 of 5" in s
        esc = tmux.screen(escapes=True)
        closing = next(ln for ln in esc.splitlines() if "198.51.100.3:40001" in ln)
        assert "2" in _sgr(closing) and "31" not in _sgr(closing), repr(closing)
        tmux.keys("h")
        tmux.wait(lambda t: "Any key returns" in t, "the help page")
        tmux.keys("x")
        tmux.wait(lambda t: len(_body(t)) == 5, "the rows again")
        tmux("resize-window", "-t", "top", "-x", "30", "-y", "6")
        s = tmux.wait(lambda t: t.startswith("statewall top") and len(_body(t)) == 1
                      and max(len(x) for x in t.splitlines()) <= 30, "a 30x6 screen")
        tmux.keys("End")
        s = tmux.wait(lambda t: "5-5 of 5" in t, "scrolled to the end")
        tmux("resize-window", "-t", "top", "-x", "100", "-y", "30")
        tmux.wait(lambda t: len(_body(t)) == 5 and "Pkts" in t, "100x30 again")
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while not rc.exists() or not rc.read_text().strip():
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.05)
        assert rc.read_text().strip() == "0"
    finally:
        tmux.kill()


@pytest.fixture
def lab() -> Iterator[object]:
    from statewall.lab.netns import Topology, lab_available
    ok, why = lab_available()
    if not ok:
        pytest.skip(f"live kernel lab unavailable: {why}")
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (Debian package tmux, in the Makefile's DEBS)")
    with Topology() as t:
        t.up(live_peers=True)
        yield t


def test_live_top_in_tmux(lab: object, tmp_path: Path) -> None:
    from statewall.lab.netns import CLIENT_V4, SERVER_V4, Topology
    assert isinstance(lab, Topology)
    (tmp_path / "rules").write_text(RULES)
    control = str(tmp_path / "control")
    log = open(tmp_path / "sw.log", "wb")
    daemon = lab.popen("fw", [sys.executable, "-m", "statewall", "run", "--rules",
                              str(tmp_path / "rules"), "--state-file", str(tmp_path / "state"),
                              "--control", control, "--stats-interval", "0"],
                       stdout=subprocess.DEVNULL, stderr=log)
    tmux = Tmux(f"sw-top-{os.getpid()}")
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while "running" not in (tmp_path / "sw.log").read_text(errors="replace"):
            assert daemon.poll() is None, (tmp_path / "sw.log").read_text()
            assert time.monotonic() < deadline, "statewall run did not start"
            time.sleep(0.05)
        # real traffic through the firewall: a busy TCP echo, one closed TCP connection
        # (TIME_WAIT), a UDP exchange, a ping
        srv = lab.socket("server", socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((SERVER_V4, 8080))
        srv.listen(8)
        socks.append(srv)

        def serve() -> None:
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=echo, args=(c,), daemon=True).start()

        def echo(c: socket.socket) -> None:
            with c:
                try:
                    while data := c.recv(65536):
                        c.sendall(data)
                except OSError:
                    pass
        threading.Thread(target=serve, daemon=True).start()

        def connect(sport: int) -> socket.socket:
            s = lab.socket("client", socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((CLIENT_V4, sport))
            s.settimeout(5)
            s.connect((SERVER_V4, 8080))
            socks.append(s)
            return s
        busy = connect(41001)

        def pump() -> None:
            while not stop.is_set():
                try:
                    busy.sendall(b"x" * 2000)
                    busy.recv(65536)
                except OSError:
                    return
                time.sleep(0.05)
        threading.Thread(target=pump, daemon=True).start()
        closed = connect(41002)
        closed.sendall(b"bye")
        assert closed.recv(10) == b"bye"
        closed.close()                            # client closes first: TIME_WAIT
        u_srv = lab.socket("server", socket.AF_INET, socket.SOCK_DGRAM)
        u_srv.bind((SERVER_V4, 5353))
        socks.append(u_srv)
        u = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(u)
        u.bind((CLIENT_V4, 41003))
        u.sendto(b"q", (SERVER_V4, 5353))
        data, peer = u_srv.recvfrom(100)
        u_srv.sendto(b"a", peer)
        u.settimeout(5)
        assert u.recv(10) == b"a"
        assert lab.run("client", ["ping", "-c", "1", "-W", "2", SERVER_V4],
                       check=False).returncode == 0

        rc_file = tmp_path / "rc"
        tmux("new-session", "-d", "-s", "top", "-x", "120", "-y", "30",
             f"env STATEWALL_CONTROL={control} {STATEWALL} top -d 1; "
             f"echo $? > {rc_file}; sleep 600")
        s = tmux.wait(lambda t: all(_row(t, f"{CLIENT_V4}:{p}") for p in (41001, 41002, 41003))
                      and _row(t, " icmp ") is not None, "the four connections")
        est = _row(s, f"{CLIENT_V4}:41001")
        tw = _row(s, f"{CLIENT_V4}:41002")
        udp = _row(s, f"{CLIENT_V4}:41003")
        assert est is not None and tw is not None and udp is not None
        assert est.split()[1:4] == [f"{SERVER_V4}:8080", "tcp", "ESTABLISHED"], est
        assert tw.split()[1:4] == [f"{SERVER_V4}:8080", "tcp", "TIME_WAIT"], tw
        assert udp.split()[1:4] == [f"{SERVER_V4}:5353", "udp", "REPLIED"] or \
            udp.split()[1:4] == [f"{SERVER_V4}:5353", "udp", "ASSURED"], udp
        assert "Pkts" in s and "Total States: " in s
        n_rows = len(_body(s))
        # the busy connection has a rate (bytes/s between refreshes)
        s = tmux.wait(lambda t: (r := _row(t, f"{CLIENT_V4}:41001")) is not None
                      and r.split()[-1] not in ("0", "-"), "a rate on the busy connection")
        print(s)                                  # (docs/top.md shows one such screen)
        # the closing entry is highlighted (red), the others are not
        esc = tmux.screen(escapes=True)
        tw_esc = next(ln for ln in esc.splitlines() if f"{CLIENT_V4}:41002" in ln)
        assert "31" in _sgr(tw_esc), repr(tw_esc)
        # a connection opened now is NEW: bold (green) on the refresh that first shows it
        connect(41004)
        esc = tmux.wait(lambda t: f"{CLIENT_V4}:41004" in t, "the new connection",
                        escapes=True)
        new_ln = next(ln for ln in esc.splitlines() if f"{CLIENT_V4}:41004" in ln)
        assert {"1", "32"} <= _sgr(new_ln), repr(new_ln)
        assert not _sgr(next(ln for ln in esc.splitlines() if f"{CLIENT_V4}:41001" in ln)) & \
            {"1", "31", "32"}
        s = tmux.wait(lambda t: f"{CLIENT_V4}:41004" in t and "New: 0" in t,
                      "the NEW mark cleared on the next refresh")
        # sorting: by destination, then reversed
        def order(t: str) -> list[str]:
            return [ln.split()[0] for ln in _body(t)]
        tmux.keys("b")
        s = tmux.wait(lambda t: "Destination^" in t, "sorted by destination")
        dst_ports = [int(ln.split()[1].rsplit(":", 1)[1]) if ":" in ln.split()[1] else 0
                     for ln in _body(s)]
        assert dst_ports == sorted(dst_ports) and dst_ports[-1] == 8080, s
        asc = order(s)
        tmux.keys("B")
        s = tmux.wait(lambda t: "Destinationv" in t, "sorted by destination, reversed")
        assert order(s) != asc and set(order(s)) == set(asc)
        assert dst_ports[::-1] == [int(ln.split()[1].rsplit(":", 1)[1])
                                   if ":" in ln.split()[1] else 0 for ln in _body(s)]
        tmux.keys("b", "b")                                  # Proto, then State
        s = tmux.wait(lambda t: "Statev" in t, "sorted by state, still reversed")
        states = [ln.split()[3] for ln in _body(s)]
        assert states == sorted(states, reverse=True), s     # still reversed (B)
        # the filter hides rows
        tmux.keys("f")
        tmux.keys("-l", "udp")
        tmux.wait(lambda t: "Filter: udp" in t, "the filter prompt")
        tmux.keys("Enter")
        s = tmux.wait(lambda t: "filter: udp" in t and len(_body(t)) == 1, "one udp row")
        assert _body(s)[0].startswith(f"{CLIENT_V4}:41003")
        assert f"(Filtered: {n_rows})" in s                 # every other row
        tmux.keys("f", "C-u")                                 # Ctrl-U: not printable, ignored
        for _ in "udp":
            tmux.keys("BSpace")
        tmux.keys("Enter")
        s = tmux.wait(lambda t: len(_body(t)) == n_rows + 1, "every row again")
        # an 80x24 terminal: resized, the screen is redrawn to fit
        tmux("resize-window", "-t", "top", "-x", "80", "-y", "24")
        s = tmux.wait(lambda t: "Pkts" not in t and "Source" in t
                      and max(len(x) for x in t.splitlines()) <= 80, "the 80x24 layout")
        assert len(_body(s)) == n_rows + 1
        print(s)
        # p pauses: the clock stops; q quits with status 0
        tmux.keys("p")
        tmux.wait(lambda t: "PAUSED" in t, "PAUSED")
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while not rc_file.exists() or not rc_file.read_text().strip():
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.05)
        assert rc_file.read_text().strip() == "0"
    finally:
        stop.set()
        tmux.kill()
        for x in socks:
            x.close()
        lab.stop(daemon, signal.SIGTERM, timeout=15.0)
        log.close()
