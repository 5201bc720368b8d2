"""The supervisor: starts one worker process per queue, owns the kernel setup, forwards
reloads, restarts a worker that died, stops everything cleanly.

Owns: the process tree (``statewall run`` is the supervisor; each worker is a forked child
bound to one queue, killed by the kernel if the supervisor dies), the order of start-up
(rules checked, workers bound and restored, then the kernel rules installed, so no packet
is queued to a queue nobody listens on) and of shutdown (workers save and exit, then the
kernel rules go), SIGHUP / ``statewall reload`` (the rule files are checked here first: a
rule set with any error is refused whole and every worker keeps the running one), the
control socket (``reload``, ``status``), worker restarts with back-off.
Must not know: packets.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import time
import typing
from typing import Any, Callable, Final

from ..ctl import server as ctl_server
from . import log as swlog
from . import prune
from .config import Builder, Config, Loader, RulesError, build_firewall, load_rules
from .iptables import install_supervisor as install_iptables
from .kernel import KernelSetup, KernelSetupError

if typing.TYPE_CHECKING:
    from .metrics_http import MetricsServer

READY_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 60.0


class _Child:
    __slots__ = ("queue", "pid", "rfile", "buf", "ready", "started", "failures", "replies")

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self.pid = 0
        self.rfile = -1
        self.buf = b""
        self.ready = False
        self.started = 0.0
        self.failures = 0
        self.replies: list[dict[str, Any]] = []


class Supervisor:
    def __init__(self, cfg: Config, loader: Loader = load_rules,
                 builder: Builder = build_firewall) -> None:
        self.cfg = cfg
        self.loader = loader
        self.builder = builder
        self.log = swlog.setup("supervisor", cfg.log_level)
        self.children = {q: _Child(q) for q in cfg.queues}
        self.stopping = False
        self.reload_wanted = False
        self.kernel = KernelSetup(cfg.first_queue, cfg.last_queue, cfg.fail_open,
                                  ipv6=cfg.ipv6, backend=cfg.backend, nat=_has_nat(cfg))
        self.kernel_installed = False
        self.ctl: socket.socket | None = None
        self.ctl_conns: ctl_server.LineConns | None = None     # its clients (no blocking)
        self.restart_at: dict[int, float] = {}
        self.metrics: MetricsServer | None = None  # --metrics: live/metrics_http.py
        # control socket: first word of the request line -> handler(line) -> reply object
        self.commands: dict[str, Callable[[str], dict[str, Any]]] = {
            "reload": lambda line: prune.supervisor_reload(self, line),   # [--prune]
            "status": lambda line: self.status(),
            "conntrack": lambda line: ctl_server.forward(line, self.worker_paths()),
            # statewall top: the client asks every worker itself (top/snapshot.py)
            "top": lambda line: {"ok": True, "workers": self.worker_paths()},
        }
        self.iptables = install_iptables(self)   # statewall iptables: the edited rule set

    # -- processes ----------------------------------------------------------------------
    def _spawn(self, ch: _Child) -> None:
        from .worker import run_worker
        r, w = os.pipe()
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                for other in self.children.values():
                    if other.rfile >= 0:
                        os.close(other.rfile)
                if self.ctl_conns is not None:
                    for c in self.ctl_conns.fds():   # (the child's copies only)
                        c.close()
                if self.ctl is not None:
                    self.ctl.close()
                if self.metrics is not None:
                    self.metrics.close(forked=True)
                code = run_worker(self.cfg, ch.queue, self.iptables.worker_loader(self.loader),
                                  self.builder, w, me)
            finally:
                os._exit(code)
        os.close(w)
        os.set_blocking(r, False)
        ch.pid = pid
        ch.rfile = r
        ch.buf = b""
        ch.ready = False
        ch.started = time.monotonic()

    def _messages(self, ch: _Child) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            while True:
                data = os.read(ch.rfile, 65536)
                if not data:
                    break
                ch.buf += data
        except BlockingIOError:
            pass
        while b"\n" in ch.buf:
            line, ch.buf = ch.buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append(msg)
        return out

    def _handle(self, ch: _Child, msg: dict[str, Any]) -> None:
        kind = msg.get("kind")
        if kind == "ready":
            ch.ready = True
        elif kind in ("reload", "status"):
            ch.replies.append(msg)
        elif kind == "failed":
            self.log.error(f"worker q{ch.queue} failed to start: {msg.get('error')}")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for ch in self.children.values():
                if ch.pid == pid:
                    code = os.waitstatus_to_exitcode(status)
                    ch.pid = 0
                    for m in self._messages(ch):
                        self._handle(ch, m)
                    if ch.rfile >= 0:
                        os.close(ch.rfile)
                        ch.rfile = -1
                    if not self.stopping:
                        ch.failures += 1
                        delay = min(30.0, 0.5 * 2 ** min(ch.failures - 1, 6))
                        self.restart_at[ch.queue] = time.monotonic() + delay
                        swlog.event(logging.ERROR, "worker died; its queue fails "
                                    + ("open" if self.cfg.fail_open else "closed")
                                    + " until it is back", queue=ch.queue, exit=code,
                                    restart_in=f"{delay:.1f}s")

    # -- start --------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        try:
            self.iptables.base(self.loader(cfg))  # refuse bad rules before anything else
        except RulesError as e:
            self.log.error(f"rules refused: {e}")
            return 2
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        if cfg.control:
            try:
                self._open_control(cfg.control)
            except (RuntimeError, OSError) as e:
                self.log.error(f"control socket: {e}")
                return 1
        if cfg.metrics and not self._open_metrics(cfg.metrics):
            return 1
        try:
            for ch in self.children.values():
                self._spawn(ch)
            if not self._wait_ready():
                return 1
            if cfg.kernel_setup:
                try:
                    self.kernel.apply()
                    self.kernel_installed = True
                except KernelSetupError as e:
                    self.log.error(f"kernel setup failed: {e}")
                    return 1
                swlog.event(logging.INFO, "kernel rules installed", backend=cfg.backend,
                            queues=f"{cfg.first_queue}-{cfg.last_queue}",
                            fail_open=cfg.fail_open)
            else:
                swlog.event(logging.INFO, "kernel rules left to the admin "
                            "(statewall run --print-kernel-setup shows them)")
            swlog.event(logging.INFO, "running", workers=len(self.children), pid=os.getpid())
            sd_notify("READY=1")
            self._loop(wake_r)
            sd_notify("STOPPING=1")
            return 0
        finally:
            self._stop_all()
            if self.ctl_conns is not None:
                self.ctl_conns.close()
            if self.ctl is not None:
                self.ctl.close()
                try:
                    os.unlink(cfg.control or "")
                except OSError:
                    pass
            if self.metrics is not None:
                self.metrics.close()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self.stopping:
            pending = [ch for ch in self.children.values() if not ch.ready]
            if not pending:
                return True
            fds = [ch.rfile for ch in pending if ch.rfile >= 0]
            if not fds:
                break
            select.select(fds, [], [], 0.2)
            for ch in pending:
                if ch.rfile >= 0:
                    for m in self._messages(ch):
                        self._handle(ch, m)
            self._reap()
            if any(ch.pid == 0 for ch in self.children.values()):
                self.log.error("a worker exited during start-up")
                return False
        if not self.stopping:
            self.log.error("workers did not become ready")
        return False

    # -- signals and control --------------------------------------------------------------
    def _on_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reload_wanted = True

    def _open_control(self, path: str) -> None:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise RuntimeError(f"another statewall is running (its control socket {path} "
                               "answers)")
        except OSError:
            pass                                  # nobody there: a leftover, or nothing
        finally:
            probe.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, 0o600)
        s.listen(64)
        s.setblocking(False)
        self.ctl = s
        self.ctl_conns = ctl_server.LineConns(s)

    def _control(self, conn: socket.socket, line: str) -> dict[str, Any]:
        """One request of the control socket (``LineConns`` reads and answers it)."""
        cmd = line.strip()
        h = self.commands.get(cmd.split(" ", 1)[0])
        if h is not None:
            return h(cmd)
        return {"ok": False, "error": f"unknown command {cmd!r} "
                f"({', '.join(sorted(self.commands))})"}

    def _open_metrics(self, listen: str) -> bool:
        from .metrics_http import MetricsServer, parse_listen
        try:
            host, port = parse_listen(listen)
            self.metrics = MetricsServer(host, port, lambda: [
                (q, ctl_server.worker_path(self.cfg.control or "", q)
                 if ch.pid and ch.ready and self.cfg.control else None)
                for q, ch in sorted(self.children.items())])
        except (ValueError, OSError) as e:
            self.log.error(f"metrics endpoint {listen}: {e}")
            return False
        swlog.event(logging.INFO, "metrics endpoint listening",
                    url=f"http://{self.metrics.address}/metrics")
        return True

    def worker_paths(self) -> list[str]:
        """The control sockets of the workers that are up (one table each)."""
        return [ctl_server.worker_path(self.cfg.control or "", q)
                for q, ch in sorted(self.children.items()) if ch.pid and ch.ready]

    def _collect(self, kind: str, timeout: float) -> dict[int, dict[str, Any]]:
        """Wait for one ``kind`` reply from every live worker."""
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [ch for ch in self.children.values() if ch.pid and ch.queue not in got]
            if not live:
                break
            select.select([ch.rfile for ch in live if ch.rfile >= 0], [], [], 0.1)
            for ch in live:
                for m in self._messages(ch):
                    self._handle(ch, m)
                for m in list(ch.replies):
                    if m.get("kind") == kind:
                        got[ch.queue] = m
                        ch.replies.remove(m)
        return got

    def reload(self) -> dict[str, Any]:
        sd_notify("RELOADING=1")
        try:
            return self._reload()
        finally:
            sd_notify("READY=1")

    def _reload(self) -> dict[str, Any]:
        try:
            rules = self.loader(self.cfg)
        except RulesError as e:
            swlog.event(logging.ERROR, "reload refused, the running rules stay", error=str(e))
            return {"ok": False, "error": str(e)}
        for ch in self.children.values():
            ch.replies.clear()
            if ch.pid:
                os.kill(ch.pid, signal.SIGHUP)
        got = self._collect("reload", 30.0)
        bad = {q: m.get("error") for q, m in got.items() if not m.get("ok")}
        missing = [q for q, ch in self.children.items() if ch.pid and q not in got]
        ok = not bad and not missing
        if ok:
            self.iptables.base(rules)            # the files replace statewall iptables edits
            swlog.event(logging.INFO, "rules reloaded", workers=len(got))
        return {"ok": ok, "workers": len(got), "errors": bad, "no_answer": missing}

    def status(self) -> dict[str, Any]:
        for ch in self.children.values():
            ch.replies.clear()
            if ch.pid:
                os.kill(ch.pid, signal.SIGUSR1)
        got = self._collect("status", 5.0)
        return {"ok": True, "kernel_rules": self.kernel_installed,
                "workers": {str(q): {k: v for k, v in m.items() if k not in ("kind",)}
                            for q, m in got.items()},
                "down": [q for q, ch in self.children.items() if not ch.pid]}

    # -- the loop -----------------------------------------------------------------------
    def _loop(self, wake: int) -> None:
        while not self.stopping:
            fds = [wake] + [ch.rfile for ch in self.children.values() if ch.rfile >= 0]
            wait = 1.0
            if self.ctl is not None and self.ctl_conns is not None:
                fds.append(self.ctl.fileno())
                fds += [c.fileno() for c in self.ctl_conns.pending]
                if self.ctl_conns.outgoing:
                    wait = 0.01                   # a reply still leaving
            if self.metrics is not None:          # --metrics (live/metrics_http.py)
                fds.append(self.metrics.fileno())
                wait = self.metrics.wait(wait)
            try:
                r, _, _ = select.select(fds, [], [], wait)
            except InterruptedError:
                r = []
            if self.metrics is not None:
                self.metrics.poll()
            if wake in r:
                try:
                    while os.read(wake, 512):
                        pass
                except BlockingIOError:
                    pass
            for ch in self.children.values():
                if ch.rfile in r:
                    for m in self._messages(ch):
                        self._handle(ch, m)
            self._reap()
            if self.ctl_conns is not None:       # control clients (reload, status, ...)
                self.ctl_conns.poll(self._control)
            if self.reload_wanted:
                self.reload_wanted = False
                self.reload()
            now = time.monotonic()
            for q, at in list(self.restart_at.items()):
                if now >= at and not self.stopping:
                    del self.restart_at[q]
                    ch = self.children[q]
                    self._spawn(ch)
                    swlog.event(logging.INFO, "worker restarted", queue=q)
            for ch in self.children.values():
                if ch.pid and ch.ready and now - ch.started > 60:
                    ch.failures = 0

    def _stop_all(self) -> None:
        self.stopping = True
        for ch in self.children.values():
            if ch.pid:
                try:
                    os.kill(ch.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(ch.pid for ch in self.children.values()) and time.monotonic() < deadline:
            for ch in self.children.values():
                if ch.rfile >= 0:
                    for m in self._messages(ch):
                        self._handle(ch, m)
            self._reap()
            time.sleep(0.02)
        for ch in self.children.values():
            if ch.pid:
                self.log.error(f"worker q{ch.queue} did not stop; killed")
                try:
                    os.kill(ch.pid, signal.SIGKILL)
                    os.waitpid(ch.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                ch.pid = 0
        if self.kernel_installed:
            problems = self.kernel.remove()
            for p in problems:
                self.log.error(f"removing the kernel rules: {p}")
            if not problems:
                swlog.event(logging.INFO, "kernel rules removed")
            self.kernel_installed = False
        swlog.event(logging.INFO, "stopped")


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) where we are; nothing without $NOTIFY_SOCKET."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(state.encode())
    except OSError:
        pass


def control_request(path: str, command: str, timeout: float = 60.0) -> dict[str, Any]:
    """Send one command to a running supervisor's control socket; its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        data = ctl_server.read_reply(s)
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise ValueError("bad reply")
    return reply


def _has_nat(cfg: Config) -> bool:
    """Does a rule file of ``cfg`` load a nat table? (a ``*nat`` line, as iptables-restore)"""
    for path in (cfg.rules4, cfg.rules6):
        if not path:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                if any(line.strip() == "*nat" for line in f):
                    return True
        except OSError:
            continue
    return False
