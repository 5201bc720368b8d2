"""The conntrack request on the control socket, and a small non-blocking server for it.

Owns: the wire format (one line ``conntrack <json>``, json = {"argv": [...], "batch": bool};
one JSON line back: {"ok": true, "rc": int, "out": str, "err": str}), ``LineConns``: the
clients of a listening unix socket served without blocking (a partial request is read on a
later poll, a reply is written as the client reads it, a client that stops is dropped after
a timeout; the supervisor's control socket uses it too), and ``CtlServer``: a worker's
socket, whose request words (``conntrack``, ``top``, ``metrics``, ``iptables``, ...) run
against the owner's ``Tracker`` in the owner's thread, so the table needs no lock.
Must not know: processes, packets.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import time
from typing import Any, Callable, Final

from ..conntrack.core import Tracker
from . import ops, render
from .events import EventHub, event_command     # statewall conntrack -E

PREFIX: Final = "conntrack "
READ_TIMEOUT: Final = 30.0      # seconds a client may take to send its request line
WRITE_TIMEOUT: Final = 120.0    # seconds a client may take to read its reply
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


class LineConns:
    """The connections of a listening unix socket, served without blocking: each client
    sends one request line and gets one reply line (JSON). Requests are read as they come
    (a client that sends slowly is served on a later ``poll``), replies are written as the
    client reads them; a client that stops sending or reading is dropped after a timeout.
    ``poll(dispatch)`` calls ``dispatch(conn, line)`` for each complete request: a reply
    object, or None when ``dispatch`` took the connection over (``conntrack -E``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: dict[socket.socket, bytearray] = {}
        self.outgoing: dict[socket.socket, memoryview] = {}
        self.since: dict[socket.socket, float] = {}

    @property
    def busy(self) -> bool:
        """A request is still arriving or a reply still leaving: poll again soon."""
        return bool(self.pending or self.outgoing)

    def fds(self) -> list[socket.socket]:
        return [self.sock, *self.pending, *self.outgoing]

    def poll(self, dispatch: Callable[[socket.socket, str], dict[str, Any] | None]) -> None:
        now = time.monotonic()
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break                            # (EMFILE...: the next poll tries again)
            conn.setblocking(False)
            self.pending[conn] = bytearray()
            self.since[conn] = now
        for conn in list(self.pending):
            line = self._read(conn)
            if line is None:
                continue
            reply = dispatch(conn, line)
            if reply is None:                    # taken over by the caller
                self.since.pop(conn, None)
                continue
            self.outgoing[conn] = memoryview(json.dumps(reply).encode() + b"\n")
            self.since[conn] = time.monotonic()
            self._flush(conn)
        for conn in list(self.outgoing):
            self._flush(conn)
        now = time.monotonic()
        for conn, t in list(self.since.items()):
            limit = READ_TIMEOUT if conn in self.pending else WRITE_TIMEOUT
            if now - t > limit:                  # a client that stopped talking or reading
                self.drop(conn)

    def _read(self, conn: socket.socket) -> str | None:
        """The request line once it is complete (the connection then leaves ``pending``)."""
        buf = self.pending[conn]
        try:
            while len(buf) < MAX_REQUEST:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if b"\n" in chunk:
                    break
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            buf = bytearray()
        del self.pending[conn]
        return bytes(buf).split(b"\n", 1)[0].decode(errors="replace")

    def _flush(self, conn: socket.socket) -> None:
        out = self.outgoing[conn]
        try:
            while out:
                n = conn.send(out[:1 << 20], socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
                out = out[n:]
        except (BlockingIOError, InterruptedError):
            self.outgoing[conn] = out
            return
        except OSError:
            pass
        self.drop(conn)

    def drop(self, conn: socket.socket) -> None:
        self.pending.pop(conn, None)
        self.outgoing.pop(conn, None)
        self.since.pop(conn, None)
        try:
            conn.close()
        except OSError:
            pass

    def close(self) -> None:
        for c in [*self.pending, *self.outgoing]:
            self.drop(c)


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
        self.conns = LineConns(s)                # requests in, replies out (no blocking)
        self.events = EventHub(tracker)          # -E subscribers (ctl/events.py)
        # request word -> handler(line, now) -> reply object. Other control-plane features
        # (iptables, metrics, flows, ...) register theirs here; "conntrack" is built in.
        self.handlers: dict[str, Handler] = {
            "conntrack": lambda line, now: handle(self.tracker(), line, now, self.events)}

    def fileno(self) -> int:
        return self.sock.fileno()

    def fds(self) -> list[socket.socket]:
        return self.conns.fds()

    @property
    def busy(self) -> bool:
        return self.conns.busy

    def poll(self) -> None:
        self.conns.poll(self._dispatch)

    def step(self, timeout: float) -> None:
        """One round for an owner with nothing else to do (tests, tools): wait up to
        ``timeout`` for a client, serve what is ready, write events. (The worker polls
        from its own loop instead.)"""
        wait = 0.005 if self.busy or self.events.backlog else timeout
        select.select(self.fds(), [], [], wait)
        self.poll()
        if self.events.subs:
            self.events.flush()

    def _dispatch(self, conn: socket.socket, line: str) -> dict[str, Any] | None:
        ev = event_command(line)                 # -E: the connection becomes a subscriber
        if ev is not None:
            self.events.subscribe(conn, ev)
            return None
        h = self.handlers.get(line.split(" ", 1)[0])
        if h is None:
            return {"ok": False, "error": "unknown command"}
        return h(line, self.clock())

    def close(self) -> None:
        self.events.close()
        self.conns.close()
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
        data = read_reply(s)
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise ValueError("bad reply")
    return reply


def read_reply(s: socket.socket) -> bytes:
    """One newline-terminated reply (a whole table can be tens of MB: chunks are joined
    once, not copied on every read)."""
    parts: list[bytes] = []
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        parts.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(parts)


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
