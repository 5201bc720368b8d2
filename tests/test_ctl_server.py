"""The control socket's connections (ctl/server.py LineConns) never block their owner: a
client that sends nothing, or does not read a large reply, does not hold up the next client
or the owner's loop (a worker's packet path), and is dropped after a timeout."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from statewall.conntrack.core import Tracker
from statewall.ctl import server
from statewall.ctl.server import CtlServer, LineConns, read_reply


def _client(path: str) -> socket.socket:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    return c


def test_stalled_client_does_not_block_the_next(tmp_path: Path) -> None:
    srv = CtlServer(str(tmp_path / "c"), Tracker, lambda: 10.0)
    try:
        stalled = _client(srv.path)
        stalled.sendall(b"conntr")                       # half a request, then silence
        c = _client(srv.path)
        c.sendall(server.encode(["-C"]))
        t0 = time.monotonic()
        srv.poll()
        assert time.monotonic() - t0 < 0.5             # nothing waited for the stalled one
        c.settimeout(2)
        assert json.loads(read_reply(c)) == {"ok": True, "rc": 0, "out": "0\n", "err": ""}
        assert srv.busy                                 # the stalled request is still open
        stalled.sendall(b"ack {\"argv\": [\"-C\"]}\n")
        srv.poll()
        stalled.settimeout(2)
        assert json.loads(read_reply(stalled))["out"] == "0\n"
        assert not srv.busy
    finally:
        srv.close()


def test_large_reply_to_a_slow_reader(tmp_path: Path) -> None:
    """A 20 MB reply: the owner's poll returns at once; the client gets every byte."""
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(str(tmp_path / "s"))
    lst.listen(4)
    lst.setblocking(False)
    conns = LineConns(lst)
    big = "x" * (20 << 20)

    def dispatch(conn: socket.socket, line: str) -> dict[str, Any]:
        return {"ok": True, "out": big, "line": line}
    c = _client(str(tmp_path / "s"))
    try:
        c.sendall(b"give\n")
        t0 = time.monotonic()
        conns.poll(dispatch)
        assert time.monotonic() - t0 < 1.0              # not waiting for the reader
        assert conns.outgoing                           # most of it still to go
        c.settimeout(0.05)
        parts = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            conns.poll(dispatch)
            try:
                chunk = c.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                break
            parts.append(chunk)
        reply = json.loads(b"".join(parts))
        assert reply["line"] == "give" and len(reply["out"]) == len(big)
        assert not conns.busy
    finally:
        c.close()
        conns.close()
        lst.close()


def test_silent_and_non_reading_clients_time_out(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(server, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(server, "WRITE_TIMEOUT", 0.2)
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(str(tmp_path / "s"))
    lst.listen(4)
    lst.setblocking(False)
    conns = LineConns(lst)
    silent = _client(str(tmp_path / "s"))
    reader = _client(str(tmp_path / "s"))
    try:
        reader.sendall(b"give\n")
        conns.poll(lambda conn, line: {"out": "y" * (8 << 20)})
        assert len(conns.pending) == 1 and len(conns.outgoing) == 1
        time.sleep(0.3)
        conns.poll(lambda conn, line: {})
        assert not conns.busy                           # both dropped
        silent.settimeout(2)
        assert silent.recv(10) == b""                   # closed by the server
    finally:
        silent.close()
        reader.close()
        conns.close()
        lst.close()
