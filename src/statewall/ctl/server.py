"""The conntrack request on the control socket, and a small non-blocking server for it.

Owns: the wire format (one line ``conntrack <json>``, json = {"argv": [...], "batch": bool};
one JSON line back: {"ok": true, "rc": int, "out": str, "err": str}), and ``CtlServer``: a
listening unix socket whose ``poll()`` accepts and answers whatever is waiting without
blocking (a client that sends a partial line is served on a later poll). Each request runs
against the owner's ``Tracker`` in the owner's thread, so the table needs no lock.
Must not know: processes, packets.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from typing import Any, Callable, Final

from ..conntrack.core import Tracker
from . import ops, render
from .events import EventHub, event_command     # statewall conntrack -E

PREFIX: Final = "conntrack "
Handler = Callable[[str, float], dict[str, Any]]
MAX_REQUEST: Final = 1 << 24          # iptables-restore sends a whole rule set


def encode(argv: list[str], batch: bool = False, portid: int | None = None) -> bytes:
    """The request line. portid: the client's process id, shown as conntrack's
    ``[USERSPACE] portid=N`` on the events its command causes (default: this process)."""
    req = {"argv": argv, "batch": batch, "portid": os.getpid() if portid is None else portid}
    return (PREFIX + json.dumps(req)).encode() + b"\n"


def handle(tr: Tracker, line: str, now: float, hub: EventHub | None = None
           ) -> dict[str, Any]:
    """One request line (with the ``conntrack `` prefix) -> the reply object. Events the
    command causes reach the ``hub``'s subscribers marked with the client's portid."""
    try:
        req = json.loads(line[len(PREFIX):])
        argv = req["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a list of strings")
        batch = bool(req.get("batch", False))
        portid = req.get("portid")
        if portid is not None and (not isinstance(portid, int) or
                                   not 0 <= portid <= 0xFFFFFFFF):
            raise ValueError("portid must be an unsigned 32-bit number")
    except (ValueError, KeyError, TypeError) as e:
        return {"ok": False, "error": f"bad conntrack request: {e}"}
    if hub is not None:
        hub.origin = portid                  # None / 0: printed as the kernel's own
    try:
        r = ops.run(tr, argv, now, batch, time.time() - time.monotonic())
    finally:
        if hub is not None:
            hub.origin = None
    return {"ok": True, "rc": r.rc, "out": r.out, "err": r.err}


class CtlServer:
    """Answer conntrack requests on a unix socket; call ``poll()`` when it is readable."""

    def __init__(self, path: str, tracker: Callable[[], Tracker],
                 clock: Callable[[], float]) -> None:
        self.path = path
        self.tracker = tracker
        self.clock = clock
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, 0o600)
        s.listen(64)
        s.setblocking(False)
        self.sock = s
        self.pending: dict[socket.socket, bytes] = {}
        self.events = EventHub(tracker)          # -E subscribers (ctl/events.py)
        # request word -> handler(line, now) -> reply object. Other control-plane features
        # (iptables, metrics, flows, ...) register theirs here; "conntrack" is built in.
        self.handlers: dict[str, Handler] = {
            "conntrack": lambda line, now: handle(self.tracker(), line, now, self.events)}

    def fileno(self) -> int:
        return self.sock.fileno()

    def fds(self) -> list[socket.socket]:
        return [self.sock, *self.pending]

    def poll(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            conn.setblocking(False)
            self.pending[conn] = b""
        for conn in list(self.pending):
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        buf = self.pending[conn]
        try:
            while b"\n" not in buf and len(buf) < MAX_REQUEST:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except BlockingIOError:
            self.pending[conn] = buf
            return
        except OSError:
            buf = b""
        del self.pending[conn]
        line = buf.split(b"\n", 1)[0].decode(errors="replace")
        ev = event_command(line)                 # -E: the connection becomes a subscriber
        if ev is not None:
            self.events.subscribe(conn, ev)
            return
        try:
            h = self.handlers.get(line.split(" ", 1)[0])
            if h is not None:
                reply = h(line, self.clock())
            else:
                reply = {"ok": False, "error": "unknown command"}
            conn.setblocking(True)
            conn.settimeout(5.0)
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.events.close()
        for c in self.pending:
            c.close()
        self.pending.clear()
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def request(path: str, argv: list[str], batch: bool = False,
            timeout: float = 30.0, portid: int | None = None) -> dict[str, Any]:
    """Client side: send one conntrack request, return the decoded reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(encode(argv, batch, portid))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise ValueError("bad reply")
    return reply


# -- the daemon side: one socket per worker, the supervisor fans requests out ---------------
def worker_path(control: str, queue: int) -> str:
    """Where the worker of ``queue`` answers conntrack requests (next to the control
    socket)."""
    return f"{control}.q{queue}"


# commands whose effect lives in one table: the first worker owns new entries
_FIRST_ONLY: Final = frozenset({"create", "add"})
_SUMMARY: Final = re.compile(r"(\d+) (flow entries|expectations) have been")


def forward(line: str, paths: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """Supervisor: send a ``conntrack`` request line to the workers' sockets and merge.

    create/add go to the first worker; everything else goes to every worker: the output is
    concatenated, -C counts are summed, -S lines numbered cpu=0.. by worker, and the exit
    status is 0 when any worker succeeded (a delete/update found something somewhere)."""
    from .args import ParamError, parse
    try:
        req = json.loads(line[len(PREFIX):])
        argv = [str(a) for a in req["argv"]]
        batch = bool(req.get("batch", False))
        portid = req.get("portid")
        portid = int(portid) if isinstance(portid, int) else None
        cmd = parse(argv).cmd
    except ParamError:
        cmd = ""                              # let a worker word the error
    except (ValueError, KeyError, TypeError) as e:
        return {"ok": False, "error": f"bad conntrack request: {e}"}
    if not paths:
        return {"ok": False, "error": "no worker is running"}
    if cmd == "event":                        # -E: the client subscribes to every worker
        return {"ok": True, "rc": 0, "workers": paths}
    targets = paths[:1] if cmd in _FIRST_ONLY or not cmd else paths
    replies = []
    for p in targets:
        try:
            replies.append(request(p, argv, batch, timeout, portid))
        except (OSError, ValueError) as e:
            replies.append({"ok": False, "error": f"worker {p}: {e}"})
    good = [r for r in replies if r.get("ok")]
    if not good:
        return replies[0]
    if len(good) == 1:
        return good[0]
    rcs = [int(r.get("rc", 1)) for r in good]
    rc = 0 if 0 in rcs else max(rcs)
    if cmd == "count":
        out = f"{sum(int(str(r.get('out', '0')).strip() or 0) for r in good)}\n"
    elif cmd == "stats":
        out = "".join(str(r.get("out", "")).replace("cpu=0 ", f"cpu={i} ", 1)
                      for i, r in enumerate(good))
    else:
        outs = [str(r.get("out", "")) for r in good]
        if any(o.startswith(render.XML_HEAD) for o in outs):    # one -o xml document
            body = "".join(o.removeprefix(render.XML_HEAD).removesuffix(render.XML_TAIL)
                           for o in outs)
            tail = render.XML_TAIL if any(o.endswith(render.XML_TAIL) for o in outs) else ""
            out = render.XML_HEAD + body + tail if body else ""
        else:
            out = "".join(outs)
    err = next((str(r.get("err", "")) for r in good if int(r.get("rc", 1)) == rc), "")
    counts = [_SUMMARY.search(str(r.get("err", ""))) for r in good]
    if all(counts):                          # "N flow entries have been shown.": the sum
        n = sum(int(m.group(1)) for m in counts if m is not None)
        err = _SUMMARY.sub(lambda m: f"{n} {m.group(2)} have been", err, count=1)
    return {"ok": True, "rc": rc, "out": out, "err": err}
