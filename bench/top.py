"""``statewall top`` at scale: what one refresh costs the worker and the client.

Fills a Tracker with BENCH_TOP_ENTRIES (default 100,000) TCP entries, serves it on a unix
socket from a thread (as a worker does), and measures, best of BENCH_ROUNDS (default 3):
the worker's time to answer the ``top`` word and ``conntrack -L -o json`` (the fallback),
the reply sizes, the client's whole fetch (ask + decode into rows) both ways, and the
client's per-refresh model work (rates, filter, sort, totals, one 80x24 screen).
Run: ``.venv/bin/python bench/top.py``.
"""

from __future__ import annotations

import json
import os
import select
import sys
import tempfile
import threading
import time

from statewall.conntrack.core import Tracker
from statewall.ctl import ops
from statewall.ctl.server import CtlServer
from statewall.top import render, snapshot
from statewall.top.fetch import _fallback, fetch
from statewall.top.model import Snapshot, filter_rows, sort_rows, totals, update
from statewall.top.view import View

N = int(os.environ.get("BENCH_TOP_ENTRIES", "100000"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))


def fill(n: int, now: float) -> Tracker:
    tr = Tracker()
    for i in range(n):
        a = f"198.51.100.{1 + i % 250}"
        r = ops.run(tr, ["-I", "-s", a, "-d", "203.0.113.2", "-p", "tcp", "--sport",
                         str(1024 + i // 250), "--dport", "80", "--state", "ESTABLISHED",
                         "-t", "300", "-u", "SEEN_REPLY,ASSURED"], now)
        assert r.rc == 0, r.err
    return tr


def best(fn: object) -> float:
    assert callable(fn)
    ts = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> int:
    now = time.monotonic()
    tr = fill(N, now)
    print(f"entries: {N}")
    line = "top " + json.dumps({"argv": []})
    # what the worker does per request: build the reply and encode it (CtlServer._serve)
    t_top = best(lambda: json.dumps(snapshot.handle(tr, line, time.monotonic())))
    size_top = len(json.dumps(snapshot.handle(tr, line, time.monotonic())))
    t_json = best(lambda: json.dumps({"out": ops.run(tr, ["-L", "-o", "json"],
                                                     time.monotonic()).out}))
    size_json = len(json.dumps({"out": ops.run(tr, ["-L", "-o", "json"],
                                               time.monotonic()).out}))
    print(f"worker, 'top' word:          {t_top:6.3f} s  reply {size_top / 1e6:5.1f} MB")
    print(f"worker, conntrack -L -o json: {t_json:6.3f} s  reply {size_json / 1e6:5.1f} MB")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ctl.sock")
        srv = CtlServer(path, lambda: tr, time.monotonic)
        srv.handlers[snapshot.WORD] = lambda ln, t: snapshot.handle(tr, ln, t)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                r, _, _ = select.select(srv.fds(), [], [], 0.05)
                if r:
                    srv.poll()
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        try:
            f_top = best(lambda: fetch(path, []))
            f_json = best(lambda: _fallback(path, [], 60.0))
        finally:
            stop.set()
            th.join()
            srv.close()
    print(f"client fetch, 'top' word:    {f_top:6.3f} s (worker + socket + decode)")
    print(f"client fetch, -L -o json:    {f_json:6.3f} s")
    rows, total = snapshot.rows(tr, None, time.monotonic())[0], N
    from statewall.top.model import row_from_compact
    prev = Snapshot(0.0, [row_from_compact(v) for v in rows], total)
    cur_rows = [row_from_compact(v) for v in rows]
    view = View(sort="rate", reverse=True)

    def refresh() -> None:
        cur = update(prev, Snapshot(1.0, list(cur_rows), total))
        shown = sort_rows(filter_rows(cur.rows, view.filter), view.sort, view.reverse)
        render.screen(view, shown, totals(shown, total), 80, 24, "00:00:00", 1.0)
    print(f"client model + screen:       {best(refresh):6.3f} s per refresh "
          "(rates, sort by B/s, totals, 80x24)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
