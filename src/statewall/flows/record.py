"""Flow records: what is kept of a connection-tracking entry when it is destroyed.

Owns: the DESTROY listener (``listener``: a cheap snapshot of the dying entry, handed to a
``put`` callable - no formatting, no I/O on the packet path), turning a snapshot into a row
(``build``), the row's columns (``COLUMNS``, the one description of the ``flows`` table that
both sinks and the query command use) and how an entry ended (``ended_by``).
Must not know: databases, threads, clocks (the wall-clock offset is a parameter).
Follows conntrack's DESTROY event (ctnetlink ``ctnetlink_conntrack_event``: both tuples,
counters, status, mark, zone) plus the entry's start time and the reason it died.

Times: the tracker's clock is monotonic in live mode; a row's ``start_time``/``end_time``
are seconds since the epoch, ``monotonic + offset`` with ``offset = time.time() -
time.monotonic()`` measured by the caller.
"""

from __future__ import annotations

from typing import Any, Callable, Final

from ..conntrack.conn import (
    END_DELETED,
    END_EARLY_DROP,
    END_KILLED,
    END_RST,
    END_TIMEOUT,
    IPCT_DESTROY,
    IPS,
    IPS_DST_NAT,
    IPS_SRC_NAT,
    Conn,
)
from ..conntrack.core import EventSink, Tracker
from ..conntrack.format import addr, proto_name

# A snapshot of a destroyed entry, taken on the packet path (plain tuple, ~1 us):
# (orig, reply, l3num, status, state name, mark, acct copy, start, end, why, helper, id)
Snapshot = tuple[Any, ...]

# how a flow ended (the ``ended_by`` column)
ENDED_BY: Final = ("timeout", "close", "rst", "deleted", "early_drop", "killed", "shutdown")
END_SHUTDOWN: Final = "shutdown"       # the worker stopped without a state file

_PORTS: Final = frozenset({6, 17, 33, 132, 136})
_ICMP: Final = frozenset({1, 58})
_GRE: Final = 47

# (name, SQLite type, PostgreSQL type): the ``flows`` table after its ``id`` column.
# Schema version 1 (docs/flows.md).
SCHEMA_VERSION: Final = 1
COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    ("start_time", "REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    ("end_time", "REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
    ("family", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("proto", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("protonum", "INTEGER NOT NULL", "SMALLINT NOT NULL"),
    ("zone", "INTEGER NOT NULL", "INTEGER NOT NULL"),
    ("orig_src", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("orig_dst", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("orig_sport", "INTEGER", "INTEGER"),
    ("orig_dport", "INTEGER", "INTEGER"),
    ("reply_src", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("reply_dst", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("reply_sport", "INTEGER", "INTEGER"),
    ("reply_dport", "INTEGER", "INTEGER"),
    ("icmp_type", "INTEGER", "SMALLINT"),
    ("icmp_code", "INTEGER", "SMALLINT"),
    ("icmp_id", "INTEGER", "INTEGER"),
    ("reply_icmp_type", "INTEGER", "SMALLINT"),
    ("reply_icmp_code", "INTEGER", "SMALLINT"),
    ("snat", "INTEGER NOT NULL", "SMALLINT NOT NULL"),
    ("dnat", "INTEGER NOT NULL", "SMALLINT NOT NULL"),
    ("nat_src", "TEXT", "TEXT"),
    ("nat_sport", "INTEGER", "INTEGER"),
    ("nat_dst", "TEXT", "TEXT"),
    ("nat_dport", "INTEGER", "INTEGER"),
    ("orig_packets", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("orig_bytes", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("reply_packets", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("reply_bytes", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("mark", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("state", "TEXT", "TEXT"),
    ("status", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("ended_by", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("helper", "TEXT", "TEXT"),
    ("ct_id", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("queue", "INTEGER NOT NULL", "INTEGER NOT NULL"),
)
COLUMN_NAMES: Final = tuple(c[0] for c in COLUMNS)
Row = tuple[Any, ...]

# status bits worth keeping (DYING is set on every destroyed entry: left out)
_STATUS_BITS: Final = tuple((int(f), f.name) for f in IPS if f.name and f is not IPS.DYING)
_status_cache: dict[int, str] = {}


def listener(tracker: Tracker, put: Callable[[Snapshot], None]) -> EventSink:
    """The ecache listener: on DESTROY, a snapshot of the entry goes to ``put``."""
    l4 = tracker.l4

    def on_event(now: float, bits: int, ct: Conn) -> None:
        if bits & IPCT_DESTROY:
            put((ct.orig, ct.reply, ct.l3num, ct.status, l4[ct.proto].state_name(ct),
                 ct.mark, ct.acct[:], ct.start, now, tracker.why, ct.helper, ct.id))
    return on_event


def snapshot(tracker: Tracker, ct: Conn, now: float, why: str) -> Snapshot:
    """A snapshot of a live entry (an entry that ends without a DESTROY: shutdown)."""
    return (ct.orig, ct.reply, ct.l3num, ct.status,
            tracker.l4[ct.proto].state_name(ct), ct.mark, ct.acct[:], ct.start, now, why,
            ct.helper, ct.id)


def ended_by(why: str, proto: int, state: str | None) -> str:
    """The ``ended_by`` value: the kill reason, refined by the final TCP state - an entry
    that timed out (or was killed) in TIME_WAIT was closed with FIN/ACKs, one in CLOSE saw
    a RST."""
    if why == END_TIMEOUT or why == END_KILLED:
        if proto == 6:
            if state == "TIME_WAIT":
                return "close"
            if state == "CLOSE":
                return END_RST
        return why
    if why in (END_DELETED, END_EARLY_DROP, END_RST, END_SHUTDOWN):
        return why
    return END_KILLED


def status_names(status: int) -> str:
    """``SEEN_REPLY,ASSURED,CONFIRMED``: the set ``IPS_*`` bits by name, lowest first."""
    s = _status_cache.get(status)
    if s is None:
        s = ",".join(name for bit, name in _STATUS_BITS if status & bit)
        if len(_status_cache) < 4096:
            _status_cache[status] = s
    return s


def build(s: Snapshot, offset: float, queue: int = 0) -> Row:
    """One row of the ``flows`` table (values in ``COLUMN_NAMES`` order)."""
    orig, reply, l3num, status, state, mark, acct, start, end, why, helper, ct_id = s
    p = orig[2]
    osp = odp = rsp = rdp = None
    it = ic = iid = rit = ric = None
    if p in _PORTS or p == _GRE:
        osp, odp, rsp, rdp = orig[3], orig[4], reply[3], reply[4]
    elif p in _ICMP:
        it, ic, iid = orig[4] >> 8, orig[4] & 0xFF, orig[3]
        rit, ric = reply[4] >> 8, reply[4] & 0xFF
    snat = 1 if status & IPS_SRC_NAT else 0
    dnat = 1 if status & IPS_DST_NAT else 0
    nat_src = nat_sport = nat_dst = nat_dport = None
    ports = p in _PORTS
    if snat:          # the reply goes back to the new source
        nat_src = addr(reply[1])
        nat_sport = reply[4] if ports else None
    if dnat:          # the reply comes from the new destination
        nat_dst = addr(reply[0])
        nat_dport = reply[3] if ports else None
    return (start + offset, end + offset, "ipv4" if l3num == 2 else "ipv6", proto_name(p), p,
            orig[5], addr(orig[0]), addr(orig[1]), osp, odp,
            addr(reply[0]), addr(reply[1]), rsp, rdp, it, ic, iid, rit, ric,
            snat, dnat, nat_src, nat_sport, nat_dst, nat_dport,
            acct[0], acct[1], acct[2], acct[3], mark, state, status_names(status),
            ended_by(why, p, state), helper, ct_id, queue)


def as_dict(row: Row) -> dict[str, Any]:
    return dict(zip(COLUMN_NAMES, row))
