"""Prometheus metrics: one worker's snapshot (a JSON-able dict) and the exposition text.

Owns: what a worker reports for a scrape (``snapshot``: the table counted once per
protocol and TCP state, the ``conntrack -S`` counters, INVALID reasons, verdict counters,
queue drops, the decision-latency histogram), the bucket bounds of that histogram, and
``render``: the snapshots of every queue -> text format 0.0.4 (``# HELP``, ``# TYPE``,
escaped label values), summed over the workers.
Must not know: sockets, HTTP, processes. Pure: ``now`` and the objects come in, a dict or
a string goes out.
Names follow node_exporter's conntrack collector (``node_nf_conntrack_entries``,
``_entries_limit``, ``_stat_*``, all gauges as there); statewall's own are
``statewall_*``.
"""

from __future__ import annotations

import math
from typing import Any, Final, Iterable

from ..conntrack.core import Tracker
from ..conntrack.format import proto_name
from ..conntrack.proto.tcp import TCP_CONNTRACK_NAMES

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# decision latency buckets (upper bounds, nanoseconds): Firewall.process takes ~10-50 us
BOUNDS_NS: Final = (5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
                    2_000_000, 5_000_000, 10_000_000, 50_000_000)
MAX_REASONS: Final = 200        # INVALID reason label values per worker (the rest: "other")

# node_exporter's conntrack collector: metric suffix, tracker.stats key, help
NODE_STATS: Final = (
    ("found", "found", "Number of searched entries which were successful."),
    ("invalid", "invalid", "Number of packets seen which can not be tracked."),
    ("ignore", "ignore", "Number of packets seen which are already connected to a conntrack "
                         "entry (statewall does not count these: always 0)."),
    ("insert", "insert", "Number of entries inserted into the list."),
    ("insert_failed", "insert_failed", "Number of entries for which list insertion was "
                                       "attempted but failed."),
    ("drop", "drop", "Number of packets dropped due to conntrack failure."),
    ("early_drop", "early_drop", "Number of dropped conntrack entries to make room for new "
                                 "ones, if maximum table size was reached."),
    ("search_restart", "search_restart", "Number of conntrack table lookups which had to be "
                                         "restarted due to hashtable resizes."),
)
# conntrack -S counters node_exporter has no name for
EXTRA_STATS: Final = ("error", "clash_resolve", "chaintoolong")
# worker counters: statewall_packets_total{verdict}, _dropped_total{reason}, events
VERDICTS: Final = (("accept", "accepted"), ("drop", "dropped"), ("queue", "icmp_passed_on"))
DROP_REASONS: Final = (("undecodable", "undecodable"), ("error", "errors"), ("held", "held"))
EVENTS: Final = ("marked", "rewritten", "reject_sent", "reject_failed", "log_lines",
                 "nflog_ignored", "checkpoints")


# -- the worker side ----------------------------------------------------------------------
def table_counts(tr: Tracker, now: float) -> tuple[int, dict[tuple[str, str], int]]:
    """The live entries (those ``conntrack -C`` counts) and their number per (protocol,
    TCP state); non-TCP entries have state "". One pass over the table."""
    raw: dict[tuple[int, int], int] = {}
    get = raw.get
    for key, ct in tr.table.hash.items():
        if key is ct.orig and ct.timeout > now:      # each entry once (Table.entries)
            k = (ct.proto, ct.state if ct.proto == 6 else -1)
            raw[k] = get(k, 0) + 1
    out: dict[tuple[str, str], int] = {}
    for (proto, state), n in raw.items():
        name = proto_name(proto)
        pname = name if name != "unknown" else str(proto)
        if state < 0:
            sname = ""
        elif state < len(TCP_CONNTRACK_NAMES):
            sname = TCP_CONNTRACK_NAMES[state]
        else:
            sname = str(state)
        out[(pname, sname)] = out.get((pname, sname), 0) + n
    return sum(raw.values()), out


def _capped(reasons: dict[str, int]) -> dict[str, int]:
    if len(reasons) <= MAX_REASONS:
        return dict(reasons)
    top = sorted(reasons.items(), key=lambda kv: -kv[1])
    out = dict(top[:MAX_REASONS - 1])
    out["other"] = out.get("other", 0) + sum(n for _, n in top[MAX_REASONS - 1:])
    return out


def snapshot(tr: Tracker, now: float, queue: int, status: dict[str, Any],
             latency: list[int], latency_sum_ns: int) -> dict[str, Any]:
    """What one worker answers to a ``metrics`` request. ``status`` is the worker's
    ``status()`` (counters, queue drops); ``latency`` the histogram's bucket counts (one
    per bound in BOUNDS_NS, then +Inf; not cumulative)."""
    entries, by_state = table_counts(tr, now)
    return {
        "queue": queue,
        "entries": entries,
        "limit": tr.settings.nf_conntrack_max,
        "by_state": [[p, s, n] for (p, s), n in sorted(by_state.items())],
        "expectations": len(tr.expect),
        "stats": dict(tr.stats),
        "invalid": _capped(tr.invalid_reasons),
        "counters": dict(status.get("counters", {})),
        "queue_overflow": int(status.get("queue_overflow", 0)),
        "netlink_overrun": int(status.get("netlink_overrun", 0)),
        "queue_waiting": int(status.get("queue_waiting", 0)),
        "latency": {"counts": list(latency), "sum_ns": latency_sum_ns},
    }


# -- the exposition text -------------------------------------------------------------------
def escape_label(v: str) -> str:
    """Label value escaping of text format 0.0.4: backslash, double quote, newline."""
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def fmt_value(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


Labels = tuple[tuple[str, str], ...]


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, typ: str, help: str,
               samples: Iterable[tuple[str, Labels, float]]) -> None:
        self.lines.append(f"# HELP {name} {escape_help(help)}")
        self.lines.append(f"# TYPE {name} {typ}")
        for sname, labels, value in samples:
            if labels:
                body = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
                self.lines.append(f"{sname}{{{body}}} {fmt_value(value)}")
            else:
                self.lines.append(f"{sname} {fmt_value(value)}")

    def one(self, name: str, typ: str, help: str, value: float) -> None:
        self.family(name, typ, help, [(name, (), value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _int(d: Any, key: str) -> int:
    v = d.get(key, 0) if isinstance(d, dict) else 0
    return v if isinstance(v, int) else 0


def render(workers: Iterable[tuple[int, dict[str, Any] | None]],
           scrape_seconds: float | None = None) -> str:
    """The exposition text for every queue's snapshot (None: the worker did not answer;
    it counts as down and adds nothing to the sums)."""
    ws = sorted(workers, key=lambda w: w[0])
    up = [(q, s) for q, s in ws if isinstance(s, dict)]
    snaps = [s for _, s in up]
    o = _Out()
    o.one("node_nf_conntrack_entries", "gauge",
          "Number of currently allocated flow entries for connection tracking.",
          sum(_int(s, "entries") for s in snaps))
    o.one("node_nf_conntrack_entries_limit", "gauge",
          "Maximum size of connection tracking table (nf_conntrack_max, summed over the "
          "workers: each queue has its own table).",
          sum(_int(s, "limit") for s in snaps))
    for suffix, key, help in NODE_STATS:
        o.one(f"node_nf_conntrack_stat_{suffix}", "gauge", help,
              sum(_int(s.get("stats"), key) for s in snaps))
    o.family("statewall_conntrack_stat", "gauge",
             "conntrack -S counters node_exporter has no name for.",
             [("statewall_conntrack_stat", (("counter", k),),
               sum(_int(s.get("stats"), k) for s in snaps)) for k in EXTRA_STATS])
    states: dict[tuple[str, str], int] = {}
    for s in snaps:
        for item in s.get("by_state", []):
            if isinstance(item, list) and len(item) == 3 and isinstance(item[2], int):
                k = (str(item[0]), str(item[1]))
                states[k] = states.get(k, 0) + item[2]
    o.family("statewall_conntrack_entries", "gauge",
             "Live conntrack entries per protocol and TCP state (state only for tcp).",
             [("statewall_conntrack_entries",
               (("proto", p), ("state", st)) if st else (("proto", p),), n)
              for (p, st), n in sorted(states.items())])
    o.one("statewall_conntrack_expectations", "gauge", "Expectations in the tables.",
          sum(_int(s, "expectations") for s in snaps))
    reasons: dict[str, int] = {}
    for s in snaps:
        inv = s.get("invalid")
        if isinstance(inv, dict):
            for r, n in inv.items():
                if isinstance(n, int):
                    reasons[str(r)] = reasons.get(str(r), 0) + n
    o.family("statewall_conntrack_invalid_total", "counter",
             "Packets conntrack found INVALID, per reason.",
             [("statewall_conntrack_invalid_total", (("reason", r),), n)
              for r, n in sorted(reasons.items())])
    o.family("statewall_packets_total", "counter",
             "Packets decided, per verdict (queue: an ICMP error passed on to the next "
             "queue).",
             [("statewall_packets_total", (("verdict", v),),
               sum(_int(s.get("counters"), k) for s in snaps)) for v, k in VERDICTS])
    o.family("statewall_packets_dropped_total", "counter",
             "Dropped packets that no rule decided, per reason (part of verdict=drop).",
             [("statewall_packets_dropped_total", (("reason", r),),
               sum(_int(s.get("counters"), k) for s in snaps)) for r, k in DROP_REASONS])
    o.family("statewall_worker_events_total", "counter",
             "Side effects of decisions and worker housekeeping.",
             [("statewall_worker_events_total", (("event", e),),
               sum(_int(s.get("counters"), e) for s in snaps)) for e in EVENTS])
    o.family("statewall_queue_overflow_total", "counter",
             "Packets the kernel dropped because the queue was full (nfnetlink_queue "
             "queue_dropped).",
             [("statewall_queue_overflow_total", (("queue", str(q)),),
               _int(s, "queue_overflow")) for q, s in up])
    o.family("statewall_netlink_overrun_total", "counter",
             "Packets lost between the kernel and the worker (netlink socket overrun).",
             [("statewall_netlink_overrun_total", (("queue", str(q)),),
               _int(s, "netlink_overrun")) for q, s in up])
    o.family("statewall_queue_waiting", "gauge",
             "Packets waiting in the kernel queue for a verdict.",
             [("statewall_queue_waiting", (("queue", str(q)),),
               _int(s, "queue_waiting")) for q, s in up])
    o.family("statewall_reloads_total", "counter",
             "Rule reloads per worker, applied (ok) or refused.",
             [x for q, s in up for x in (
                 ("statewall_reloads_total", (("queue", str(q)), ("result", "ok")),
                  _int(s.get("counters"), "reloads")),
                 ("statewall_reloads_total", (("queue", str(q)), ("result", "refused")),
                  _int(s.get("counters"), "reloads_refused")))])
    o.family("statewall_decision_seconds", "histogram",
             "Time Firewall.process took per packet.", _histogram(snaps))
    o.family("statewall_worker_up", "gauge",
             "1 when the queue's worker answered this scrape in time, else 0.",
             [("statewall_worker_up", (("queue", str(q)),), 1 if isinstance(s, dict) else 0)
              for q, s in ws])
    o.family("statewall_worker_snapshot_seconds", "gauge",
             "Time the worker took to build its answer to this scrape (one pass over its "
             "table).",
             [("statewall_worker_snapshot_seconds", (("queue", str(q)),),
               float(s.get("snapshot_seconds", 0.0))) for q, s in up
              if isinstance(s.get("snapshot_seconds"), (int, float))])
    if scrape_seconds is not None:
        o.one("statewall_scrape_duration_seconds", "gauge",
              "Time from the scrape's request to the last worker's answer.", scrape_seconds)
    return o.text()


def _histogram(snaps: list[dict[str, Any]]) -> list[tuple[str, Labels, float]]:
    n = len(BOUNDS_NS) + 1
    counts = [0] * n
    total_ns = 0
    for s in snaps:
        lat = s.get("latency")
        if not isinstance(lat, dict):
            continue
        c = lat.get("counts")
        if isinstance(c, list) and len(c) == n and all(isinstance(x, int) for x in c):
            for i, x in enumerate(c):
                counts[i] += x
            total_ns += _int(lat, "sum_ns")
    out: list[tuple[str, Labels, float]] = []
    cum = 0
    for bound, x in zip(BOUNDS_NS, counts):
        cum += x
        out.append(("statewall_decision_seconds_bucket", (("le", fmt_value(bound / 1e9)),),
                    cum))
    cum += counts[-1]
    out.append(("statewall_decision_seconds_bucket", (("le", "+Inf"),), cum))
    out.append(("statewall_decision_seconds_sum", (), total_ns / 1e9))
    out.append(("statewall_decision_seconds_count", (), cum))
    return out
