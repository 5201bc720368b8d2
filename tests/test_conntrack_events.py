"""``statewall conntrack -E``: event subscribers (ctl/events.py) and the CLI that prints them.

In process: a ``CtlServer`` with a firewall's tracker behind it, served from its own thread
(packets are fed through that thread too, so the table has one owner); the CLI runs as a
separate ``statewall conntrack -E`` process with STATEWALL_CONTROL set. Proves: traffic gives
[NEW]/[UPDATE]/[DESTROY] lines in ``conntrack -E``'s format, -e and the filters apply, -o
timestamp/extended/id, the tracker's sink is set only while someone listens, a reader that
does not read loses events (counted, ``!lost N``, the CLI prints conntrack's ENOBUFS
warning) while the packet path carries on, Ctrl-C prints "N flow events have been shown."
and exits 0, and several workers (the supervisor answers with their sockets) are merged.
Live: the same against ``statewall run`` in the lab namespaces (root only).
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from flows import C4, FW, S4, tcp, udp
from statewall.ctl.events import LOST, timestamp
from statewall.ctl.server import encode, forward

from served import Served as ServedBase  # noqa: E402  (tests/served.py)

STATEWALL = str(Path(sys.executable).with_name("statewall"))
LINE = re.compile(r"^ *\[(NEW|UPDATE|DESTROY)\] (tcp|udp|icmp) +\d+ ")


class Served(ServedBase):
    """A CtlServer over a firewall's tracker; ``call(fn)`` runs fn in the server thread."""

    def __init__(self, path: str) -> None:
        self.fw = FW()
        self.jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
        super().__init__(path, clock=lambda: self.fw.now, interval=0.01,
                         table=lambda: self.fw.fw.tracker)

    def on_step(self) -> None:
        while not self.jobs.empty():
            fn, done = self.jobs.get()
            done.put(fn())
        if self.srv.events.subs:
            self.srv.events.flush()

    def call(self, fn: Callable[[], Any]) -> Any:
        done: queue.Queue[Any] = queue.Queue()
        self.jobs.put((fn, done))
        return done.get(timeout=30)

    def send(self, *pkts: Any, dt: float = 0.0) -> list[Any]:
        return self.call(lambda: [self.fw.send(p, dt) for p in pkts])

    def wait_subs(self, n: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.srv.events.subs) != n:
            assert time.monotonic() < deadline, "subscriber never arrived"
            time.sleep(0.01)

@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(str(tmp_path / "ctl.sock"))
    try:
        yield s
    finally:
        s.close()


class Cli:
    """``statewall conntrack ARGS`` running in the background."""

    def __init__(self, path: str, *args: str) -> None:
        env = dict(os.environ, STATEWALL_CONTROL=path)
        self.p = subprocess.Popen([STATEWALL, "conntrack", *args], env=env, bufsize=0,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._buf = b""

    def _take(self, data: bytes) -> None:
        *done, self._buf = (self._buf + data).split(b"\n")
        self.lines += [x.decode() for x in done]

    def read(self, n: int, timeout: float = 10.0) -> list[str]:
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stdout], [], [], 0.1)
            if r:
                data = os.read(self.p.stdout.fileno(), 1 << 16)
                if not data:
                    break
                self._take(data)
        return self.lines

    def interrupt(self) -> tuple[int, str, str]:
        self.p.send_signal(signal.SIGINT)
        out, err = self.p.communicate(timeout=10)
        self._take(out)
        return self.p.returncode, out.decode(), err.decode()


def _syn_synack_ack(sport: int = 40000) -> list[Any]:
    return [tcp(sport=sport, flags="S", seq=1000),
            tcp(src=S4, dst=C4, sport=80, dport=sport, flags="SA", seq=5000, ack=1001),
            tcp(sport=sport, flags="A", seq=1001, ack=5001)]


def test_cli_streams_new_update_destroy(served: Served) -> None:
    assert served.fw.fw.tracker.sink is not None           # FW's own trace sink
    served.fw.fw.tracker.sink = None
    cli = Cli(served.srv.path, "-E")
    served.wait_subs(1)
    assert served.fw.fw.tracker.sink is not None           # hooked while someone listens
    served.send(*_syn_synack_ack())
    served.call(lambda: served.fw.fw.tracker.expire(served.fw.now + 500_000))
    lines = cli.read(4)
    rc, _, err = cli.interrupt()
    assert rc == 0
    assert err.strip().endswith(f"{len(cli.lines)} flow events have been shown.")
    assert "conntrack v1.4.7 (conntrack-tools): " in err
    assert all(LINE.match(ln) for ln in cli.lines), cli.lines
    assert lines[0] == ("    [NEW] tcp      6 120 SYN_SENT src=198.51.100.2 dst=203.0.113.2 "
                        "sport=40000 dport=80 [UNREPLIED] src=203.0.113.2 dst=198.51.100.2 "
                        "sport=80 dport=40000")
    assert lines[1].startswith(" [UPDATE] tcp      6 60 SYN_RECV src=198.51.100.2")
    assert any(ln.startswith(" [UPDATE] tcp      6 432000 ESTABLISHED") for ln in lines)
    assert cli.lines[-1].startswith("[DESTROY] tcp      6 ESTABLISHED src=198.51.100.2")
    served.wait_subs(0)                                    # the hang-up is noticed
    assert served.fw.fw.tracker.sink is None               # zero cost without subscribers


def test_event_mask_and_filters(served: Served) -> None:
    cli = Cli(served.srv.path, "-E", "-e", "NEW", "-p", "udp", "--dport", "53",
              "-s", "198.51.100.0/24")
    served.wait_subs(1)
    served.send(*_syn_synack_ack(), udp(dport=54), udp(dport=53),
                udp(src=S4, dst=C4, sport=53, dport=1032), udp(src=S4, dst=C4, dport=53))
    served.call(lambda: served.fw.fw.tracker.expire(served.fw.now + 500_000))
    served.send(udp(sport=2000, dport=53))
    cli.read(2)
    rc, _, err = cli.interrupt()
    assert rc == 0 and "2 flow events have been shown." in err
    assert [ln.split()[0] for ln in cli.lines] == ["[NEW]", "[NEW]"]
    assert "sport=1032 dport=53" in cli.lines[0] and "sport=2000 dport=53" in cli.lines[1]


def test_output_timestamp_extended_id(served: Served) -> None:
    cli = Cli(served.srv.path, "-E", "-o", "timestamp,extended,id")
    served.wait_subs(1)
    r = served.send(udp())[0]
    (ln,) = cli.read(1)
    cli.interrupt()
    m = re.match(r"^\[(\d{8,})\.(\d{6})\]\t    \[NEW\] ipv4     2 udp      17 30 src=", ln)
    assert m, ln
    assert abs(int(m.group(1)) - time.time()) < 60
    assert ln.endswith(f" id={r.ct.id}")
    assert timestamp(12.000005) == "[00000012.000005]\t"


def _raw_subscribe(path: str, argv: list[str], rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(path)
    s.sendall(encode(argv))
    head = b""
    while not head.endswith(b"\n"):
        head += s.recv(1)
    assert json.loads(head) == {"ok": True, "stream": True}
    return s


def _drain(s: socket.socket, quiet: float = 0.3) -> list[str]:
    data = b""
    s.settimeout(quiet)
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data.decode().splitlines()


def test_slow_subscriber_loses_events_and_is_told(served: Served) -> None:
    """A reader that does not read: its ring (-b 16 events) overwrites the oldest lines, the
    loss is counted and sent as ``!lost N`` ahead of what is left; the packets all pass and
    a reader that keeps up loses nothing."""
    slow = _raw_subscribe(served.srv.path, ["-E", "-e", "NEW", "-b", "16"], rcvbuf=4096)
    fast = _raw_subscribe(served.srv.path, ["-E", "-e", "NEW"])
    served.wait_subs(2)
    n = 3000
    got_fast: list[str] = []

    def burst() -> list[Any]:
        out = []
        for i in range(n):
            out.append(served.fw.send(udp(sport=10000 + i, dport=53)))
            if i % 100 == 99:
                served.srv.events.flush()       # as the worker's loop does between batches
        return out

    t0 = time.monotonic()
    reader = threading.Thread(target=lambda: got_fast.extend(_drain(fast, 2.0)))
    reader.start()
    results = served.call(burst)
    took = time.monotonic() - t0
    assert all(r.verdict == "ACCEPT" for r in results)           # every packet accepted
    assert took < 20
    lines = _drain(slow)
    lost = [int(ln[len(LOST):]) for ln in lines if ln.startswith(LOST)]
    shown = [ln for ln in lines if not ln.startswith(LOST)]
    assert lost and sum(lost) + len(shown) == n, (lost, len(shown))
    assert all(LINE.match(ln) for ln in shown)
    assert served.srv.events.lost_total == sum(lost)
    reader.join(10)
    assert len(got_fast) == n and not any(ln.startswith(LOST) for ln in got_fast)
    slow.close()
    fast.close()


def test_cli_reports_the_loss(served: Served) -> None:
    cli = Cli(served.srv.path, "-E", "-b", "8")
    served.wait_subs(1)
    cli.p.send_signal(signal.SIGSTOP)                     # the reader falls behind
    try:
        served.call(lambda: [served.fw.send(udp(sport=10000 + i)) for i in range(4000)])
        for _ in range(50):
            served.call(served.srv.events.flush)
    finally:
        cli.p.send_signal(signal.SIGCONT)
    cli.read(4000, timeout=2)
    rc, _, err = cli.interrupt()
    assert rc == 0
    assert "WARNING: We have hit ENOBUFS! We are losing events." in err
    m = re.search(r"statewall: (\d+) events lost", err)
    assert m and int(m.group(1)) > 0
    shown = int(re.search(r"(\d+) flow events have been shown", err).group(1))  # type: ignore
    assert shown == len(cli.lines) and shown + int(m.group(1)) <= 4000


def test_expect_events_and_bad_requests(served: Served) -> None:
    cli = Cli(served.srv.path, "-E", "expect")
    served.wait_subs(1)
    assert served.srv.events.subs[0].expect
    rc, _, err = cli.interrupt()
    assert rc == 0 and err.strip().endswith("0 expectation events have been shown.")
    p = subprocess.run([STATEWALL, "conntrack", "-E", "-e", "BOGUS"], capture_output=True,
                       text=True, env=dict(os.environ, STATEWALL_CONTROL=served.srv.path))
    assert p.returncode == 2 and not served.srv.events.subs
    p = subprocess.run([STATEWALL, "conntrack", "-E"], capture_output=True, text=True,
                       env=dict(os.environ, STATEWALL_CONTROL=served.srv.path + ".none"))
    assert p.returncode == 1 and "cannot reach statewall" in p.stderr


def test_several_workers_are_merged(tmp_path: Path) -> None:
    """The supervisor answers -E with the workers' sockets; the CLI subscribes to each."""
    a, b = Served(str(tmp_path / "c.q0")), Served(str(tmp_path / "c.q1"))
    sup_path = str(tmp_path / "c")
    sup = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sup.bind(sup_path)
    sup.listen(4)

    def supervisor() -> None:
        conn, _ = sup.accept()
        with conn:
            line = conn.makefile().readline().strip()
            conn.sendall(json.dumps(forward(line, [a.srv.path, b.srv.path])).encode() + b"\n")

    threading.Thread(target=supervisor, daemon=True).start()
    try:
        cli = Cli(sup_path, "-E", "-p", "udp")
        a.wait_subs(1)
        b.wait_subs(1)
        a.send(udp(sport=1111), tcp())
        b.send(udp(sport=2222))
        cli.read(2)
        rc, _, err = cli.interrupt()
        assert rc == 0 and "2 flow events have been shown." in err
        assert sorted(re.search(r"sport=(\d+)", ln).group(1)          # type: ignore
                      for ln in cli.lines) == ["1111", "2222"]
    finally:
        sup.close()
        a.close()
        b.close()


# -- live: statewall run in the lab namespaces (root only) --------------------------------
def _wait_subscribed(lab: Any, server: str, clis: tuple[Cli, ...]) -> None:
    """Each client is subscribed (to every worker) once it has shown an event: send probe
    datagrams (new UDP flows, on both queues sooner or later) until all have one. A fixed
    sleep is not enough on a loaded machine: the clients are Python processes starting."""
    probe = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + 30
        port = 4000
        while time.monotonic() < deadline:
            for _ in range(4):
                port += 1
                try:
                    probe.sendto(b"probe", (server, port))
                except OSError:
                    pass                        # the ICMP error of an earlier probe
            for c in clis:
                c.read(len(c.lines) + 1, timeout=0.2)
            if all(any(f"dport={port - k}" in ln for k in range(4) for ln in c.lines)
                   for c in clis):
                return
        raise AssertionError("the -E clients never saw a probe event")
    finally:
        probe.close()


def test_live_events(tmp_path: Path) -> None:
    from test_live import LAB_OK, LAB_WHY, SERVER_V4, Daemon, TcpServer, Topology, \
        _connect, _echo, _remove_kernel_rules, _udp_exchange
    if not LAB_OK:
        pytest.skip(f"live kernel lab unavailable: {LAB_WHY}")
    with Topology() as lab:
        lab.up(live_peers=True)
        d = Daemon(lab, tmp_path, "--queues", "0-1")
        try:
            d.start()
            ev = Cli(d.control, "-E")
            udp_only = Cli(d.control, "-E", "-p", "udp", "-e", "NEW")
            slow = Cli(d.control, "-E", "-b", "4")
            _wait_subscribed(lab, SERVER_V4, (ev, udp_only, slow))
            slow.p.send_signal(signal.SIGSTOP)
            srv = TcpServer(lab, 7010, "echo")
            s = _connect(lab, "client", SERVER_V4, 7010)
            assert _echo(s, b"events") == b"events"
            s.close()
            srv.close()
            assert _udp_exchange(lab, 5390) == b"HELLO"
            burst = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(3000):                        # a burst the stopped reader misses
                try:
                    burst.sendto(b"x", (SERVER_V4, 20000 + i))
                except OSError:
                    pass                                 # an ICMP error from the last one
                if i % 200 == 199:
                    time.sleep(0.02)
            burst.close()
            assert _udp_exchange(lab, 5391) == b"HELLO"  # still forwarding
            lines = ev.read(6)
            slow.p.send_signal(signal.SIGCONT)
            ev.read(10_000, timeout=1)
            udp_only.read(2)
            # the TCP flow: NEW, UPDATEs, and (with the client's FIN) more UPDATEs
            tcp_lines = [ln for ln in ev.lines if "dport=7010" in ln]
            assert tcp_lines[0].startswith("    [NEW] tcp      6 120 SYN_SENT src=")
            assert any(ln.startswith(" [UPDATE] tcp      6 432000 ESTABLISHED")
                       for ln in tcp_lines)
            assert all(LINE.match(ln) for ln in lines)
            assert udp_only.lines and all(ln.startswith("    [NEW] udp ")
                                          for ln in udp_only.lines)
            # the flush deletes everything: [DESTROY] for each
            subprocess.run([STATEWALL, "conntrack", "-F", f"--control={d.control}"],
                           check=True, capture_output=True)
            ev.read(len(ev.lines) + 1)
            assert any(ln.startswith("[DESTROY] tcp      6 ") for ln in ev.lines)
            for c in (ev, udp_only):
                rc, _, err = c.interrupt()
                assert rc == 0 and f"{len(c.lines)} flow events have been shown." in err
            rc, _, err = slow.interrupt()
            assert rc == 0 and "WARNING: We have hit ENOBUFS!" in err, err
        finally:
            if d.p is not None:
                d.stop()
            _remove_kernel_rules(lab)
