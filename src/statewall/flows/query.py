"""Querying flow records: filters as conntrack names them, time ranges, output formats.

Owns: ``Filters`` (what ``statewall flows`` was asked), parsing its values (addresses and
CIDR, protocol names, TCP states, ``--ended-by``, ISO or relative times), turning them into
one SQL ``WHERE`` (``?`` parameters only, never user text in the SQL) plus the checks SQL
cannot do portably (address prefixes), running the query with ``--limit`` (the newest N,
printed oldest first), and the three output formats: an aligned table, JSON lines, CSV.
Must not know: which database (a ``Store`` answers ``select``), command-line syntax.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, Callable, Final, Iterator

from ..conntrack.proto.registry import PROTO_NAMES
from ..conntrack.proto.tcp import TCP_CONNTRACK_NAMES
from .record import COLUMN_NAMES, ENDED_BY
from .store import Store

FORMATS: Final = ("table", "json", "csv")
_PROTO_BY_NAME: Final = {v: k for k, v in PROTO_NAMES.items()}
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REL: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
STATES: Final = frozenset(TCP_CONNTRACK_NAMES) | {"LISTEN"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class QueryError(ValueError):
    """A filter value that cannot be used (the message names the option)."""


@dataclass
class Filters:
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    # (column index in a selected row, network) for prefixes shorter than an address
    nets: list[tuple[int, Network]] = field(default_factory=list)

    def eq(self, column: str, value: Any) -> None:
        self.where.append(f"{column} = ?")
        self.params.append(value)

    def any_of(self, column: str, values: list[Any]) -> None:
        self.where.append(f"{column} IN ({', '.join('?' * len(values))})")
        self.params.extend(values)

    def sql(self) -> tuple[str, list[Any]]:
        return " AND ".join(self.where), list(self.params)

    def address(self, column: str, text: str, option: str) -> None:
        """An address or CIDR (``-s 198.51.100.0/24``)."""
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise QueryError(f"{option}: bad address {text!r}") from None
        if net.prefixlen == net.max_prefixlen:
            self.eq(column, str(net.network_address))
            return
        self.where.append("family = ?")
        self.params.append("ipv4" if net.version == 4 else "ipv6")
        self.nets.append((1 + COLUMN_NAMES.index(column), net))

    def keep(self, row: tuple[Any, ...]) -> bool:
        for i, net in self.nets:
            try:
                if ipaddress.ip_address(row[i]) not in net:
                    return False
            except ValueError:
                return False
        return True


def parse_port(text: str, option: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        v = -1
    if not 0 <= v <= 65535:
        raise QueryError(f"{option}: bad port {text!r} (0..65535)")
    return v


def parse_proto(text: str) -> int:
    t = text.strip().lower()
    if t in _PROTO_BY_NAME:
        return _PROTO_BY_NAME[t]
    if t == "ipv6-icmp":
        return 58
    try:
        v = int(t, 0)
    except ValueError:
        raise QueryError(f"-p: unknown protocol {text!r}") from None
    if not 0 <= v <= 255:
        raise QueryError(f"-p: bad protocol number {text!r} (0..255)")
    return v


def parse_states(text: str) -> list[str]:
    out = []
    for s in text.split(","):
        s = s.strip().upper()
        if s not in STATES:
            raise QueryError(f"--state: unknown TCP state {s!r} (one of "
                             f"{', '.join(TCP_CONNTRACK_NAMES)})")
        out.append("SYN_SENT2" if s == "LISTEN" else s)
    return out


def parse_ended_by(text: str) -> list[str]:
    out = []
    for s in text.split(","):
        s = s.strip().lower().replace("-", "_")
        if s not in ENDED_BY:
            raise QueryError(f"--ended-by: unknown reason {s!r} (one of "
                             f"{', '.join(ENDED_BY)})")
        out.append(s)
    return out


def parse_time(text: str, option: str, now: float) -> float:
    """Seconds since the epoch: ISO 8601 (no zone: UTC) or relative to now (``90``,
    ``10m``, ``2h``, ``1d``, ``1w``: that long ago)."""
    t = text.strip()
    m = _REL.match(t)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2) or "s"]
    try:
        d = datetime.fromisoformat(t)
    except ValueError:
        raise QueryError(f"{option}: bad time {text!r} (ISO 8601 like 2026-11-27T10:00:00Z "
                         "or relative like 10m, 2h, 1d)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def run(store: Store, f: Filters, limit: int | None) -> Iterator[tuple[Any, ...]]:
    """Matching rows (``id`` then ``COLUMN_NAMES``), oldest first; with ``limit`` the
    newest ``limit`` of them."""
    where, params = f.sql()
    if limit is None:
        for row in store.select(where, params, desc=False):
            if f.keep(row):
                yield row
        return
    got: list[tuple[Any, ...]] = []
    if limit > 0:
        for row in store.select(where, params, desc=True):
            if f.keep(row):
                got.append(row)
                if len(got) >= limit:
                    break
    yield from reversed(got)


# -- output -----------------------------------------------------------------------------
def iso(t: float) -> str:
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _endpoint(a: str, port: Any) -> str:
    if port is None:
        return a
    return f"[{a}]:{port}" if ":" in a else f"{a}:{port}"


def _side(r: dict[str, Any], side: str) -> str:
    pre = "orig_" if side == "orig" else "reply_"
    s, d = r[pre + "src"], r[pre + "dst"]
    if r["icmp_type"] is not None:
        t = r["icmp_type"] if side == "orig" else r["reply_icmp_type"]
        c = r["icmp_code"] if side == "orig" else r["reply_icmp_code"]
        return f"{s} > {d} type={t} code={c} id={r['icmp_id']}"
    return f"{_endpoint(s, r[pre + 'sport'])} > {_endpoint(d, r[pre + 'dport'])}"


TABLE_HEAD: Final = ("START", "DURATION", "PROTO", "STATE", "ORIGINAL", "REPLY", "PACKETS",
                     "BYTES", "ENDED-BY")
_WIDTHS: Final = (24, 9, 6, 11, 44, 44, 11, 15, 0)


def _fmt(cells: tuple[str, ...]) -> str:
    out = []
    for c, w in zip(cells, _WIDTHS):
        out.append(c.rjust(w) if w in (9,) else c.ljust(w) if w else c)
    return " ".join(out).rstrip()


def table_line(r: dict[str, Any]) -> str:
    dur = max(0.0, r["end_time"] - r["start_time"])
    return _fmt((iso(r["start_time"]), f"{dur:.3f}s", r["proto"], r["state"] or "-",
                 _side(r, "orig"), _side(r, "reply"),
                 f"{r['orig_packets']}/{r['reply_packets']}",
                 f"{r['orig_bytes']}/{r['reply_bytes']}", r["ended_by"]))


def write(rows: Iterator[tuple[Any, ...]], fmt: str, out: IO[str]) -> int:
    """Print rows in ``fmt``; returns how many."""
    names = ("id",) + COLUMN_NAMES
    n = 0
    emit: Callable[[dict[str, Any]], None]
    if fmt == "json":
        def emit(r: dict[str, Any]) -> None:
            out.write(json.dumps(r) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)

        def emit(r: dict[str, Any]) -> None:
            w.writerow(["" if v is None else v for v in r.values()])
    else:
        out.write(_fmt(TABLE_HEAD) + "\n")

        def emit(r: dict[str, Any]) -> None:
            out.write(table_line(r) + "\n")
    for row in rows:
        emit(dict(zip(names, row)))
        n += 1
    return n
