"""Live mode end to end: client - statewall firewall - server, in network namespaces.

The firewall namespace runs ``statewall run`` (NFQUEUE); the peers are real stacks. Sockets
are opened inside the namespaces by this process (``Topology.socket``), so the client and
server ends are threads here. Proves: the client reaches the server (ping, HTTP with curl,
a UDP exchange), the server cannot open connections to the client (TCP dropped, UDP
REJECTed with the generated ICMP error delivered), RELATED ICMP errors pass, INVALID is
dropped, a reload takes effect without dropping established connections (and a broken rule
set is refused whole), a restart in the middle of a long TCP transfer keeps it going,
killing statewall fails closed (or open with --fail-open), several queues work, and a
capture taken on the firewall replays offline to the same verdicts.
Needs root and the lab tools; skipped otherwise. Kernel rules exist only inside the test
namespaces, which are removed at the end (also on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from statewall.cli.main import main as cli_main
from statewall.lab.netns import CLIENT_V4, CLIENT_V6, FW_CLIENT_V4, FW_SERVER_V4, SERVER_V4, \
    SERVER_V6, Topology, lab_available
from statewall.live.kernel import KernelSetup

LAB_OK, LAB_WHY = lab_available()

# the seed's rules, for a firewall between the client (c0) and the server (s0): NEW only
# outbound (from the client), ESTABLISHED/RELATED back, SYN required for NEW TCP
# (Henrik Nordstrom's rule), INVALID dropped; UDP from the server side is REJECTed
SEED_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state INVALID -j DROP
-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp ! --syn -m state --state NEW -j DROP
-A FORWARD -i c0 -o s0 -m state --state NEW -j ACCEPT
-A FORWARD -i s0 -p udp -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""
# after the reload: no new connections from the client any more (established ones live on)
CLOSED_RULES = SEED_RULES.replace("-A FORWARD -i c0 -o s0 -m state --state NEW -j ACCEPT\n", "")
BROKEN_RULES = SEED_RULES.replace("--state NEW -j ACCEPT", "--state NEWISH -j ACCEPT")


class Daemon:
    """``statewall run`` inside the firewall namespace, with its files in ``dir``."""

    def __init__(self, lab: Topology, dir: Path, *extra: str, rules: str = SEED_RULES,
                 name: str = "sw") -> None:
        self.lab = lab
        self.dir = dir
        self.rules = dir / "rules.v4"
        if not self.rules.exists():
            self.rules.write_text(rules)
        self.state = dir / "state"
        self.control = str(dir / "control")
        self.trace = dir / "trace"
        self.log = dir / f"{name}.log"
        self.extra = extra
        self.p: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> Daemon:
        argv = [sys.executable, "-m", "statewall", "run", "--rules", str(self.rules),
                "--state-file", str(self.state), "--control", self.control,
                "--trace", str(self.trace), "--stats-interval", "0", *self.extra]
        self._log = open(self.log, "ab")
        self._mark = self.log.stat().st_size
        self.p = self.lab.popen("fw", argv, stderr=self._log, stdout=subprocess.DEVNULL)
        if wait:
            self.wait_for("running")
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                f.seek(self._mark)
                new = f.read().decode(errors="replace")
            if what in new:
                return new
            if self.p is not None and self.p.poll() is not None:
                raise AssertionError(f"statewall exited ({self.p.returncode}):\n{self.text()}")
            time.sleep(0.02)
        raise AssertionError(f"no {what!r} in the log:\n{self.text()}")

    def stop(self) -> int | None:
        if self.p is None:
            return None
        rc = self.lab.stop(self.p, signal.SIGTERM, timeout=15.0)
        self.p = None
        self._log.close()
        return rc

    def kill(self) -> None:
        assert self.p is not None
        os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait(5)
        self.lab.stop(self.p)
        self.p = None
        self._log.close()

    def trace_lines(self) -> list[dict[str, Any]]:
        if not self.trace.exists():
            return []
        return [json.loads(x) for x in self.trace.read_text().splitlines() if x.strip()]


@pytest.fixture
def daemon(lab: Topology, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(lab, tmp_path)
    try:
        yield d
    finally:
        if d.p is not None:
            d.stop()
        _remove_kernel_rules(lab)


def _remove_kernel_rules(lab: Topology) -> None:
    code = "from statewall.live.kernel import KernelSetup; KernelSetup().remove()"
    lab.run("fw", [sys.executable, "-c", code], check=False)


def _kernel_rules_present(lab: Topology) -> bool:
    return "statewall-pre" in lab.run("fw", ["iptables-save", "-t", "raw"]).stdout


# -- peers ----------------------------------------------------------------------------------
class TcpServer:
    """A TCP listener in the server namespace: ``echo`` echoes, ``blob`` sends ``size``
    bytes (paced over ``seconds``) and closes."""

    def __init__(self, lab: Topology, port: int, mode: str = "echo", size: int = 0,
                 seconds: float = 0.0, role: str = "server", addr: str = SERVER_V4) -> None:
        self.s = lab.socket(role, socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((addr, port))
        self.s.listen(8)
        self.mode, self.size, self.seconds = mode, size, seconds
        self.accepted = 0
        self.errors: list[BaseException] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c: socket.socket) -> None:
        try:
            with c:
                if self.mode == "echo":
                    while True:
                        data = c.recv(65536)
                        if not data:
                            return
                        c.sendall(data)
                chunk = b"z" * 65536
                n = self.size // len(chunk)
                for i in range(n):
                    c.sendall(chunk)
                    time.sleep(self.seconds / n)
        except OSError as e:
            self.errors.append(e)

    def close(self) -> None:
        self.s.close()


def _connect(lab: Topology, role: str, addr: str, port: int,
             timeout: float = 3.0) -> socket.socket:
    s = lab.socket(role, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((addr, port))
    return s


def _echo(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _udp_exchange(lab: Topology, port: int, listen: bool = True) -> bytes | str:
    """Client sends a datagram to the server; returns the echo, or "refused"/"timeout"."""
    srv = None
    if listen:
        srv = lab.socket("server", socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind((SERVER_V4, port))

        def echo() -> None:
            try:
                data, peer = srv.recvfrom(2048)
                srv.sendto(data.upper(), peer)
            except OSError:
                pass
        threading.Thread(target=echo, daemon=True).start()
    c = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(2.0)
    try:
        c.connect((SERVER_V4, port))
        c.send(b"hello")
        return c.recv(2048)
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    finally:
        c.close()
        if srv is not None:
            srv.close()


def _ping(lab: Topology, role: str, dst: str, count: int = 1) -> bool:
    r = lab.run(role, ["ping", "-c", str(count), "-i", "0.2", "-W", "1", dst], check=False)
    return r.returncode == 0


# -- tests without a kernel ---------------------------------------------------------------
def test_nfqueue_wire_format(tmp_path: Path) -> None:
    """A packet message as the kernel builds it parses; verdicts are laid out as
    nfnetlink_queue expects (individual ones first, then one batch accept)."""
    import struct
    from statewall.io import nfqueue as n

    def attr(t: int, data: bytes) -> bytes:
        ln = 4 + len(data)
        return struct.pack("=HH", ln, t) + data + b"\0" * ((4 - ln % 4) % 4)
    payload = bytes(range(45))
    attrs = (attr(n.NFQA_PACKET_HDR, struct.pack("!IHB", 77, 0x0800, 0))
             + attr(n.NFQA_IFINDEX_INDEV, struct.pack("!I", 3))
             + attr(n.NFQA_MARK, struct.pack("!I", 0xABC))
             + attr(n.NFQA_HWADDR, bytes(12))
             + attr(n.NFQA_PAYLOAD, payload))
    msg = struct.pack("=IHHII", 20 + len(attrs), (3 << 8) | 0, 0, 0, 0) + bytes(4) + attrs
    assert n.parse_packet(msg, 20, len(msg)) == (77, 0, 0xABC, 3, 0, payload)
    assert n.parse_packet(msg[:20] + attr(n.NFQA_PAYLOAD, b"x"), 20, 28) is None

    class Sock:
        sent: list[bytes] = []

        def send(self, data: bytes) -> int:
            self.sent.append(data)
            return len(data)

    class Q:
        queue = 5
        sock = Sock()
    v = n.Verdicts(Q())  # type: ignore[arg-type]
    v.accept_upto(10)
    v.add(11, n.NF_DROP)
    v.add(12, n.NF_ACCEPT, mark=7, payload=b"new")
    v.accept_upto(13)
    v.flush()
    data = Q.sock.sent[0]
    msgs = []
    off = 0
    while off < len(data):
        ln, typ, flags = struct.unpack_from("=IHH", data, off)
        res_id = struct.unpack_from("!H", data, off + 18)[0]
        vhdr = struct.unpack_from("!II", data, off + 24)
        msgs.append((typ & 0xFF, res_id, vhdr, data[off + 32:off + ln]))
        off += (ln + 3) & ~3
    assert [(m[0], m[1], m[2]) for m in msgs] == [
        (n.NFQNL_MSG_VERDICT, 5, (n.NF_DROP, 11)),
        (n.NFQNL_MSG_VERDICT, 5, (n.NF_ACCEPT, 12)),
        (n.NFQNL_MSG_VERDICT_BATCH, 5, (n.NF_ACCEPT, 13))]
    assert msgs[1][3] == attr(n.NFQA_MARK, struct.pack("!I", 7)) + attr(n.NFQA_PAYLOAD, b"new")
    proc = tmp_path / "nfnetlink_queue"
    proc.write_text("    0  25678     3 2 65531     9     4       14  1\n")
    assert n.kernel_counters(str(proc))[0]["queue_dropped"] == 9
    assert n.kernel_counters(str(proc))[0]["user_dropped"] == 4


def test_queue_ranges_and_state_paths() -> None:
    from statewall.live.config import Config, parse_queues
    assert parse_queues("3") == (3, 3) and parse_queues("0-3") == (0, 3)
    for bad in ("x", "3-1", "-1", "0-70000"):
        with pytest.raises(ValueError):
            parse_queues(bad)
    assert Config(state_file="/s").state_path(0) == "/s"
    assert Config(state_file="/s", first_queue=0, last_queue=1).state_path(1) == "/s.1"


# -- tests in the lab -------------------------------------------------------------------------
def test_print_kernel_setup(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--print-kernel-setup"]) == 0
    out = capsys.readouterr().out
    assert "iptables-restore --noflush" in out and "ip6tables-restore --noflush" in out
    assert "-A statewall-pre -j CT --notrack" in out
    assert "-j NFQUEUE --queue-num 0" in out and "--queue-bypass" not in out
    assert f"--gid-owner {KernelSetup().inject_gid} -j ACCEPT" in out
    assert cli_main(["run", "--print-kernel-setup", "--queues", "2-3", "--fail-open",
                     "--no-ipv6"]) == 0
    out = capsys.readouterr().out
    assert "--queue-balance 2:3 --queue-bypass" in out and "ip6tables" not in out
    assert cli_main(["run", "--print-kernel-setup", "--kernel-backend", "nft"]) == 0
    out = capsys.readouterr().out
    assert "notrack" in out and "queue num 0" in out and "meta skgid" in out
    assert cli_main(["run", "--queues", "3-1", "--print-kernel-setup"]) == 2


def test_client_reaches_server_but_not_the_other_way(lab: Topology, daemon: Daemon) -> None:
    daemon.start()
    assert _kernel_rules_present(lab)
    # ping, HTTP with curl, a UDP exchange: client -> server
    assert _ping(lab, "client", SERVER_V4, 2)
    # fragmented: the kernel reassembles before the queue, statewall decides the datagram
    r = lab.run("client", ["ping", "-c", "1", "-W", "2", "-s", "3000", SERVER_V4], check=False)
    assert r.returncode == 0, r.stdout
    web = TcpServer(lab, 8080, "echo")
    http = subprocess.Popen(
        lab.argv("server", [sys.executable, "-c",
                            "import http.server,socketserver;"
                            "h=http.server.HTTPServer(('203.0.113.2',8081),"
                            "http.server.SimpleHTTPRequestHandler);print('up',flush=True);"
                            "h.handle_request()"]),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(daemon.dir))
    try:
        assert http.stdout is not None and http.stdout.readline().strip() == b"up"
        if shutil.which("curl") is None:      # the Makefile installs it; say so if not
            pytest.fail("curl is not installed (Debian package curl)")
        r = lab.run("client", ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w",
                               "%{http_code}", f"http://{SERVER_V4}:8081/rules.v4"],
                    check=False)
        assert r.stdout == "200", r
    finally:
        http.kill()
        http.wait()
    assert _udp_exchange(lab, 5353) == b"HELLO"
    # RELATED: nobody listens on the server's port 5354; its ICMP port unreachable passes
    assert _udp_exchange(lab, 5354, listen=False) == "refused"
    # server -> client: TCP dropped (FORWARD policy), ping dropped
    listener = TcpServer(lab, 9090, "echo", role="client", addr=CLIENT_V4)
    with pytest.raises((socket.timeout, TimeoutError)):
        _connect(lab, "server", CLIENT_V4, 9090, timeout=1.0)
    assert listener.accepted == 0
    assert not _ping(lab, "server", CLIENT_V4)
    # UDP from the server is REJECTed: statewall's ICMP error reaches the server
    s = lab.socket("server", socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    s.connect((CLIENT_V4, 7777))
    s.send(b"x")
    with pytest.raises(ConnectionRefusedError):
        s.recv(100)
    s.close()
    web.close()
    listener.close()
    st = json.loads(_status(daemon))
    c = st["workers"]["0"]["counters"]
    assert c["reject_sent"] >= 1 and c["dropped"] >= 2 and c["errors"] == 0
    daemon.stop()
    assert not _kernel_rules_present(lab)
    trace = daemon.trace_lines()
    states = {(t["ctstate"], t["verdict"]) for t in trace if t["hook"] == "PREROUTING"}
    assert ("RELATED", "ACCEPT") in states and ("NEW", "ACCEPT") in states
    sources = {t["source"] for t in trace if t["verdict"] == "DROP"}
    assert sources == {"filter/FORWARD policy", "filter/FORWARD#5"}      # #5: the REJECT
    assert "kernel rules removed" in daemon.text()


def _status(daemon: Daemon) -> str:
    r = subprocess.run([sys.executable, "-m", "statewall", "status", "--control",
                        daemon.control], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_ipv6(lab: Topology, tmp_path: Path) -> None:
    rules6 = tmp_path / "rules.v6"
    rules6.write_text(SEED_RULES.replace("icmp-port-unreachable", "icmp6-port-unreachable"))
    d = Daemon(lab, tmp_path, "--rules6", str(rules6))
    try:
        d.start()
        assert _ping(lab, "client", SERVER_V6)
        srv = lab.socket("server", socket.AF_INET6, socket.SOCK_STREAM)
        srv.bind((SERVER_V6, 7005))
        srv.listen(1)
        c = lab.socket("client", socket.AF_INET6, socket.SOCK_STREAM)
        c.settimeout(3)
        c.connect((SERVER_V6, 7005))
        a, _ = srv.accept()
        c.sendall(b"six")
        assert a.recv(10) == b"six"
        for x in (a, c, srv):
            x.close()
        assert not _ping(lab, "server", CLIENT_V6)
        u = lab.socket("server", socket.AF_INET6, socket.SOCK_DGRAM)
        u.settimeout(2)
        u.connect((CLIENT_V6, 7777))
        u.send(b"x")
        with pytest.raises(ConnectionRefusedError):      # statewall's ICMPv6 error
            u.recv(10)
        u.close()
    finally:
        if d.p is not None:
            d.stop()
        _remove_kernel_rules(lab)


def test_invalid_is_dropped(lab: Topology, daemon: Daemon) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.packet import raw
    daemon.start()
    raw_sock = lab.socket("client", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    bad = [raw(IP(src=CLIENT_V4, dst=SERVER_V4) / TCP(sport=41000, dport=80, flags="SF")),
           raw(IP(src=CLIENT_V4, dst=SERVER_V4) / TCP(sport=41001, dport=80, flags="FPU"))]
    ack = raw(IP(src=CLIENT_V4, dst=SERVER_V4) / TCP(sport=41002, dport=80, flags="A",
                                                      seq=5, ack=7))
    for p in bad + [ack]:
        raw_sock.sendto(p, (SERVER_V4, 0))
    raw_sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [t for t in daemon.trace_lines() if t["hook"] == "PREROUTING"
                 and t["iface"] == "c0"]
        if len(lines) >= 3:
            break
        time.sleep(0.05)
    daemon.stop()
    import hashlib
    by_sha = {t["sha1"]: t for t in daemon.trace_lines()}
    for p in bad:
        t = by_sha[hashlib.sha1(p).hexdigest()]
        assert (t["ctstate"], t["verdict"]) == ("INVALID", "DROP"), t
        assert t["source"] == "filter/FORWARD#1"
    # NEW without SYN: Henrik Nordstrom's rule (the entry dies with the packet, so the
    # trace, like replay's, shows no entry for it any more)
    t = by_sha[hashlib.sha1(ack).hexdigest()]
    assert (t["verdict"], t["source"]) == ("DROP", "filter/FORWARD#3")


def test_reload_keeps_established_and_refuses_broken_rules(lab: Topology,
                                                           daemon: Daemon) -> None:
    daemon.start()
    srv = TcpServer(lab, 7000, "echo")
    try:
        s = _connect(lab, "client", SERVER_V4, 7000)
        assert _echo(s, b"before") == b"before"
        daemon.rules.write_text(CLOSED_RULES)
        assert cli_main(["reload", "--control", daemon.control]) == 0
        assert "rules reloaded" in daemon.wait_for("rules reloaded")
        assert _echo(s, b"after reload") == b"after reload"        # established lives on
        with pytest.raises((socket.timeout, TimeoutError)):
            _connect(lab, "client", SERVER_V4, 7000, timeout=1.0)  # new ones are refused
        # a broken rule set is refused whole: the running one stays
        daemon.rules.write_text(BROKEN_RULES)
        assert cli_main(["reload", "--control", daemon.control]) == 1
        assert "reload refused" in daemon.text()
        assert _echo(s, b"still") == b"still"
        # SIGHUP does the same as statewall reload
        daemon.rules.write_text(SEED_RULES)
        assert daemon.p is not None
        os.kill(daemon.p.pid, signal.SIGHUP)
        daemon.wait_for("q0: rules reloaded")
        s2 = _connect(lab, "client", SERVER_V4, 7000)
        assert _echo(s2, b"open again") == b"open again"
        s2.close()
        s.close()
    finally:
        srv.close()


def test_restart_mid_transfer_keeps_the_connection(lab: Topology, daemon: Daemon) -> None:
    size = 24 << 20
    srv = TcpServer(lab, 7001, "blob", size=size, seconds=3.0)
    daemon.start()
    try:
        s = _connect(lab, "client", SERVER_V4, 7001, timeout=10.0)
        got = 0
        box: dict[str, Any] = {}

        def read() -> None:
            nonlocal got
            try:
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
            except OSError as e:
                box["err"] = e
        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 5
        while got < size // 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert size // 8 <= got < size
        daemon.stop()                                   # SIGTERM: the table is saved
        assert "state saved entries=" in daemon.text()
        at_stop = got
        before = len(daemon.trace_lines())
        daemon.start()
        new = daemon.wait_for("running")
        assert "state restored" in new and "entries=0 " not in new, new
        reader.join(20)
        assert not reader.is_alive() and "err" not in box, box
        assert got == size and at_stop < size
        s.close()
    finally:
        srv.close()
    daemon.stop()
    # after the restart the transfer's packets are ESTABLISHED: the restored entry
    after = [t for t in daemon.trace_lines()[before:] if t["hook"] == "PREROUTING"
             and t["iface"] in ("c0", "s0") and t["path"] and "FORWARD" in t["path"]]
    assert len(after) > 100 and all(t["verdict"] == "ACCEPT" for t in after)
    assert {t["ctstate"] for t in after} == {"ESTABLISHED"}


def test_crash_loses_at_most_a_checkpoint(lab: Topology, tmp_path: Path) -> None:
    """Checkpoints every 0.3 s; kill -9; the restart restores the last checkpoint and the
    connection opened before it goes on (the leftover kernel rules are replaced)."""
    d = Daemon(lab, tmp_path, "--checkpoint", "0.3")
    srv = TcpServer(lab, 7004, "echo")
    try:
        d.start()
        s = _connect(lab, "client", SERVER_V4, 7004)
        assert _echo(s, b"one") == b"one"
        time.sleep(0.8)
        assert d.state.exists()
        d.kill()
        assert _kernel_rules_present(lab)
        d.start()
        new = d.wait_for("running")
        assert "state restored" in new and "entries=0 " not in new, new
        assert _echo(s, b"two") == b"two"
        s.close()
    finally:
        srv.close()
        if d.p is not None:
            d.stop()
        _remove_kernel_rules(lab)


def test_kill_fails_closed(lab: Topology, daemon: Daemon) -> None:
    daemon.start()
    assert _ping(lab, "client", SERVER_V4)
    daemon.kill()
    assert _kernel_rules_present(lab)                   # nobody removed them
    assert not _ping(lab, "client", SERVER_V4)          # and nobody listens: dropped


def test_kill_fails_open_with_fail_open(lab: Topology, tmp_path: Path) -> None:
    d = Daemon(lab, tmp_path, "--fail-open")
    try:
        d.start()
        assert _ping(lab, "client", SERVER_V4)
        assert not _ping(lab, "server", CLIENT_V4)      # statewall's rules apply
        d.kill()
        assert _kernel_rules_present(lab)
        assert _ping(lab, "client", SERVER_V4)          # bypass: the kernel passes it
        assert _ping(lab, "server", CLIENT_V4)          # unfiltered now
    finally:
        if d.p is not None:
            d.stop()
        _remove_kernel_rules(lab)


def test_two_queues(lab: Topology, tmp_path: Path) -> None:
    d = Daemon(lab, tmp_path, "--queues", "0-1")
    try:
        d.start()
        assert "worker ready queue=0" in d.text() and "worker ready queue=1" in d.text()
        assert _ping(lab, "client", SERVER_V4)
        srv = TcpServer(lab, 7002, "echo")
        s = _connect(lab, "client", SERVER_V4, 7002)
        assert _echo(s, b"two queues") == b"two queues"
        s.close()
        srv.close()
        assert _udp_exchange(lab, 5355) == b"HELLO"
        # RELATED ICMP errors whatever queue the kernel hashes them to (IPv4 and IPv6:
        # the error is (server, client, ICMP), its flow (client, server, UDP))
        for port in (5358, 5359):
            assert _udp_exchange(lab, port, listen=False) == "refused"
        u = lab.socket("client", socket.AF_INET6, socket.SOCK_DGRAM)
        u.settimeout(2)
        u.connect((SERVER_V6, 5360))
        u.send(b"x")
        with pytest.raises(ConnectionRefusedError):
            u.recv(10)
        u.close()
        assert not _ping(lab, "server", CLIENT_V4)
        st = json.loads(_status(d))
        assert sorted(st["workers"]) == ["0", "1"]
        assert sum(w["counters"]["packets"] for w in st["workers"].values()) > 0
        for w in st["workers"].values():
            assert w["pid"] > 0 and w["counters"]["errors"] == 0
        # a worker that dies is restarted (its queue fails closed meanwhile)
        os.kill(st["workers"]["1"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while d.text().count("worker ready queue=1") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "worker restarted" in d.text() and d.text().count("worker ready queue=1") == 2
        assert _ping(lab, "client", SERVER_V4)
        assert _udp_exchange(lab, 5361) == b"HELLO"
        d.stop()
        assert (tmp_path / "state.0").exists() and (tmp_path / "state.1").exists()
    finally:
        if d.p is not None:
            d.stop()
        _remove_kernel_rules(lab)


def test_no_kernel_setup_and_queue_overflow_reported(lab: Topology, tmp_path: Path) -> None:
    """--no-kernel-setup installs nothing; the admin installs what --print-kernel-setup
    prints. A tiny queue overflows under a burst: counted and reported."""
    d = Daemon(lab, tmp_path, "--no-kernel-setup", "--queue-maxlen", "2", "--no-ipv6")
    try:
        d.start()
        assert not _kernel_rules_present(lab)
        assert "left to the admin" in d.text()
        text = subprocess.run([sys.executable, "-m", "statewall", "run", "--print-kernel-setup",
                               "--no-ipv6"], capture_output=True, text=True).stdout
        body = text.split("<<'EOF'\n", 1)[1].split("EOF\n", 1)[0]
        lab.run("fw", ["iptables-restore", "--noflush"], input=body)
        assert _ping(lab, "client", SERVER_V4)
        u = lab.socket("client", socket.AF_INET, socket.SOCK_DGRAM)
        u.setblocking(False)
        for i in range(3000):
            try:
                u.sendto(b"burst", (SERVER_V4, 9999))
            except BlockingIOError:
                pass
        u.close()
        time.sleep(0.3)
        st = json.loads(_status(d))["workers"]["0"]
        assert st["queue_overflow"] > 0, st
        d.stop()
        assert _kernel_rules_present(lab)              # the admin's rules stay
        assert "queue_overflow=" in d.text() and "<4>q0: stats" in d.text()
    finally:
        if d.p is not None:
            d.stop()
        _remove_kernel_rules(lab)


def test_second_instance_refused(lab: Topology, daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    argv = [sys.executable, "-m", "statewall", "run", "--rules", str(daemon.rules),
            "--stats-interval", "0"]
    r = lab.run("fw", argv + ["--control", daemon.control], check=False)
    assert r.returncode == 1 and "another statewall is running" in r.stderr, r.stderr
    other = tmp_path / "other"
    other.mkdir()
    r = lab.run("fw", argv + ["--control", str(other / "ctl")], check=False)
    assert r.returncode == 1 and "cannot bind NFQUEUE 0" in r.stderr, r.stderr
    assert _kernel_rules_present(lab)                   # the first one's rules stay
    assert _ping(lab, "client", SERVER_V4)
    assert json.loads(_status(daemon))["ok"]
    assert cli_main(["run", "--queue", "0"]) == 2        # no --rules: refused


def test_corrupt_state_file_is_set_aside(lab: Topology, daemon: Daemon) -> None:
    daemon.state.write_bytes(b'{"magic": "statewall-state", "version": 1}\nnonsense')
    daemon.start()
    assert "state file not trusted" in daemon.text()
    assert not daemon.state.exists()
    assert any(p.name.startswith("state.bad-") for p in daemon.dir.iterdir())
    assert _ping(lab, "client", SERVER_V4)


def test_capture_on_the_firewall_replays_to_the_same_verdicts(lab: Topology,
                                                               daemon: Daemon) -> None:
    """tcpdump on fw's interfaces (arriving packets) while statewall decides; the capture
    through ``statewall replay`` with the same rules gives every packet the verdict and
    state statewall gave it live."""
    import hashlib

    from scapy.layers.inet import IP, TCP
    from scapy.packet import raw
    from statewall.io.capture import PcapngWriter, open_capture
    from statewall.packet.link import l3_offset
    daemon.start()
    caps = {}
    dumps = []
    for ifname in ("c0", "s0"):
        caps[ifname] = daemon.dir / f"{ifname}.pcap"
        dumps.append(lab.popen("fw", ["tcpdump", "-i", ifname, "-Q", "in", "-U",
                                      "--immediate-mode", "-n",
                                      "-w", str(caps[ifname])],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL))
    for p in dumps:
        assert p.stderr is not None
        line = p.stderr.readline()
        assert b"listening" in line, line
    srv = TcpServer(lab, 7003, "echo")
    try:
        assert _ping(lab, "client", SERVER_V4, 2)
        s = _connect(lab, "client", SERVER_V4, 7003)
        assert _echo(s, b"capture me") == b"capture me"
        s.close()
        assert _udp_exchange(lab, 5356) == b"HELLO"
        assert _udp_exchange(lab, 5357, listen=False) == "refused"
        assert not _ping(lab, "server", CLIENT_V4)
        raw_sock = lab.socket("client", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw_sock.sendto(raw(IP(src=CLIENT_V4, dst=SERVER_V4) / TCP(sport=41003, flags="SF")),
                        (SERVER_V4, 0))
        raw_sock.close()
        time.sleep(0.3)
    finally:
        srv.close()
        for p in dumps:
            lab.stop(p, signal.SIGINT, timeout=5)
    daemon.stop()
    # merge the two captures by time into one pcapng with interface names
    frames = []
    for ifname, path in caps.items():
        with open_capture(str(path)) as cap:
            for fr in cap:
                frames.append((fr.ts, ifname, fr.linktype, fr.data))
    frames.sort(key=lambda f: f[0])
    merged = daemon.dir / "merged.pcapng"
    with open(merged, "wb") as f:
        w = PcapngWriter(f)
        for ts, ifname, lt, data in frames:
            w.write(data, int(ts * 1e9), w.interface(ifname, lt))
    out = daemon.dir / "replay.trace"
    assert cli_main(["replay", str(merged), "--rules", str(daemon.rules),
                     "--iface", f"c0={FW_CLIENT_V4}/24", "--iface", f"s0={FW_SERVER_V4}/24",
                     "--trace", str(out), "--progress", "never"]) == 0
    replayed = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(replayed) == len(frames)
    by_sha: dict[str, list[tuple[str, str | None]]] = {}
    for (ts, ifname, lt, data), r in zip(frames, replayed):
        off, ethertype = l3_offset(lt, data)[:2]
        if ethertype not in (0x0800, 0x86DD):
            continue
        key = hashlib.sha1(data[off:]).hexdigest()
        by_sha.setdefault(key, []).append((r["verdict"], r["ctstate"]))
    live: dict[str, list[tuple[str, str | None]]] = {}
    for t in daemon.trace_lines():
        if t["hook"] == "PREROUTING" and t["iface"] in caps:     # not lo
            live.setdefault(t["sha1"], []).append((t["verdict"], t["ctstate"]))
    assert live and set(live) == set(by_sha)
    assert live == by_sha
    verdicts = {v for vs in live.values() for v in vs}
    assert ("DROP", "INVALID") in verdicts and ("ACCEPT", "RELATED") in verdicts
    assert ("ACCEPT", "NEW") in verdicts and ("ACCEPT", "ESTABLISHED") in verdicts
