"""``statewall conntrack``: conntrack-tools' command line against a running ``statewall run``.

Owns: reading the arguments as conntrack 1.4.7 does (``ctl.args``), ``-R FILE|-`` (one
command per line, blank lines ignored, deletes of nothing not an error), sending each
command over the control socket (``--control=PATH``, else $STATEWALL_CONTROL, else the
default) and printing the reply; ``-E`` (events: subscribe to the worker(s) and print their
lines until SIGINT/SIGTERM, then conntrack's summary; see ``ctl.events``); the exit status is conntrack's: 0 done, 1 the operation
failed (exists, not found, nothing deleted/updated), 2 a parameter problem.
Must not know: the table; the daemon's worker executes every command (``ctl.ops``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
from typing import Any

from .relay import relay
from ..ctl import args as ctargs
from ..ctl import events as ctevents
from ..ctl import render
from ..ctl.server import encode, request
from .run import DEFAULT_CONTROL

PROG = "conntrack v1.4.7 (conntrack-tools)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("conntrack", prefix_chars="+", add_help=False,
                       help="the conntrack-tools command line (-L -G -D -I -U -A -F -C -S -R -E) "
                            "against a running 'statewall run'",
                       description="conntrack 1.4.7's options; the table is the running "
                                   "daemon's (control socket from --control=PATH or "
                                   "$STATEWALL_CONTROL).")
    p.add_argument("argv", nargs="*")
    p.set_defaults(func=main)


def _control(argv: list[str]) -> tuple[str, list[str]]:
    path = os.environ.get("STATEWALL_CONTROL") or DEFAULT_CONTROL
    rest = []
    for a in argv:
        if a.startswith("--control="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
    return path, rest


def _send(path: str, argv: list[str], batch: bool) -> int:
    return relay(PROG, path, lambda: request(path, argv, batch), 1)


def _load(path: str, source: str) -> int:
    try:
        text = sys.stdin.read() if source == "-" else open(source).read()
    except OSError as e:
        print(f"{PROG}: {source}: {e}", file=sys.stderr)
        return 1
    for line in text.splitlines():
        argv = ctargs.tokens(line)
        if not argv:
            continue
        try:
            cmd = ctargs.parse(argv)
        except ctargs.ParamError as e:
            sys.stderr.write(e.text())
            return ctargs.EXIT_PARAM
        if cmd.cmd == "load":
            print(f"{PROG}: -R inside -R", file=sys.stderr)
            return ctargs.EXIT_PARAM
        rc = _send(path, argv, batch=True)
        if rc:
            return rc
    return 0


def main(args: argparse.Namespace) -> int:
    path, argv = _control(list(args.argv))
    try:
        cmd = ctargs.parse(argv)
    except ctargs.ParamError as e:
        sys.stderr.write(e.text())
        return ctargs.EXIT_PARAM
    if cmd.cmd == "help":
        print(__doc__)
        return 0
    if cmd.cmd == "load":
        return _load(path, cmd.load_file or "-")
    if cmd.cmd == "event" and cmd.table in ("conntrack", "expect"):
        try:
            ctevents.event_kinds(cmd)
            ctevents.ring_size(cmd)
        except ctargs.ParamError as e:
            sys.stderr.write(e.text())
            return ctargs.EXIT_PARAM
        return _events(path, argv, cmd)
    return _send(path, argv, batch=False)


# -- statewall conntrack -E (ctl/events.py) ---------------------------------------------------
def _with_progname(text: str) -> str:
    """conntrack adds ``progname=NAME`` to ``[USERSPACE] portid=N`` when the process that
    sent the command still exists."""
    i = text.rfind(render.USERSPACE)
    if i < 0:
        return text
    pid = text[i + len(render.USERSPACE):]
    name = render.progname(int(pid)) if pid.isdigit() and int(pid) > 0 else None
    return text if name is None else f"{text} progname={name}"


def _subscribe(path: str, argv: list[str]) -> tuple[socket.socket | None, dict[str, Any]]:
    """Send the -E request; (the open stream, the ack) or (None, the final reply)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10.0)
        s.connect(path)
        s.sendall(encode(argv))
        head = b""
        while not head.endswith(b"\n"):
            ch = s.recv(1)
            if not ch:
                break
            head += ch
        reply = json.loads(head)
    except BaseException:
        s.close()
        raise
    if not isinstance(reply, dict) or not reply.get("stream"):
        s.close()
        return None, reply if isinstance(reply, dict) else {"ok": False, "error": "bad reply"}
    s.settimeout(None)
    return s, reply


def _events(path: str, argv: list[str], cmd: ctargs.Command) -> int:
    """Print the daemon's events until SIGINT/SIGTERM (exit 0) or the daemon goes away.
    Several workers (the supervisor answers with their sockets): subscribe to each and
    print lines as they arrive. A ``!lost N`` marker prints conntrack's ENOBUFS warning."""
    what = "expectation" if cmd.table == "expect" else "flow"
    xml = "xml" in cmd.output and cmd.table != "expect"
    streams: list[socket.socket] = []
    shown = 0
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)              # seen between lines: the count stays exact

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        s, reply = _subscribe(path, argv)
        if s is not None:
            streams.append(s)
        elif reply.get("ok") and isinstance(reply.get("workers"), list):
            for wp in reply["workers"]:
                ws, wr = _subscribe(str(wp), argv)
                if ws is None:
                    reply = wr
                    break
                streams.append(ws)
            else:
                reply = {"ok": True}
        if not streams or not reply.get("ok"):
            for x in streams:
                x.close()
            if not reply.get("ok"):
                print(f"{PROG}: {reply.get('error')}", file=sys.stderr)
                return 1
            sys.stdout.write(str(reply.get("out", "")))
            sys.stderr.write(str(reply.get("err", "")))
            return int(reply.get("rc", 1))
        bufs: dict[socket.socket, bytes] = {x: b"" for x in streams}
        while bufs and not stopping:
            r, _, _ = select.select(list(bufs), [], [], 0.2)
            for x in r:
                data = x.recv(65536)
                if not data:
                    del bufs[x]
                    x.close()
                    continue
                *lines, bufs[x] = (bufs[x] + data).split(b"\n")
                for ln in lines:
                    text = ln.decode(errors="replace")
                    if text.startswith(ctevents.LOST):
                        sys.stdout.flush()
                        sys.stderr.write(ctevents.ENOBUFS_WARNING + "statewall: "
                                         f"{text[len(ctevents.LOST):]} events lost "
                                         "(this reader fell behind; -b N sets the "
                                         "daemon's buffer for it, in events)\n")
                        sys.stderr.flush()
                        continue
                    if xml and not shown:
                        sys.stdout.write(render.XML_HEAD)
                    sys.stdout.write(_with_progname(text) + "\n")
                    shown += 1
                sys.stdout.flush()
        if not stopping:
            print(f"{PROG}: statewall closed the event stream", file=sys.stderr)
    except (OSError, ValueError) as e:
        print(f"{PROG}: cannot reach statewall at {path}: {e}", file=sys.stderr)
        return 1
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        for x in streams:
            x.close()
    try:
        if xml and shown:
            sys.stdout.write(render.XML_TAIL)
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    print(f"{PROG}: {shown} {what} events have been shown.", file=sys.stderr)
    return 0
