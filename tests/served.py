"""Test helper: a control server (statewall.ctl.server.CtlServer) answering from a thread
over a table the test owns, as a worker's packet loop answers its socket."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from statewall.conntrack.core import Tracker
from statewall.ctl.server import CtlServer


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
