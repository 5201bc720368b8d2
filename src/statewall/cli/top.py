"""``statewall top``: a live, iptstate-like view of a running ``statewall run``'s table.

Owns: the options (the daemon's socket from ``--control=PATH``, else $STATEWALL_CONTROL,
else the default, as ``statewall conntrack``; conntrack's filter options ``-s -d -p
--sport --dport --state -f -m -u -w``, sent to the daemon; iptstate's ``-b`` sort column,
``-r`` reverse, ``-1`` single run, ``-c`` no colour, ``-t`` no totals), choosing the curses
screen or the plain output (``--once``, ``--json``, or when standard output is not a
terminal) and the exit status: 0 done, 1 the daemon could not be asked, 2 a bad option.
``-d`` is the destination filter (conntrack, iptstate) unless its value is a plain number
of seconds, which is top's ``-d`` (the refresh interval, also ``--delay`` / iptstate's
``-R``).
Must not know: the table's wire format (top.fetch), the screen layout (top.render).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from ..ctl.args import ParamError
from ..top import render
from ..top.fetch import FetchError, fetch
from ..top.model import (COLUMNS, SORT_LETTERS, Row, Snapshot, as_json, filter_rows,
                         sort_rows, totals, update)
from ..top.snapshot import filters
from ..top.view import View
from .run import DEFAULT_CONTROL

_SECONDS: Final = re.compile(r"^\d+(\.\d*)?$|^\.\d+$")
MIN_DELAY: Final = 0.1
# conntrack filter options passed through to the daemon: option -> dest
_FILTERS: Final = ((("-s", "--src", "--orig-src"), "ADDR[/LEN]"),
                   (("-p", "--protonum", "--proto"), "PROTO"),
                   (("--sport", "--orig-port-src"), "PORT"),
                   (("--dport", "--orig-port-dst"), "PORT"), (("--state",), "STATE"),
                   (("-f", "--family"), "ipv4|ipv6"), (("-m", "--mark"), "MARK[/MASK]"),
                   (("-u", "--status"), "STATUS"), (("-w", "--zone"), "ZONE"))


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "top", help="a live, iptstate-like view of a running 'statewall run' conntrack table",
        description="Shows the entries of a running 'statewall run' (control socket from "
                    "--control=PATH or $STATEWALL_CONTROL): Source, Destination, Proto, "
                    "State, TTL, packets, bytes and bytes/s between refreshes; NEW entries "
                    "bold, closing TCP entries red. Keys: b/B sort, f filter, p pause, "
                    "space refresh, h help, q quit.")
    p.add_argument("--control", metavar="PATH", default=None,
                   help=f"the daemon's control socket (default $STATEWALL_CONTROL or "
                        f"{DEFAULT_CONTROL})")
    p.add_argument("--delay", "-R", "--rate", dest="delay", type=_delay, default=None,
                   metavar="SECONDS", help="refresh interval (default 1; also -d SECONDS)")
    p.add_argument("-d", "--dst", "--orig-dst", dest="dst", metavar="ADDR|SECONDS",
                   help="destination ADDR[/LEN] filter, or the refresh interval when a "
                        "number")
    for names, metavar in _FILTERS:
        p.add_argument(*names, dest="f_" + names[0].lstrip("-"), metavar=metavar,
                       help="conntrack's filter (applied by the daemon)")
    p.add_argument("-b", "--sort", default="src", metavar="COLUMN",
                   help=f"sort column: {', '.join(COLUMNS)} (or iptstate's letters "
                        f"{''.join(SORT_LETTERS)})")
    p.add_argument("-r", "--reverse", action="store_true", help="reverse the sort order")
    p.add_argument("--filter", default="", metavar="TEXT",
                   help="the interactive filter's words to start with (see 'f')")
    p.add_argument("-1", "--once", "--single", dest="once", action="store_true",
                   help="print one screen (every entry) and exit, no curses")
    p.add_argument("-n", "--iterations", type=int, default=1, metavar="N",
                   help="with --once/--json or without a terminal: print N screens, "
                        "one per interval (from the second on with rates)")
    p.add_argument("--json", action="store_true", help="print the rows and totals as JSON "
                   "(one object per iteration)")
    p.add_argument("-c", "--no-color", dest="color", action="store_false",
                   help="no colours (bold/dim only)")
    p.add_argument("-t", "--no-totals", dest="show_totals", action="store_false",
                   help="no totals lines")
    p.set_defaults(func=main)


def _delay(v: str) -> float:
    try:
        d = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {v!r}") from None
    if not d >= MIN_DELAY or d > 86400:
        raise argparse.ArgumentTypeError(f"refresh interval {v} out of range "
                                         f"({MIN_DELAY}..86400 seconds)")
    return d


def _sort(v: str) -> str:
    col = SORT_LETTERS.get(v, v.lower())
    aliases = {"source": "src", "destination": "dst", "protocol": "proto", "pkts": "packets",
               "b/s": "rate", "bytes/s": "rate"}
    col = aliases.get(col, col)
    if col not in COLUMNS:
        raise ValueError(f"unknown sort column {v!r} (one of {', '.join(COLUMNS)})")
    return col


def options(args: argparse.Namespace) -> tuple[str, list[str], float, str]:
    """(control path, conntrack filter argv, delay, sort column); ValueError/ParamError."""
    path = args.control or os.environ.get("STATEWALL_CONTROL") or DEFAULT_CONTROL
    argv: list[str] = []
    delay = args.delay
    if args.dst is not None:
        if _SECONDS.match(args.dst):
            if delay is not None:
                raise ValueError("the refresh interval is given twice (-d N and --delay)")
            delay = _delay(args.dst)
        else:
            argv += ["-d", args.dst]
    for names, _ in _FILTERS:
        v = getattr(args, "f_" + names[0].lstrip("-"))
        if v is not None:
            argv += [names[0], v]
    filters(argv)                            # conntrack's checks, before asking the daemon
    return path, argv, 1.0 if delay is None else delay, _sort(args.sort)


def main(args: argparse.Namespace) -> int:
    try:
        path, argv, delay, sort = options(args)
    except (ValueError, ParamError, argparse.ArgumentTypeError) as e:
        print(f"statewall top: {e}", file=sys.stderr)
        return 2
    if args.iterations < 1:
        print("statewall top: -n must be at least 1", file=sys.stderr)
        return 2

    def fetcher() -> tuple[list[Row], int]:
        return fetch(path, argv)

    view = View(sort=sort, reverse=args.reverse, filter=args.filter.strip(),
                color=args.color, totals=args.show_totals)
    if args.once or args.json or not sys.stdout.isatty():
        return plain(fetcher, view, delay, args.iterations, args.json)
    try:
        fetcher()                            # say so now if the daemon is not there
    except FetchError as e:
        print(f"statewall top: {e}", file=sys.stderr)
        return 1
    from ..top import screen
    try:
        return screen.run(fetcher, view, delay)
    except Exception as e:                   # curses.error: no usable terminal
        if type(e).__module__.startswith(("_curses", "curses")):
            print(f"statewall top: terminal: {e} (TERM={os.environ.get('TERM')!r}); "
                  "printing once instead", file=sys.stderr)
            return plain(fetcher, view, delay, 1, False)
        raise


def plain(fetcher: Callable[[], tuple[list[Row], int]], view: View, delay: float, n: int,
          as_js: bool) -> int:
    """``--once`` / ``--json`` / no terminal: ``n`` screens, ``delay`` apart."""
    width = shutil.get_terminal_size((120, 24)).columns
    prev: Snapshot | None = None
    for i in range(n):
        if i:
            time.sleep(delay)
        t0 = time.monotonic()
        try:
            rows, total = fetcher()
        except FetchError as e:
            print(f"statewall top: {e}", file=sys.stderr)
            return 1
        prev = update(prev, Snapshot((t0 + time.monotonic()) / 2, rows, total))
        shown = sort_rows(filter_rows(prev.rows, view.filter), view.sort, view.reverse)
        tot = totals(shown, total)
        if as_js:
            print(json.dumps(as_json(shown, tot)))
        else:
            if i:
                print()
            print("\n".join(render.once(shown, tot, width, view.sort, view.reverse,
                                        time.strftime("%H:%M:%S"), view.totals,
                                        view.filter)))
        sys.stdout.flush()
    return 0
