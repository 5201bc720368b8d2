"""The ``--metrics`` HTTP endpoint: GET /metrics, served from the supervisor's loop.

Owns: the listen address syntax (``PORT``, ``:PORT``, ``ADDR:PORT``, ``[V6ADDR]:PORT``;
loopback when no address is given), ``MetricsServer``: a listening TCP socket, the HTTP
clients and the fan-out to the workers, all non-blocking behind one epoll descriptor the
supervisor adds to its ``select`` (``fileno``, ``wait``, ``poll``). A scrape sends
``metrics`` to every worker's control socket; the answers that arrive within
WORKER_TIMEOUT are rendered (live/metrics.py), a worker that does not answer is reported
as ``statewall_worker_up 0``. Scrapes arriving while workers are being asked share that
round. Every client has a deadline and every buffer a limit, so a slow or stuck client
costs one socket, never a wait.
Must not know: packets, the table (only the snapshots the workers send).
HTTP/1.0 and 1.1 requests, one per connection (``Connection: close``).
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import time
from typing import Callable, Final

from . import metrics as swmetrics

WORKER_TIMEOUT: Final = 1.0       # seconds a worker has to answer a scrape
CLIENT_TIMEOUT: Final = 10.0      # seconds a client has to send its request and read
MAX_CLIENTS: Final = 64           # HTTP connections at once (more are closed at accept)
MAX_HEAD: Final = 8192            # request line + headers
MAX_REPLY: Final = 4 << 20        # a worker's snapshot
DEFAULT_HOST: Final = "127.0.0.1"

# (queue, the worker's control socket or None when the worker is not up)
Targets = Callable[[], list[tuple[int, str | None]]]

_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found",
                   405: "Method Not Allowed", 431: "Request Header Fields Too Large"}


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT`` | ``:PORT`` | ``ADDR:PORT`` | ``[ADDR]:PORT`` -> (address, port).
    ADDR is an IPv4 or IPv6 literal (or ``localhost``); without one: 127.0.0.1."""
    t = text.strip()
    if not t:
        raise ValueError("--metrics: empty address (PORT, ADDR:PORT or [ADDR]:PORT)")
    if t.startswith("["):
        host, sep, port = t[1:].partition("]:")
        if not sep:
            raise ValueError(f"--metrics {text!r}: an IPv6 address is written [ADDR]:PORT")
    elif t.count(":") > 1:
        raise ValueError(f"--metrics {text!r}: an IPv6 address is written [ADDR]:PORT")
    elif ":" in t:
        host, _, port = t.rpartition(":")
    else:
        host, port = "", t
    host = host or DEFAULT_HOST
    if host == "localhost":
        host = DEFAULT_HOST
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--metrics {text!r}: {host!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and not t.startswith("["):
        raise ValueError(f"--metrics {text!r}: an IPv6 address is written [ADDR]:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--metrics {text!r}: bad port {port!r} (1-65535)")
    return str(ip), int(port)


def format_listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _response(code: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
              extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


class _Client:
    __slots__ = ("sock", "buf", "out", "deadline", "state")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.buf = b""
        self.out = memoryview(b"")      # what is left to send
        self.deadline = deadline
        self.state = "head"          # head -> waiting (for the workers) -> writing


class _Ask:
    """One worker being asked for its snapshot."""
    __slots__ = ("queue", "sock", "buf")

    def __init__(self, queue: int, sock: socket.socket) -> None:
        self.queue = queue
        self.sock = sock
        self.buf = b""


class _Round:
    __slots__ = ("started", "deadline", "asks", "results", "waiters")

    def __init__(self, now: float, timeout: float) -> None:
        self.started = now
        self.deadline = now + timeout
        self.asks: dict[int, _Ask] = {}                       # fd -> ask
        self.results: dict[int, dict[str, object] | None] = {}  # queue -> snapshot
        self.waiters: list[int] = []                          # client fds


class MetricsServer:
    def __init__(self, host: str, port: int, targets: Targets, *,
                 worker_timeout: float = WORKER_TIMEOUT,
                 client_timeout: float = CLIENT_TIMEOUT, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.targets = targets
        self.worker_timeout = worker_timeout
        self.client_timeout = client_timeout
        self.max_clients = max_clients
        self.clock = clock
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(64)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock = s
        self.address = format_listen(host, s.getsockname()[1])
        self.ep = select.epoll()
        self.ep.register(s.fileno(), select.EPOLLIN)
        self.clients: dict[int, _Client] = {}
        self.round: _Round | None = None
        self.scrapes = 0

    # -- what the owner's loop needs ----------------------------------------------------
    def fileno(self) -> int:
        """Readable when any socket of this server needs attention."""
        return self.ep.fileno()

    def wait(self, longest: float) -> float:
        """How long the owner may sleep in select (the next deadline here)."""
        now = self.clock()
        t = longest
        if self.round is not None:
            t = min(t, self.round.deadline - now)
        for c in self.clients.values():
            t = min(t, c.deadline - now)
        return max(0.0, t)

    def poll(self) -> None:
        """Handle whatever is ready, without blocking; then the deadlines."""
        for fd, ev in self.ep.poll(0):
            if fd == self.sock.fileno():
                self._accept()
            elif fd in self.clients:
                self._client_event(fd, ev)
            elif self.round is not None and fd in self.round.asks:
                self._worker_event(fd)
        now = self.clock()
        r = self.round
        if r is not None and (not r.asks or now >= r.deadline):
            self._finish(now)
        for fd, c in list(self.clients.items()):
            if now >= c.deadline:
                self._drop(fd)

    def close(self, forked: bool = False) -> None:
        """Close every socket. ``forked``: in a forked child (a worker), which shares the
        epoll instance with the supervisor: only close the descriptors, never touch the
        shared interest list (the supervisor's sockets stay open and watched)."""
        if forked:
            for c in self.clients.values():
                c.sock.close()
            self.clients.clear()
        for fd in list(self.clients):
            self._drop(fd)
        if self.round is not None:
            for a in self.round.asks.values():
                a.sock.close()
            self.round = None
        self.ep.close()
        self.sock.close()

    # -- HTTP clients --------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:                     # EMFILE and friends: try on a later poll
                return
            if len(self.clients) >= self.max_clients:
                conn.close()
                continue
            conn.setblocking(False)
            self.clients[conn.fileno()] = _Client(conn, self.clock() + self.client_timeout)
            self.ep.register(conn.fileno(), select.EPOLLIN)

    def _drop(self, fd: int) -> None:
        c = self.clients.pop(fd, None)
        if c is None:
            return
        try:
            self.ep.unregister(fd)
        except OSError:
            pass
        c.sock.close()
        if self.round is not None and fd in self.round.waiters:
            self.round.waiters.remove(fd)

    def _client_event(self, fd: int, ev: int) -> None:
        c = self.clients[fd]
        if c.state == "writing":
            self._write(fd, c)
            return
        if c.state == "waiting":              # watched for errors only (mask 0)
            self._drop(fd)
            return
        try:
            data = c.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd)
            return
        if not data:
            self._drop(fd)
            return
        c.buf += data
        end = c.buf.find(b"\r\n\r\n")
        if end < 0:
            end = c.buf.find(b"\n\n")
        if end < 0:
            if len(c.buf) > MAX_HEAD:
                self._reply(fd, c, _response(431, b"request head too large\n"))
            return
        self._request(fd, c, c.buf[:end])

    def _request(self, fd: int, c: _Client, head: bytes) -> None:
        line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reply(fd, c, _response(400, b"bad request line\n"))
            return
        method, target, _version = parts
        path = target.split("?", 1)[0]
        if path != "/metrics":
            self._reply(fd, c, _response(404, b"not found: try /metrics\n"))
            return
        if method != "GET":
            self._reply(fd, c, _response(405, b"only GET\n", extra="Allow: GET\r\n"))
            return
        c.state = "waiting"
        self.ep.modify(fd, 0)                 # anything more it sends waits; HUP/ERR come
        if self.round is None:
            self._start(self.clock())
        assert self.round is not None
        self.round.waiters.append(fd)

    def _reply(self, fd: int, c: _Client, data: bytes) -> None:
        c.state = "writing"
        c.out = memoryview(data)
        self.ep.modify(fd, select.EPOLLOUT)
        self._write(fd, c)

    def _write(self, fd: int, c: _Client) -> None:
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd)
            return
        c.out = c.out[n:]
        if not c.out:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._drop(fd)

    # -- asking the workers --------------------------------------------------------------
    def _start(self, now: float) -> None:
        r = self.round = _Round(now, self.worker_timeout)
        for queue, path in self.targets():
            r.results[queue] = None
            if path is None:
                continue
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
                s.send(b"metrics\n")           # far below a unix socket's buffer
            except OSError:                    # not there, or its backlog is full
                s.close()
                continue
            r.asks[s.fileno()] = _Ask(queue, s)
            self.ep.register(s.fileno(), select.EPOLLIN)

    def _worker_event(self, fd: int) -> None:
        assert self.round is not None
        a = self.round.asks[fd]
        done = False
        try:
            while True:
                chunk = a.sock.recv(65536)
                if not chunk:
                    done = True
                    break
                a.buf += chunk
                if len(a.buf) > MAX_REPLY or b"\n" in chunk:
                    done = True
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            done = True
        if not done:
            return
        self._end_ask(fd)
        try:
            reply = json.loads(a.buf.split(b"\n", 1)[0])
        except ValueError:
            return
        snap = reply.get("metrics") if isinstance(reply, dict) else None
        if isinstance(snap, dict):
            self.round.results[a.queue] = snap

    def _end_ask(self, fd: int) -> None:
        assert self.round is not None
        a = self.round.asks.pop(fd)
        try:
            self.ep.unregister(fd)
        except OSError:
            pass
        a.sock.close()

    def _finish(self, now: float) -> None:
        r = self.round
        assert r is not None
        for fd in list(r.asks):                # no answer in time: reported as down
            self._end_ask(fd)
        self.round = None
        self.scrapes += 1
        text = swmetrics.render(r.results.items(), now - r.started)
        data = _response(200, text.encode(), swmetrics.CONTENT_TYPE)
        for fd in r.waiters:
            c = self.clients.get(fd)
            if c is not None:
                self._reply(fd, c, data)
