"""``statewall flows``: query the flow records ``statewall run --flows`` writes.

Owns: the options (conntrack's filter names, time range, limit, format) and the exit
status: 0 (also when nothing matched), 1 when the database cannot be read, 2 for bad
options. Must not know: SQL dialects (``statewall.flows.query`` / ``store``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

_FILTERS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    # (flags, dest, column, what)
    (("-s", "--src", "--orig-src"), "src", "orig_src", "original source address or CIDR"),
    (("-d", "--dst", "--orig-dst"), "dst", "orig_dst", "original destination address or CIDR"),
    (("-r", "--reply-src"), "rsrc", "reply_src", "reply source address or CIDR"),
    (("-q", "--reply-dst"), "rdst", "reply_dst", "reply destination address or CIDR"),
)
_PORTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("--sport", "--orig-port-src"), "sport", "orig_sport"),
    (("--dport", "--orig-port-dst"), "dport", "orig_dport"),
    (("--reply-port-src",), "rsport", "reply_sport"),
    (("--reply-port-dst",), "rdport", "reply_dport"),
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "flows", help="query the flow records of 'statewall run --flows'",
        description="List the connections that ended, from the database 'statewall run "
                    "--flows' writes (SQLite file or postgresql:// URL). Filters use "
                    "conntrack's names; the time range selects flows that were alive in "
                    "it. Safe while the daemon writes.")
    p.add_argument("--db", required=True, metavar="PATH|URL",
                   help="the flow database: a SQLite file or a postgresql:// URL")
    for flags, dest, _, what in _FILTERS:
        p.add_argument(*flags, dest=dest, metavar="ADDR[/LEN]", help=what)
    p.add_argument("-p", "--proto", metavar="PROTO", help="protocol name or number")
    for flags, dest, _ in _PORTS:
        p.add_argument(*flags, dest=dest, metavar="PORT")
    p.add_argument("-f", "--family", choices=("ipv4", "ipv6"))
    p.add_argument("--state", metavar="STATE[,...]", help="final TCP state (TIME_WAIT, ...)")
    p.add_argument("--ended-by", metavar="WHY[,...]",
                   help="timeout, close, rst, deleted, early_drop, killed, shutdown")
    p.add_argument("--status", metavar="FLAG[,...]",
                   help="status flags every flow must have (ASSURED, SEEN_REPLY, SRC_NAT..)")
    p.add_argument("-m", "--mark", metavar="MARK", help="ct mark")
    p.add_argument("-w", "--zone", metavar="ZONE", help="conntrack zone")
    p.add_argument("--since", metavar="TIME",
                   help="flows that ended at or after TIME: ISO 8601 (UTC unless a zone is "
                        "given) or relative: 90, 10m, 2h, 1d")
    p.add_argument("--until", metavar="TIME", help="flows that started at or before TIME")
    p.add_argument("--limit", type=int, metavar="N", help="the newest N matching flows")
    p.add_argument("-o", "--output", choices=("table", "json", "csv"), default="table",
                   help="table (default), json (one object per line) or csv")
    p.set_defaults(func=run)


def _int(text: str, option: str, hi: int) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        v = -1
    if not 0 <= v <= hi:
        raise ValueError(f"{option}: bad value {text!r} (0..{hi})")
    return v


def filters(args: argparse.Namespace, now: float) -> Any:
    from ..flows import query as q
    f = q.Filters()
    for flags, dest, column, _ in _FILTERS:
        v = getattr(args, dest)
        if v is not None:
            f.address(column, v, flags[0])
    if args.proto is not None:
        f.eq("protonum", q.parse_proto(args.proto))
    for flags, dest, column in _PORTS:
        v = getattr(args, dest)
        if v is not None:
            f.eq(column, q.parse_port(v, flags[0]))
    if args.family:
        f.eq("family", args.family)
    if args.state:
        f.any_of("state", q.parse_states(args.state))
    if args.ended_by:
        f.any_of("ended_by", q.parse_ended_by(args.ended_by))
    if args.status:
        from ..conntrack.conn import IPS
        for name in args.status.split(","):
            n = name.strip().upper()
            if n not in IPS.__members__ or n == "DYING":
                raise q.QueryError(f"--status: unknown flag {name!r}")
            f.where.append("(',' || status || ',') LIKE ?")
            f.params.append(f"%,{n},%")
    if args.mark is not None:
        f.eq("mark", _int(args.mark, "--mark", 0xFFFFFFFF))
    if args.zone is not None:
        f.eq("zone", _int(args.zone, "--zone", 0xFFFF))
    if args.since:
        f.where.append("end_time >= ?")
        f.params.append(q.parse_time(args.since, "--since", now))
    if args.until:
        f.where.append("start_time <= ?")
        f.params.append(q.parse_time(args.until, "--until", now))
    if args.limit is not None and args.limit < 0:
        raise q.QueryError("--limit: must be >= 0")
    return f


def run(args: argparse.Namespace) -> int:
    from ..flows import query as q
    from ..flows import store
    try:
        f = filters(args, time.time())
        if store.is_pg(args.db):
            store.check_target(args.db)
    except ValueError as e:
        print(f"statewall flows: {e}", file=sys.stderr)
        return 2
    try:
        db = store.open_reader(args.db)
    except store.StoreError as e:
        print(f"statewall flows: {e}", file=sys.stderr)
        return 1
    try:
        q.write(q.run(db, f, args.limit), args.output, sys.stdout)
    except store.StoreError as e:
        print(f"statewall flows: {e}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0
