"""Replay a kernel recording through statewall and list every difference, packet by packet.

Owns: the comparison contract shared by ``statewall kernel-diff`` and the corpus test
(``tests/test_kernel_corpus.py``): for every packet of a recording (``kernel.json`` + its
``capture.pcapng`` frames), the kernel's outcome and statewall's - verdict (forwarded,
delivered to fw or sent by it = ACCEPT), ctstate and direction, the packet's connection
entry, the whole ``conntrack -L`` and ``/proc/net/nf_conntrack`` listings taken after it
(timeouts within ``TOLERANCE`` seconds), the packets fw sent in answer -, the ``Snapshot``
listings, the final table and
the ``conntrack -E`` event stream; the first divergence of each connection; totals.
Must not know: how recordings are made (the lab), how results are printed (``report``).

Tolerated, by design (each one is listed in docs/kernel-diff.md):
- what fw sent on its own (REJECT's answers: ``fw_sent``) is compared only when the
  recording let fw's stack answer (``fw_silent`` false), by packet summary;
- timeouts within ``TOLERANCE`` s (listings print whole seconds; the lab lists the table
  ~50 ms after the packet);
- listings compared as sets (the kernel lists in hash order);
- DESTROY events for expired entries that the kernel's GC worker had not sent yet;
- listings taken while another packet was already in flight (``snapshot_exact`` false) and
  packets without a listing (long captures) are compared by verdict and ctstate only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from ..conntrack.ecache import notifier
from ..conntrack.conn import Conn, ctinfo_state
from ..conntrack.core import VERDICT_DROP, Tracker
from ..conntrack.sysctl import Settings
from ..conntrack.format import conntrack_line, event_line, proc_line
from ..conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from ..firewall import Firewall
from ..io.capture import Frame
from ..lab import pktinfo
from ..packet.decode import decode_ip
from ..packet.link import l3_offset
from ..packet.packet import Packet, ParseError
from . import model

TOLERANCE: Final = 2
EPB_OUTBOUND: Final = 2

# kinds of difference, in report order
KINDS: Final = ("verdict", "ctstate", "dir", "entry", "table", "proc", "sent", "snapshot",
                "final", "events", "capture")


@dataclass
class View:
    """One side's outcome for one packet."""

    verdict: str | None  # ACCEPT, DROP, HOLD (statewall) / None (kernel: held or unknown)
    ctstate: str | None
    dir: str | None  # ORIGINAL / REPLY
    entry: str | None  # the packet's conntrack -L line after it (None: no entry)
    reason: str | None = None  # statewall: why INVALID / DROP

    def state(self) -> str:
        """``NEW/O``-style short form."""
        if self.ctstate is None:
            return "-"
        return self.ctstate + (f"/{self.dir[0]}" if self.dir else "")


@dataclass
class Diff:
    kind: str
    text: str
    n: int | None = None  # packet number, None for run-level differences


@dataclass
class PacketResult:
    n: int
    ts: float
    iface: str | None
    hook: str
    summary: str
    conn: str  # connection key ("tcp 198.51.100.2:40000 - 203.0.113.2:80")
    kernel: View
    statewall: View
    compared_table: bool
    diffs: list[Diff] = field(default_factory=list)
    capture_n: int | None = None  # its number in the user's capture (kernel-diff)


@dataclass
class Comparison:
    """The result; ``agree`` is True iff there is no difference at all."""

    name: str
    packets: list[PacketResult]
    problems: list[Diff]  # run-level: snapshots, final table, events, capture
    missing: list[str]  # statewall features the recording needs but that are not wired
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def diffs(self) -> list[Diff]:
        return [d for p in self.packets for d in p.diffs] + self.problems

    @property
    def agree(self) -> bool:
        return not self.diffs

    def totals(self) -> dict[str, Any]:
        by_kind = {k: 0 for k in KINDS}
        for d in self.diffs:
            by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
        differ = sum(1 for p in self.packets if p.diffs)
        return {"packets": len(self.packets), "agree": len(self.packets) - differ,
                "differ": differ, "tables_compared": sum(p.compared_table
                                                         for p in self.packets),
                "by_kind": {k: v for k, v in by_kind.items() if v}}

    def first_divergences(self) -> list[PacketResult]:
        """The first differing packet of each connection, in packet order."""
        seen: set[str] = set()
        out = []
        for p in self.packets:
            if p.diffs and p.conn not in seen:
                seen.add(p.conn)
                out.append(p)
        return out

    def messages(self) -> list[str]:
        """Every difference as one line (the corpus test's failure message)."""
        out = []
        for p in self.packets:
            for d in p.diffs:
                out.append(f"packet {p.n} ({p.summary}): {d.kind}: {d.text}")
        out += [f"{d.kind}: {d.text}" for d in self.problems]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agree": self.agree,
            "missing_features": self.missing,
            "versions": self.versions,
            "totals": self.totals(),
            "packets": [asdict(p) for p in self.packets],
            "first_divergence": [{"conn": p.conn, "n": p.n} for p in self.first_divergences()],
            "problems": [asdict(d) for d in self.problems],
        }


# ---------------------------------------------------------------------------------------
def _norm(line: str, tpos: int) -> tuple[list[str], int | None]:
    """Split a listing line; pull out the timeout column (index ``tpos``) if numeric."""
    toks = line.split()
    t: int | None = None
    if len(toks) > tpos and toks[tpos].isdigit():
        t = int(toks.pop(tpos))
    return toks, t


def same_table(ours: list[str], kernel: list[str], tpos: int) -> str | None:
    """None when the two listings agree (as sets, timeouts within TOLERANCE)."""
    a = sorted((_norm(x, tpos) for x in ours), key=lambda v: v[0])
    b = sorted((_norm(x, tpos) for x in kernel), key=lambda v: v[0])
    if [x[0] for x in a] != [x[0] for x in b]:
        return "entries differ:\n  statewall: " + "\n             ".join(ours or ["(empty)"]) \
               + "\n  kernel:    " + "\n             ".join(kernel or ["(empty)"])
    for (toks, t1), (_, t2) in zip(a, b):
        if (t1 is None) != (t2 is None) or (t1 is not None and t2 is not None
                                             and abs(t1 - t2) > TOLERANCE):
            return f"timeout differs for {' '.join(toks)}: statewall {t1}, kernel {t2}"
    return None


def same_line(ours: str | None, kernel: str | None, tpos: int = 2) -> bool:
    if ours is None or kernel is None:
        return ours is kernel
    return same_table([ours], [kernel], tpos) is None


def conn_key(info: pktinfo.PacketInfo | None) -> str:
    """A direction-free name for the connection a packet belongs to (ICMP errors: the
    quoted packet's)."""
    if info is None:
        return "?"
    p = info.inner if info.inner is not None else info
    name = p.proto_name
    if p.sport is not None and p.dport is not None:
        ends = sorted([(p.src, p.sport), (p.dst, p.dport)])
        return f"{name} " + " - ".join(pktinfo._hp(a, port) for a, port in ends)
    ends2 = sorted([p.src, p.dst])
    tail = f" id={p.icmp_id}" if p.icmp_id is not None else ""
    return f"{name} {ends2[0]} - {ends2[1]}{tail}"


def entry_summary(line: str | None) -> str:
    """``SYN_SENT [UNREPLIED] 119``: state (TCP), flags, timeout of a listing line."""
    if not line:
        return "-"
    toks = line.split()
    timeout = toks[2] if len(toks) > 2 and toks[2].isdigit() else "?"
    state = toks[3] if len(toks) > 3 and "=" not in toks[3] else ""
    flags = " ".join(t for t in toks if t.startswith("[") and t.endswith("]"))
    mark = next((t for t in toks if t.startswith("mark=") and t != "mark=0"), "")
    return " ".join(x for x in (state, flags, timeout, mark) if x)


class _ObservedTracker(Tracker):
    """The tracker, noting how ``conntrack_in`` classified the packet a ``process`` call is
    about - what the lab's NFLOG rules see right after conntrack, also when a rule drops
    the packet afterwards (the Decision then no longer carries the entry)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.seen: tuple[Conn | None, int] | None = None
        self.armed = False

    def conntrack_in(self, pkt: Packet, now: float, hook: int, *args: Any) -> int:
        ret: int = super().conntrack_in(pkt, now, hook, *args)
        if self.armed:  # the first call only: REJECT's replies run through here too
            self.armed = False
            self.seen = None if ret == VERDICT_DROP else (pkt.ct, pkt.ctinfo)
        return ret


class _Statewall:
    """statewall replaying one recording, with its event stream and listings."""

    def __init__(self, k: Mapping[str, Any]) -> None:
        settings = model.settings_from(k.get("sysctls", {}))
        r4, r6 = model.rules_text(k.get("rules_input"))
        host = model.host_from(k.get("topology", {}))
        self.tracker = _ObservedTracker(settings)
        self.fw: Firewall = model.build_firewall(settings, r4, r6, host, self.tracker,
                                                 model.ipsets_text(k.get("rules_input")))
        self.events: list[tuple[float, str]] = []
        l4 = self.fw.tracker.l4

        def sink(now: float, bits: int, ct: Conn) -> None:
            self.events.append((now, event_line(bits, ct, now, l4[ct.proto])))
        notifier(self.fw.tracker).add(sink)

    def table(self, now: float) -> tuple[list[str], list[str]]:
        t = self.fw.tracker
        ents = t.entries(now)
        return ([conntrack_line(ct, now, t.l4[ct.proto]) for ct in ents],
                [proc_line(ct, now, t.l4[ct.proto]) for ct in ents])


def _kernel_verdict(k: Mapping[str, Any], info: pktinfo.PacketInfo | None,
                    local: set[bytes]) -> str | None:
    if "verdict" in k:
        v: str | None = k["verdict"]
        return v
    # recordings before format 2 only say "forwarded": unknown for fw's own traffic
    if k.get("forwarded"):
        return "ACCEPT"
    if info is None or is_local(info.dst, local) or k.get("nflog") is False:
        return None
    return "DROP"


def compare(k: Mapping[str, Any], frames: Iterable[Frame], name: str | None = None) -> Comparison:
    """Replay ``frames`` (the recording's ``capture.pcapng``) through statewall configured
    as ``k`` (its ``kernel.json``) and compare."""
    sw = _Statewall(k)
    missing = model.missing_features(k.get("requires", [])) + [
        f"sysctl {name}" for name in model.unmodelled(k.get("sysctls", {}))]
    kpackets = {p["n"]: p for p in k.get("packets", [])}
    topology = k.get("topology", {})
    local = model.local_addresses(topology)
    problems: list[Diff] = []
    results: list[PacketResult] = []
    snaps = sorted((sn for sn in k.get("snapshots", []) if "conntrack" in sn and sn.get("ts")),
                   key=lambda sn: sn["ts"])

    def check_snapshots(until: float) -> None:
        while snaps and snaps[0]["ts"] <= until:
            snap = snaps.pop(0)
            ours, _ = sw.table(snap["ts"])
            diff = same_table(ours, snap["conntrack"], 2)
            if diff:
                problems.append(Diff("snapshot", f"{snap.get('label') or 'snapshot'} "
                                                 f"at {snap['ts']}: {diff}"))

    # what fw emitted on its own (REJECT's answers), when its stack was not silenced
    sent: list[dict[str, Any]] | None = (None if topology.get("fw_silent", True)
                                         else list(k.get("fw_sent", [])))
    times = [p["ts_ns"] for p in k.get("packets", [])] + [1 << 80]
    n = 0
    for frame in frames:
        n += 1
        kp = kpackets.get(n)
        if kp is None:
            problems.append(Diff("capture", f"capture has packet {n}, kernel.json does not"))
            break
        check_snapshots(frame.ts)
        ksent = None
        if sent is not None:
            ksent = [x["summary"] for x in sent if times[n - 1] <= x["ts_ns"] < times[n]]
        results.append(_one(sw, frame, kp, local, ksent))
    if n != len(kpackets):
        problems.append(Diff("capture", f"capture has {n} packets, kernel.json "
                                        f"{len(kpackets)}"))
    final = k.get("final")
    if final:
        check_snapshots(final["ts"])
        ours, _ = sw.table(final["ts"])
        diff = same_table(ours, final["conntrack"], 2)
        if diff:
            problems.append(Diff("final", diff))
        _compare_events(k.get("events", []), sw.events, final["ts"], final["conntrack"],
                        problems)
    return Comparison(name or str(k.get("scenario", "?")), results, problems, missing,
                      dict(k.get("versions", {})))


def _compare_events(kernel_events: list[str], ours_ts: list[tuple[float, str]],
                    until: float, final: list[str], problems: list[Diff]) -> None:
    """Events up to the final listing, timestamps dropped, timeouts within tolerance.

    NEW/UPDATE/... must agree in order.  DESTROY events must agree as a multiset, except
    for entries that expired: the kernel's GC worker and statewall's expiry sweep both
    report expiry late, by different amounts, so such a DESTROY may be on one side only
    (the entry is gone from both final tables, which are compared separately).
    """
    kev = [e.split("\t", 1)[1] for e in kernel_events if "\t" in e]
    oev = [line for ts, line in ours_ts if ts <= until]
    kn = [_norm(x, 3)[0] for x in kev if not x.startswith("[DESTROY]")]
    on = [_norm(x, 3)[0] for x in oev if not x.startswith("[DESTROY]")]
    if kn != on:
        problems.append(Diff("events", "events differ:\n  statewall: "
                             + "\n             ".join(oev or ["(none)"])
                             + "\n  kernel:    " + "\n             ".join(kev or ["(none)"])))
        return
    kd = sorted(" ".join(x.split()) for x in kev if x.startswith("[DESTROY]"))
    od = sorted(" ".join(x.split()) for x in oev if x.startswith("[DESTROY]"))
    live = {_tuple_text(x) for x in final}
    for side, mine, other in (("kernel", kd, od), ("statewall", od, kd)):
        rest = list(other)
        for ev in mine:
            if ev in rest:
                rest.remove(ev)
            elif _tuple_text(ev) in live:
                problems.append(Diff("events", f"only {side} reported {ev} (the entry is "
                                               "still listed)"))


def _tuple_text(line: str) -> str:
    """The tuples of a listing or event line (``src=... dport=...`` tokens), for identity."""
    return " ".join(t for t in line.split() if t.split("=", 1)[0] in (
        "src", "dst", "sport", "dport", "type", "code", "id"))


def _emitted(d: Any) -> list[str]:
    """Summaries of the packets statewall's firewall sent in answer (REJECT) that made it
    out through OUTPUT."""
    out = []
    for e in getattr(d, "emitted", ()):
        data = getattr(e, "data", None)
        sub = getattr(e, "decision", None)
        if getattr(e, "kind", None) != "REJECT" or not data or sub is None \
                or getattr(sub, "verdict", None) != "ACCEPT":
            continue
        info = pktinfo.parse(data)
        out.append(info.summary() if info else data[:20].hex())
    return out


def _one(sw: _Statewall, frame: Frame, kp: Mapping[str, Any], local: set[bytes],
         ksent: list[str] | None = None) -> PacketResult:
    """One packet through statewall, compared with the kernel's record of it."""
    n = kp["n"]
    outbound = (frame.flags & 3) == EPB_OUTBOUND
    hook_name = kp.get("hook") or ("OUTPUT" if outbound else "PREROUTING")
    kinfo = pktinfo.parse(frame.data[l3_offset(frame.linktype, frame.data)[0]:])
    kview = View(_kernel_verdict(kp, kinfo, local), kp.get("ctstate"), kp.get("dir"),
                 kp.get("entry"))
    diffs: list[Diff] = []
    try:
        off = l3_offset(frame.linktype, frame.data)[0]
        pkt = decode_ip(frame.data[off:])
    except ParseError as e:
        sview = View("DROP", None, None, None, f"not decodable: {e.reason}")
        res = PacketResult(n, frame.ts, frame.iface_name, hook_name, kp.get("summary", ""),
                           conn_key(kinfo), kview, sview, False)
        if kview.verdict is not None and kview.verdict != "DROP":
            res.diffs.append(Diff("verdict", f"statewall DROP ({e.reason}), kernel "
                                             f"{kview.verdict}", n))
        return res
    if hook_name == "OUTPUT":
        pkt.iface = None
        pkt.oiface = frame.iface_name
        hook = NF_INET_LOCAL_OUT
    else:
        pkt.iface = frame.iface_name
        hook = NF_INET_PRE_ROUTING
    pkt.ts = frame.ts
    # the clock-driven housekeeping a front end owes the facade (timers run between
    # packets in the kernel: conntrack expiry, reassembly queue timeouts)
    sw.fw.expire(frame.ts)
    sw.tracker.seen = None
    sw.tracker.armed = True
    d = sw.fw.process(pkt, frame.ts, hook)
    sw.tracker.armed = False
    seen = sw.tracker.seen
    state: str | None = None
    sdir: str | None = None
    if seen is not None:
        ct, ctinfo = seen
        state = ctinfo_state(ct, ctinfo)
        sdir = None if ct is None else ("REPLY" if ctinfo >= 3 else "ORIGINAL")
    # statewall's listings at the kernel's listing time (or now, without an exact one: a
    # later packet may precede that listing, and statewall's clock must not run ahead)
    compared = bool(kp.get("snapshot_exact")) and kp.get("conntrack") is not None
    at = kp["snapshot_ts"] if compared else frame.ts
    ours, ours_proc = sw.table(at)
    seen_info = kinfo
    if d.pkt is not None and d.fragments:
        # the datagram as conntrack saw it (before NAT rewrote it, if it did)
        seen_info = pktinfo.parse(getattr(d, "seen", None) or d.pkt.buf) or kinfo
    s_entry = pktinfo.find_entry(seen_info, ours) if seen_info is not None else None
    sview = View(d.verdict, state, sdir, s_entry, d.reason)

    kstate = kview.ctstate
    if kp.get("nflog", kstate is not None):
        if kstate != state:
            diffs.append(Diff("ctstate", f"statewall {state or 'not classified'}, kernel "
                                         f"{kstate}"
                                         + (f" (statewall: {d.reason})" if d.reason else ""), n))
        elif kview.dir and sdir and kview.dir != sdir:
            diffs.append(Diff("dir", f"statewall {sdir}, kernel {kview.dir}", n))
    elif state is not None:
        what = ("held this fragment" if "frag" in kp
                else "dropped this packet before conntrack")
        diffs.append(Diff("ctstate", f"the kernel {what} (no ctstate); statewall {state}"
                                     f" ({d.verdict})", n))
    kv = kview.verdict
    if kv is not None:
        sv = "ACCEPT" if d.verdict == "ACCEPT" else ("DROP" if d.verdict == "DROP" else None)
        if sv is not None and sv != kv:
            where = "forwarded" if kp.get("forwarded") else (
                "delivered to fw" if kp.get("delivered") else "sent")
            ktext = f"ACCEPT ({where})" if kv == "ACCEPT" else kv
            diffs.append(Diff("verdict", f"statewall {d.verdict}"
                                         + (f" ({d.reason})" if d.reason else "")
                                         + f", kernel {ktext}", n))
    if ksent is not None:
        ssent = _emitted(d)
        if sorted(ssent) != sorted(ksent):
            diffs.append(Diff("sent", "fw's answers differ:\n  statewall: "
                              + "\n             ".join(ssent or ["(none)"])
                              + "\n  kernel:    " + "\n             ".join(ksent or ["(none)"]),
                              n))
    if compared:
        if not same_line(s_entry, kview.entry):
            diffs.append(Diff("entry", f"statewall {s_entry or '(none)'}\n"
                                       f"    kernel    {kview.entry or '(none)'}", n))
        diff = same_table(ours, kp["conntrack"], 2)
        if diff and not any(x.kind == "entry" for x in diffs):
            diffs.append(Diff("table", diff, n))
        if kp.get("proc") is not None and not diff:
            pdiff = same_table(ours_proc, kp["proc"], 4)
            if pdiff:
                diffs.append(Diff("proc", pdiff, n))
    return PacketResult(n, frame.ts, frame.iface_name if hook_name != "OUTPUT" else None,
                        hook_name, kp.get("summary", ""), conn_key(kinfo), kview, sview,
                        compared, diffs)


def is_local(addr: str, local: set[bytes]) -> bool:
    ip = ipaddress.ip_address(addr)
    return ip.packed in local or ip.is_multicast
