"""``statewall conntrack``: conntrack-tools' command line against a running ``statewall run``.

Owns: reading the arguments as conntrack 1.4.7 does (``ctl.args``), ``-R FILE|-`` (one
command per line, blank lines ignored, deletes of nothing not an error), sending each
command over the control socket (``--control=PATH``, else $STATEWALL_CONTROL, else the
default) and printing the reply; the exit status is conntrack's: 0 done, 1 the operation
failed (exists, not found, nothing deleted/updated), 2 a parameter problem.
Must not know: the table; the daemon's worker executes every command (``ctl.ops``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..ctl import args as ctargs
from ..ctl.server import request
from .run import DEFAULT_CONTROL

PROG = "conntrack v1.4.7 (conntrack-tools)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("conntrack", prefix_chars="+", add_help=False,
                       help="the conntrack-tools command line (-L -G -D -I -U -A -F -C -S -R) "
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
    try:
        reply = request(path, argv, batch)
    except (OSError, ValueError) as e:
        print(f"{PROG}: cannot reach statewall at {path}: {e}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"{PROG}: {reply.get('error')}", file=sys.stderr)
        return 1
    sys.stdout.write(str(reply.get("out", "")))
    sys.stdout.flush()
    sys.stderr.write(str(reply.get("err", "")))
    return int(reply.get("rc", 1))


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
            print(f"{PROG}: {e}", file=sys.stderr)
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
        print(f"{PROG}: {e}", file=sys.stderr)
        return ctargs.EXIT_PARAM
    if cmd.cmd == "help":
        print(__doc__)
        return 0
    if cmd.cmd == "load":
        return _load(path, cmd.load_file or "-")
    return _send(path, argv, batch=False)
