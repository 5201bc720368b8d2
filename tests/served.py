"""Test helpers for the control plane: a control server (statewall.ctl.server.CtlServer)
answering from a thread over a table the test owns, as a worker's packet loop answers its
socket (``Served``); a real ``statewall run`` in a scratch namespace (``scratch_daemon``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest

from statewall.conntrack.core import Tracker
from statewall.ctl.server import CtlServer, worker_path


class Served:
    """``CtlServer(path, table, clock)`` stepped in a daemon thread every ``interval``
    seconds. ``tracker``: the table (a new one when None); ``handlers``: extra request
    words; ``on_step`` runs in the server thread after every step (a worker flushes its
    ``-E`` lines there). ``close()`` stops the thread and the socket."""

    def __init__(self, path: str, tracker: Tracker | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 handlers: dict[str, Callable[[str, float], dict[str, Any]]] | None = None,
                 interval: float = 0.05,
                 table: Callable[[], Tracker] | None = None) -> None:
        self.tracker = tracker if tracker is not None else Tracker()
        self.srv = CtlServer(path, table or (lambda: self.tracker), clock)
        for word, fn in (handlers or {}).items():
            self.srv.handlers[word] = fn
        self.interval = interval
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def on_step(self) -> None:
        """Called in the server thread after each step."""

    def _run(self) -> None:
        while not self.stop:
            self.srv.step(self.interval)
            self.on_step()

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.srv.close()


STATEWALL = str(Path(sys.executable).with_name("statewall"))


@contextlib.contextmanager
def scratch_daemon(tmp_path: Path, rules: str, *args: str, queues: Iterable[int] = (0,),
                   tag: str = "sw-t") -> Iterator[str]:
    """A real ``statewall run --rules RULES ARGS`` without kernel rules, in a scratch network
    namespace; yields its control path once every worker of ``queues`` listens. The daemon
    is stopped and the namespace deleted at the end, also when the test fails."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    ns = f"{tag}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    p: subprocess.Popen[bytes] | None = None
    try:
        (tmp_path / "rules").write_text(rules)
        ctl = str(tmp_path / "ctl.sock")
        log = open(tmp_path / "log", "wb")
        p = subprocess.Popen(["ip", "netns", "exec", ns, STATEWALL, "run", "--rules",
                              str(tmp_path / "rules"), "--control", ctl, *args,
                              "--no-kernel-setup", "--stats-interval", "0"],
                             stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        socks = [worker_path(ctl, q) for q in queues]
        while not all(os.path.exists(x) for x in socks):
            assert p.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline, "statewall run did not start"
            time.sleep(0.05)
        yield ctl
    finally:
        if p is not None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "delete", ns], check=False)
