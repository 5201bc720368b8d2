"""The flow writer: a bounded buffer on the packet path, a thread that writes batches.

Owns: ``put`` (called from the DESTROY listener: an append to a deque, never a wait; when
the buffer is full the record is counted as lost), the background thread (wakes every
``interval`` seconds or when ``batch`` records wait, turns snapshots into rows, writes
them with one transaction per batch; a failing database is retried with backoff while the
buffer holds what arrives meanwhile), loss and error reporting (logged from the thread,
never from ``put``), and ``close`` (writes everything still buffered, then stops).
Must not know: which database (a ``connect`` callable gives the store), packets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Final

from .record import Row, Snapshot, build
from .store import Store, StoreError

BATCH: Final = 512               # records per transaction
INTERVAL: Final = 0.5            # seconds between writes when fewer than BATCH wait
MAXLEN: Final = 65536            # records buffered at most (then counted as lost)
RETRY_MAX: Final = 5.0           # seconds between attempts on a failing database

Connect = Callable[[], Store]


class Writer:
    """Buffer + background writer thread for one worker."""

    def __init__(self, connect: Connect, queue: int = 0, batch: int = BATCH,
                 interval: float = INTERVAL, maxlen: int = MAXLEN,
                 log: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if batch < 1 or maxlen < 1 or interval <= 0:
            raise ValueError("flow writer: batch and maxlen >= 1, interval > 0")
        self.connect = connect
        self.queue = queue
        self.batch = batch
        self.interval = interval
        self.maxlen = maxlen
        self.log = log or logging.getLogger("statewall.flows")
        self.clock = clock
        self.buf: deque[Snapshot] = deque()
        self.lost = 0                  # records dropped because the buffer was full
        self.written = 0               # records committed
        self.batches = 0               # transactions committed
        self.errors = 0                # failed attempts (connect or write)
        self.unwritten = 0             # left in the buffer when close gave up
        self._reported_lost = 0
        self._wake = threading.Event()
        self._stop = False
        self._deadline = float("inf")  # close(): give up on a failing database then
        self._store: Store | None = None
        self._thread = threading.Thread(target=self._run, name=f"flows-q{queue}",
                                        daemon=True)
        self._thread.start()

    # -- packet path --------------------------------------------------------------------
    def put(self, snap: Snapshot) -> None:
        buf = self.buf
        n = len(buf)
        if n >= self.maxlen:
            self.lost += 1
            return
        buf.append(snap)
        if n + 1 == self.batch:
            self._wake.set()

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.0
        pending: list[Row] = []
        next_at = self.clock() + self.interval     # partial batches wait until then
        while True:
            wait = backoff or max(0.0, next_at - self.clock())
            self._wake.wait(wait)
            self._wake.clear()
            self._report_losses()
            stopping = self._stop
            due = stopping or self.clock() >= next_at
            while True:
                if not pending and (due or len(self.buf) >= self.batch):
                    pending = self._take()
                if not pending:
                    backoff = 0.0
                    break
                if self._write(pending):
                    pending = []
                    backoff = 0.0
                    continue
                backoff = min(RETRY_MAX, max(0.1, backoff * 2))
                break
            if due and not pending:
                next_at = self.clock() + self.interval
            if stopping and (not pending and not self.buf
                             or self.clock() >= self._deadline):
                self.unwritten = len(pending) + len(self.buf)
                break
        self._report_losses()
        if self._store is not None:
            self._store.close()
            self._store = None

    def _take(self) -> list[Row]:
        buf = self.buf
        n = min(len(buf), self.batch)
        if not n:
            return []
        offset = time.time() - time.monotonic()
        pop = buf.popleft
        q = self.queue
        rows = []
        for _ in range(n):
            snap = pop()
            try:
                rows.append(build(snap, offset, q))
            except Exception:                    # a bug: lose this record, not the thread
                self.errors += 1
                self.lost += 1
                self.log.exception(f"flow record not built: {snap!r}")
        return rows

    def _write(self, rows: list[Row]) -> bool:
        try:
            if self._store is None:
                self._store = self.connect()
            self._store.write(rows)
        except (StoreError, OSError) as e:
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                self.log.error(f"flow records not written yet ({len(rows)} in this batch, "
                               f"{len(self.buf)} waiting): {e}")
            if self._store is not None:
                self._store.close()
                self._store = None
            return False
        except Exception:
            self.errors += 1
            self.log.exception("flow writer: unexpected error; batch kept for a retry")
            self._store = None
            return False
        self.written += len(rows)
        self.batches += 1
        return True

    def _report_losses(self) -> None:
        lost = self.lost
        if lost > self._reported_lost:
            self.log.warning(f"flow records lost: {lost - self._reported_lost} ({lost} in "
                             f"all; the buffer holds {self.maxlen} records)")
            self._reported_lost = lost

    # -- control ------------------------------------------------------------------------
    def flush(self) -> None:
        """Ask the thread to write what is buffered now (does not wait)."""
        self._wake.set()

    def close(self, timeout: float = 20.0) -> dict[str, Any]:
        """Write everything buffered (giving up on a failing database after ``timeout``),
        stop the thread, return the counters."""
        self._deadline = self.clock() + timeout
        self._stop = True
        self._wake.set()
        self._thread.join(timeout + 5.0)
        if self._thread.is_alive():
            self.unwritten = len(self.buf)
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {"written": self.written, "lost": self.lost, "errors": self.errors,
                "buffered": len(self.buf), "unwritten": self.unwritten,
                "batches": self.batches}
