"""Client side of ``statewall top``: one snapshot of a running daemon's table.

Owns: asking the control socket with the ``top`` word (snapshot.py), following the
supervisor's answer to every worker's socket, and falling back to the ``conntrack -L -o
json`` request (plus ``-C`` for the table size) when the daemon does not know the word.
Replies are bounded (``MAX_REPLY``). Errors come back as ``FetchError`` with what failed.
Must not know: the screen.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Final

from ..ctl.server import encode as ct_encode
from .model import Row, row_from_compact, row_from_json
from .snapshot import encode

MAX_REPLY: Final = 512 << 20


class FetchError(Exception):
    """The daemon could not be asked, or its answer was not what was asked for."""


def _ask(path: str, data: bytes, timeout: float) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(data)
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_REPLY:
                    raise FetchError(f"{path}: reply larger than {MAX_REPLY >> 20} MiB")
        reply = json.loads(buf)
    except OSError as e:
        raise FetchError(f"cannot reach statewall at {path}: {e}") from None
    except ValueError as e:
        raise FetchError(f"{path}: bad reply: {e}") from None
    if not isinstance(reply, dict):
        raise FetchError(f"{path}: bad reply")
    return reply


def _rows(path: str, reply: dict[str, Any]) -> tuple[list[Row], int]:
    rows = reply.get("rows")
    if not isinstance(rows, list):
        raise FetchError(f"{path}: reply without rows")
    try:
        return [row_from_compact(v) for v in rows], int(reply.get("total", len(rows)))
    except ValueError as e:
        raise FetchError(f"{path}: {e}") from None


def _fallback(path: str, argv: list[str], timeout: float) -> tuple[list[Row], int]:
    """``conntrack -L -o json`` (slower: see snapshot.py) for a daemon without ``top``."""
    try:
        r = _ask(path, ct_encode(["-L", "-o", "json", *argv]), timeout)
        if not r.get("ok") or int(r.get("rc", 1)):
            raise FetchError(str(r.get("error") or r.get("err") or "conntrack -L failed").strip())
        rows = [row_from_json(json.loads(ln)) for ln in str(r.get("out", "")).splitlines()
                if ln.strip()]
        c = _ask(path, ct_encode(["-C"]), timeout)
        total = int(str(c.get("out", "0")).strip() or 0) if c.get("ok") else len(rows)
    except ValueError as e:
        raise FetchError(f"{path}: bad conntrack reply: {e}") from None
    return rows, total


def fetch(path: str, argv: list[str], timeout: float = 30.0) -> tuple[list[Row], int]:
    """(rows passing the conntrack filter options ``argv``, entries in the table(s))."""
    reply = _ask(path, encode(argv), timeout)
    if not reply.get("ok"):
        err = str(reply.get("error", "refused"))
        if err.startswith("unknown command"):
            return _fallback(path, argv, timeout)
        raise FetchError(err)
    workers = reply.get("workers")
    if workers is None:
        return _rows(path, reply)
    if not isinstance(workers, list):
        raise FetchError(f"{path}: bad worker list")
    out: list[Row] = []
    total = 0
    for wp in workers:
        r = _ask(str(wp), encode(argv), timeout)
        if not r.get("ok"):
            raise FetchError(f"{wp}: {r.get('error')}")
        rows, n = _rows(str(wp), r)
        out += rows
        total += n
    return out, total
