"""Flow records of one live worker: the listener on its tracker plus its writer.

Owns: wiring (``ecache.notifier(tracker).add`` of the DESTROY listener, the writer and its
store), the end of a worker's run: entries still in the table are *not* records when a
state file keeps them (they continue after the restart); without a state file they end
here, as ``shutdown`` records; then everything buffered is written before the worker exits.
Must not know: NFQUEUE, signals, the worker loop.
"""

from __future__ import annotations

import logging
from typing import Any

from ..conntrack import ecache
from ..conntrack.core import Tracker
from . import store
from .record import END_SHUTDOWN, listener, snapshot
from .writer import Writer


class Recorder:
    def __init__(self, target: str, tracker: Tracker, queue: int,
                 log: logging.Logger | None = None) -> None:
        self.target = target
        self.tracker = tracker
        self.log = log or logging.getLogger("statewall.flows")
        self.writer = Writer(lambda: store.open_writer(target), queue=queue, log=self.log)
        self.listen = listener(tracker, self.writer.put)
        ecache.notifier(tracker).add(self.listen)

    def close(self, now: float, keep_table: bool, timeout: float = 20.0) -> dict[str, Any]:
        """Stop listening; with ``keep_table`` False the live entries end as ``shutdown``
        records. Writes what is buffered (waits up to ``timeout`` for the database)."""
        self.tracker.expire(now)          # entries already dead end as timeouts
        ecache.notifier(self.tracker).remove(self.listen)
        if not keep_table:
            put = self.writer.put
            for ct in self.tracker.entries(now):
                put(snapshot(self.tracker, ct, now, END_SHUTDOWN))
        st = self.writer.close(timeout)
        st["db"] = store.describe(self.target)
        return st
