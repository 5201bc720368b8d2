"""The model behind ``statewall top``: rows, rates, sorting, filtering, totals, highlight.

Owns: one ``Row`` per conntrack entry (from the daemon's compact ``top`` reply or from
``conntrack -L -o json`` objects), the identity of an entry across refreshes (its original
tuple and id), rates between two snapshots (bytes/s and packets/s of each entry, and the
totals), the sort orders of the columns, the interactive filter (substrings), the totals
line (entries by protocol and TCP state) and the highlight classes (NEW since the previous
refresh; TCP entries that are closing). Pure: time is a parameter, nothing is read or drawn.
Must not know: sockets, curses, the table itself. Follows iptstate 2.2 (its columns, its
sort keys, its "Total States" line) with conntrack's vocabulary.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..conntrack.conn import IPS, IPS_ASSURED, IPS_SEEN_REPLY

# the compact reply of the ``top`` request word (snapshot.py): one list per entry
FIELDS: Final = ("id", "l3num", "proto", "src", "dst", "sport", "dport", "state", "timeout",
                 "status", "opackets", "obytes", "rpackets", "rbytes")
PROTO_NAMES: Final[dict[int, str]] = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre",
                                      58: "icmpv6", 132: "sctp", 136: "udplite"}
PORT_PROTOS: Final = frozenset({6, 17, 33, 132, 136})
_STATUS_BITS: Final = {f.name: int(f) for f in IPS if f.name}

# highlight classes
NEW: Final = 1          # not in the previous snapshot
CLOSING: Final = 2      # a TCP entry on its way out
CLOSING_STATES: Final = frozenset({"FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE"})

# columns: name -> title (iptstate's, plus the counters and the rate)
COLUMNS: Final = ("src", "dst", "proto", "state", "ttl", "packets", "bytes", "rate")
TITLES: Final[dict[str, str]] = {"src": "Source", "dst": "Destination", "proto": "Proto",
                                 "state": "State", "ttl": "TTL", "packets": "Pkts",
                                 "bytes": "Bytes", "rate": "B/s"}
# iptstate's -b letters (no letter: source), for the command line
SORT_LETTERS: Final[dict[str, str]] = {"d": "dst", "p": "proto", "s": "state", "t": "ttl",
                                       "P": "packets", "b": "bytes", "r": "rate",
                                       "S": "src", "D": "dst"}

Key = tuple[int, int, str, str, int, int, int]


@dataclass(slots=True)
class Row:
    """One entry as top shows it. ``sport``/``dport`` are None for protocols without
    ports; ``rate``/``prate`` None until two snapshots are known."""

    id: int
    family: int                     # 4 or 6
    protonum: int
    src: str
    dst: str
    sport: int | None
    dport: int | None
    state: str                      # TCP: the conntrack state; others: UNREPLIED/REPLIED/ASSURED
    ttl: int
    status: int
    packets: int
    bytes: int
    rate: float | None = None
    prate: float | None = None
    marks: int = 0                  # NEW | CLOSING
    _text: str = field(default="", repr=False, compare=False)
    raw: tuple[int, int] = (0, 0)   # the tuple's two port fields (ICMP: id, type<<8|code)

    @property
    def proto(self) -> str:
        return PROTO_NAMES.get(self.protonum, str(self.protonum))

    @property
    def key(self) -> Key:
        return (self.family, self.protonum, self.src, self.dst, self.raw[0], self.raw[1],
                self.id)

    def endpoint(self, which: str) -> str:
        """``addr:port`` (IPv6 as ``[addr]:port``), or the bare address."""
        a, p = (self.src, self.sport) if which == "src" else (self.dst, self.dport)
        if p is None:
            return a
        return f"[{a}]:{p}" if self.family == 6 else f"{a}:{p}"

    def text(self) -> str:
        """What the interactive filter searches (lower case)."""
        if not self._text:
            self._text = (f"{self.endpoint('src')} {self.endpoint('dst')} {self.proto} "
                          f"{self.state}").lower()
        return self._text


def _state(protonum: int, state: str | None, status: int) -> str:
    if state is not None and protonum == 6:
        return state
    if not status & IPS_SEEN_REPLY:
        return "UNREPLIED"
    return "ASSURED" if status & IPS_ASSURED else "REPLIED"


def row_from_compact(v: Sequence[Any]) -> Row:
    """One list of the ``top`` reply (``FIELDS`` order) -> a Row; ValueError if malformed."""
    try:
        (id_, l3, proto, src, dst, sport, dport, state, ttl, status, opk, oby, rpk,
         rby) = v
        proto, sport, dport, status = int(proto), int(sport), int(dport), int(status)
        ports = proto in PORT_PROTOS
        return Row(int(id_), 6 if int(l3) == 10 else 4, proto, str(src), str(dst),
                   sport if ports else None, dport if ports else None,
                   _state(proto, state if state is None else str(state), status), int(ttl),
                   status, int(opk) + int(rpk), int(oby) + int(rby),
                   raw=(sport, dport))
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad top row {v!r}: {e}") from None


def row_from_json(e: dict[str, Any]) -> Row:
    """One ``conntrack -L -o json`` object (conntrack/format.py ``as_json``) -> a Row."""
    try:
        o, r = e["original"], e["reply"]
        proto = int(e["protonum"])
        status = 0
        for name in e.get("status", ()):
            status |= _STATUS_BITS.get(name, 0)
        if "sport" in o:
            a, b = int(o["sport"]), int(o["dport"])
        elif "type" in o:
            a, b = int(o["id"]), (int(o["type"]) << 8) | int(o["code"])
        else:
            a = b = 0
        ports = proto in PORT_PROTOS
        st = e.get("state")
        return Row(int(e["id"]), 6 if e["family"] == "ipv6" else 4, proto, str(o["src"]),
                   str(o["dst"]), a if ports else None, b if ports else None,
                   _state(proto, None if st is None else str(st), status), int(e["timeout"]),
                   status, int(o["packets"]) + int(r["packets"]),
                   int(o["bytes"]) + int(r["bytes"]), raw=(a, b))
    except (KeyError, TypeError, ValueError, AttributeError) as x:
        raise ValueError(f"bad conntrack JSON entry: {x!r}") from None


@dataclass
class Snapshot:
    """The table at one moment: ``time`` (the client's monotonic clock when it arrived),
    the rows that passed the daemon-side filters, and how many entries the table had."""

    time: float
    rows: list[Row]
    total: int

    def index(self) -> dict[Key, Row]:
        return {r.key: r for r in self.rows}


def classify(row: Row, new: bool) -> int:
    """Highlight bits of one row."""
    m = NEW if new else 0
    if row.protonum == 6 and row.state in CLOSING_STATES:
        m |= CLOSING
    return m


def update(prev: Snapshot | None, cur: Snapshot) -> Snapshot:
    """Fill in ``cur``'s rates and highlight marks from ``prev`` (the previous refresh).
    An entry seen before: its counters' growth over the interval; a new one: all its
    counters over the interval (it was made during it); no previous snapshot (or no time
    between them): no rates, nothing NEW. Counters that went down (a restarted worker)
    count as 0."""
    dt = cur.time - prev.time if prev is not None else 0.0
    old = prev.index() if prev is not None and dt > 0 else None
    for r in cur.rows:
        if old is None:
            r.rate = r.prate = None
            r.marks = classify(r, False)
            continue
        p = old.get(r.key)
        if p is None:
            r.rate, r.prate = r.bytes / dt, r.packets / dt
        else:
            r.rate = max(0, r.bytes - p.bytes) / dt
            r.prate = max(0, r.packets - p.packets) / dt
        r.marks = classify(r, p is None)
    return cur


# -- sorting ---------------------------------------------------------------------------------
_addr_ints: dict[str, tuple[int, int]] = {}


def addr_key(a: str) -> tuple[int, int]:
    """(family, numeric value) of an address text, cached (unparsable text sorts last)."""
    k = _addr_ints.get(a)
    if k is None:
        try:
            ip = ipaddress.ip_address(a)
            k = (ip.version, int(ip))
        except ValueError:
            k = (99, 0)
        if len(_addr_ints) < 1 << 18:
            _addr_ints[a] = k
    return k


def _num(v: float | None) -> float:
    return -1.0 if v is None else v


SORT_KEYS: Final[dict[str, Callable[[Row], Any]]] = {
    "src": lambda r: (addr_key(r.src), r.sport or 0),
    "dst": lambda r: (addr_key(r.dst), r.dport or 0),
    "proto": lambda r: r.proto,
    "state": lambda r: r.state,
    "ttl": lambda r: r.ttl,
    "packets": lambda r: r.packets,
    "bytes": lambda r: r.bytes,
    "rate": lambda r: _num(r.rate),
}


def sort_rows(rows: list[Row], column: str, reverse: bool = False) -> list[Row]:
    """Rows ordered by ``column`` (ascending, as iptstate; ``reverse``: the exact mirror).
    Ties keep source order, then destination (a stable, predictable screen)."""
    if column not in SORT_KEYS:
        raise ValueError(f"unknown column {column!r} (one of {', '.join(COLUMNS)})")
    out = sorted(rows, key=lambda r: (addr_key(r.src), r.sport or 0, addr_key(r.dst),
                                      r.dport or 0, r.id))
    out.sort(key=SORT_KEYS[column])
    if reverse:
        out.reverse()
    return out


def next_column(column: str, step: int = 1) -> str:
    """The column after (``step`` 1) or before (-1) ``column`` in the cycle."""
    i = COLUMNS.index(column) if column in COLUMNS else 0
    return COLUMNS[(i + step) % len(COLUMNS)]


# -- filtering -------------------------------------------------------------------------------
def filter_rows(rows: Iterable[Row], text: str) -> list[Row]:
    """The rows whose text contains every blank-separated term of ``text`` (case does not
    matter; a term starting with ``!`` must not appear). Terms match addresses,
    ``addr:port``, ``:port``, the protocol and the state: ``tcp :22 !ESTAB``."""
    terms = text.lower().split()
    if not terms:
        return list(rows)
    pos = [t for t in terms if not t.startswith("!")]
    neg = [t[1:] for t in terms if t.startswith("!") and len(t) > 1]
    return [r for r in rows if all(t in r.text() for t in pos)
            and not any(t in r.text() for t in neg)]


# -- totals ----------------------------------------------------------------------------------
@dataclass
class Totals:
    entries: int                         # rows counted (after filters)
    table: int                           # entries in the daemon's table(s)
    by_proto: dict[str, int]             # tcp/udp/icmp/other (iptstate's four) + others seen
    tcp_states: dict[str, int]
    rate: float | None                   # bytes/s of the counted rows
    prate: float | None
    new: int
    closing: int

    @property
    def filtered(self) -> int:
        return max(0, self.table - self.entries)


def totals(rows: Sequence[Row], table: int) -> Totals:
    by = {"tcp": 0, "udp": 0, "icmp": 0, "other": 0}
    st: dict[str, int] = {}
    rate = prate = 0.0
    known = False
    new = closing = 0
    for r in rows:
        p = r.proto if r.protonum in (6, 17, 1) else ("icmp" if r.protonum == 58 else "other")
        by[p] += 1
        if r.protonum == 6:
            st[r.state] = st.get(r.state, 0) + 1
        if r.rate is not None:
            known = True
            rate += r.rate
            prate += r.prate or 0.0
        new += bool(r.marks & NEW)
        closing += bool(r.marks & CLOSING)
    return Totals(len(rows), table, by, dict(sorted(st.items(), key=lambda kv: (-kv[1], kv[0]))),
                  rate if known else None, prate if known else None, new, closing)


def as_json(rows: Sequence[Row], t: Totals) -> dict[str, Any]:
    """``statewall top --json``: the rows and totals as plain data."""
    return {
        "totals": {"entries": t.entries, "table": t.table, "filtered": t.filtered,
                   "by_proto": t.by_proto, "tcp_states": t.tcp_states,
                   "bytes_per_s": t.rate, "packets_per_s": t.prate},
        "entries": [{"id": r.id, "family": f"ipv{r.family}", "proto": r.proto,
                     "protonum": r.protonum, "src": r.src, "dst": r.dst, "sport": r.sport,
                     "dport": r.dport, "state": r.state, "ttl": r.ttl, "packets": r.packets,
                     "bytes": r.bytes, "bytes_per_s": r.rate, "packets_per_s": r.prate,
                     "new": bool(r.marks & NEW), "closing": bool(r.marks & CLOSING)}
                    for r in rows],
    }
