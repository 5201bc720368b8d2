"""Recording a scenario against the real kernel: inject, capture, classify, snapshot.

Owns: running one ``Scenario`` in a fresh ``Topology`` (always torn down), with fw's
observation rules (``nflog.observe_ruleset``), the scenario's sysctls and extra rules, a
capture of every frame on fw's interfaces, the NFLOG stream, a ``conntrack -E`` listener and
a table snapshot after every packet that enters fw; then joining all that into the
``Recording``: ``kernel.json`` (per packet: ``n, ts, iface, ctstate, dir, forwarded,
entry, conntrack, proc``...) and ``capture.pcapng`` (ingress only, one IDB per fw interface,
in the order of ``packets[].n``).
Must not know: statewall's tracker.  scapy is only touched through the scenario's packet
objects (``bytes(packet)``).

Snapshot timing: for crafted packets one packet is in flight at a time, so the listing
taken ``settle`` seconds after fw saw it is exactly "the table after that packet".  With
real programs packets can follow each other faster than a listing takes; the peers' own
output then goes through a ``DelayLine`` (every packet >= 150 ms late, >= 100 ms apart) and
each packet still records ``snapshot_exact``: false when another packet entered fw between
it and the end of its listing.
"""

from __future__ import annotations

import datetime as _dt
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from statewall.lab import kernelstate, pktinfo
from statewall.lab.capture import Capture, Frame
from statewall.lab.delayline import DelayLine, Schedule
from statewall.lab.kernelstate import EventLog, TableSnapshot
from statewall.lab.netns import (FW_CLIENT_IF, FW_SERVER_IF, Endpoint, LabError, Topology,
                                 is_doc_address)
from statewall.lab.nflog import NflogReader, NflogRecord, observe_ruleset
from statewall.lab.pcapng import DIR_INBOUND, write_pcapng
from statewall.lab.scenario import (Run, Scenario, Send, Sleep, Snapshot, is_ethernet, l3_bytes,
                                    packet_bytes)

FORMAT: Final = "statewall-kernel-recording/1"
NFLOG_GROUP: Final = 7
FW_IFACES: Final = (FW_CLIENT_IF, FW_SERVER_IF)

Log = Callable[[str], None]


def _mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def frame_for(packet: object, ep: Endpoint) -> bytes:
    """The Ethernet frame to inject from ``ep`` for a scenario packet."""
    if is_ethernet(packet):
        return packet_bytes(packet)
    l3 = packet_bytes(packet)
    if not l3 or l3[0] >> 4 not in (4, 6):
        raise ValueError(f"packet does not start with an IPv4/IPv6 header: {l3[:20].hex()}")
    ethertype = b"\x08\x00" if l3[0] >> 4 == 4 else b"\x86\xdd"
    return _mac(ep.fw_mac) + _mac(ep.mac) + ethertype + l3


def check_addresses(l3: bytes) -> pktinfo.PacketInfo:
    """Refuse crafted packets with any address outside the documentation ranges."""
    info = pktinfo.parse(l3)
    if info is None:
        raise ValueError(f"cannot parse crafted packet {l3[:40].hex()}")
    for p in (info, info.inner):
        if p is None:
            continue
        for a in (p.src, p.dst):
            if not is_doc_address(a):
                raise ValueError(f"crafted packet uses {a}, outside the documentation ranges")
    return info


@dataclass
class _Batch:
    """One table listing and the ingress frames (capture indices) it follows."""

    snap: TableSnapshot
    frames: list[int]
    step: int
    label: str = ""


@dataclass
class Recording:
    """Everything one run produced; ``kernel_json()`` and ``write()`` serialise it."""

    scenario: Scenario
    meta: dict[str, Any]
    frames: list[Frame]
    nflog: list[NflogRecord]
    batches: list[_Batch]
    snapshots: list[_Batch]
    final: TableSnapshot | None
    final_stats: list[str]
    events: list[str]
    steps: list[dict[str, Any]]
    programs: list[dict[str, Any]]
    ifindex: dict[int, str]
    warnings: list[str] = field(default_factory=list)
    packets: list[dict[str, Any]] = field(default_factory=list)
    fw_sent: list[dict[str, Any]] = field(default_factory=list)

    # -- the join ----------------------------------------------------------------------
    def ingress(self) -> list[tuple[int, Frame]]:
        """(capture index, frame) of IPv4/IPv6 frames entering fw, in capture order."""
        return [(i, f) for i, f in enumerate(self.frames)
                if not f.outgoing and f.iface in FW_IFACES and f.l3]

    def analyse(self) -> None:
        ingress = self.ingress()
        for (_, a), (_, b) in zip(ingress, ingress[1:]):
            if b.ts_ns < a.ts_ns:
                self.warnings.append(f"capture timestamps go backwards at {b.ts_ns}")
        snap_of: dict[int, _Batch] = {}
        for batch in self.batches:
            for idx in batch.frames:
                snap_of[idx] = batch
        nf_of = self._match_nflog(ingress)
        fwd_of, sent = self._match_egress(ingress)
        ts_list = [f.ts_ns for _, f in ingress]
        packets: list[dict[str, Any]] = []
        for n, (idx, f) in enumerate(ingress, 1):
            info = pktinfo.parse(f.l3)
            rec = nf_of.get(idx)
            seen = pktinfo.parse(rec.payload) if rec is not None and rec.payload else None
            p: dict[str, Any] = {
                "n": n, "ts": round(f.ts_ns / 1e9, 6), "ts_ns": f.ts_ns, "iface": f.iface,
                "len": len(f.l3),
                "summary": info.summary() if info else f.l3[:20].hex(),
            }
            if info is not None and info.is_fragment:
                p["frag"] = {"id": info.frag_id, "offset": info.frag_offset,
                             "more": info.frag_more}
            p["nflog"] = rec is not None
            p["ctstate"] = rec.ctstate if rec is not None else None
            p["dir"] = rec.ctdir if rec is not None else None
            if rec is not None and len(rec.payload) != len(f.l3):
                p["conntrack_len"] = len(rec.payload)  # e.g. the reassembled datagram
            out = fwd_of.get(idx)
            p["forwarded"] = out is not None
            p["out_iface"] = out
            found = snap_of.get(idx)
            if found is not None:
                batch = found
                later = [t for t in ts_list if f.ts_ns < t <= batch.snap.end_ns]
                p["step"] = batch.step
                p["snapshot_ts"] = round(batch.snap.start_ns / 1e9, 6)
                p["snapshot_exact"] = not later
                key_info = seen or info
                p["entry"] = (pktinfo.find_entry(key_info, batch.snap.conntrack)
                              if key_info is not None else None)
                p["conntrack"] = batch.snap.conntrack
                p["proc"] = batch.snap.proc
            else:
                self.warnings.append(f"packet {n} has no table snapshot")
                p.update(step=None, snapshot_ts=None, snapshot_exact=False, entry=None,
                         conntrack=None, proc=None)
            packets.append(p)
        self.packets = packets
        self.fw_sent = sent

    def _match_nflog(self, ingress: list[tuple[int, Frame]]) -> dict[int, NflogRecord]:
        """NFLOG record -> ingress frame: same skb timestamp (µs) and input interface;
        a reassembled datagram carries the timestamp of the fragment that completed it."""
        by_key: dict[tuple[int, str], list[int]] = {}
        for idx, f in ingress:
            by_key.setdefault((f.ts_ns // 1000, f.iface), []).append(idx)
        frames = dict(ingress)
        out: dict[int, NflogRecord] = {}
        for rec in self.nflog:
            if rec.ctstate is None:
                continue
            indev = self.ifindex.get(rec.indev or -1, "?")
            cands = by_key.get(((rec.ts_ns or 0) // 1000, indev), [])
            cands = [i for i in cands if i not in out]
            exact = [i for i in cands if frames[i].l3 == rec.payload]
            pick: int | None = (exact or cands)[0] if (exact or cands) else None
            if pick is None:  # no timestamp: fall back to identical bytes
                pick = next((i for i, f in ingress if i not in out and f.l3 == rec.payload
                             and f.iface == indev), None)
            if pick is None:
                self.warnings.append(f"NFLOG record '{rec.prefix}' at {rec.ts_ns} on {indev} "
                                     "matches no captured packet")
                continue
            out[pick] = rec
        return out

    def _match_egress(self, ingress: list[tuple[int, Frame]]
                      ) -> tuple[dict[int, str], list[dict[str, Any]]]:
        """ingress frame -> interface it left fw on; plus egress frames fw made itself."""
        egress = [(i, f) for i, f in enumerate(self.frames)
                  if f.outgoing and f.iface in FW_IFACES and f.l3]
        used: set[int] = set()
        out: dict[int, str] = {}
        for idx, f in ingress:
            key = pktinfo.forward_key(f.l3)
            for j, g in egress:
                if j > idx and j not in used and pktinfo.forward_key(g.l3) == key:
                    used.add(j)
                    out[idx] = g.iface
                    break
        # Re-fragmented on output: same addresses and offset (IPv4 keeps the fragment id,
        # IPv6 picks a new one), leaving after the fragment came in.
        for idx, f in ingress:
            info = pktinfo.parse(f.l3)
            if idx in out or info is None or not info.is_fragment:
                continue
            for j, g in egress:
                gi = pktinfo.parse(g.l3)
                if (j > idx and j not in used and gi is not None and gi.is_fragment
                        and (gi.src, gi.dst, gi.frag_offset) == (info.src, info.dst,
                                                                  info.frag_offset)
                        and (gi.version == 6 or gi.frag_id == info.frag_id)):
                    out[idx] = g.iface
                    used.add(j)
                    break
        sent = []
        for j, g in egress:
            if j in used:
                continue
            gi = pktinfo.parse(g.l3)
            if gi is not None and gi.dst.startswith("ff02:"):
                continue  # fw's own MLD/ND multicast
            sent.append({"ts": round(g.ts_ns / 1e9, 6), "ts_ns": g.ts_ns, "iface": g.iface,
                         "summary": gi.summary() if gi else g.l3[:20].hex()})
        return out, sent

    # -- output ------------------------------------------------------------------------
    def kernel_json(self) -> dict[str, Any]:
        if not self.packets and self.frames:
            self.analyse()
        return {
            "format": FORMAT,
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            **self.meta,
            "capture": "capture.pcapng",
            "steps": self.steps,
            "packets": self.packets,
            "snapshots": [{"step": b.step, "label": b.label, **b.snap.to_json()}
                          for b in self.snapshots],
            "fw_sent": self.fw_sent,
            "programs": self.programs,
            "final": ({**self.final.to_json(), "stats": self.final_stats}
                      if self.final else None),
            "events": self.events,
            "warnings": self.warnings,
        }

    def pcapng_bytes(self) -> bytes:
        import io

        buf = io.BytesIO()
        write_pcapng(buf, FW_IFACES, ((f.ts_ns, f.iface, f.data, DIR_INBOUND)
                                      for _, f in self.ingress()),
                     app=f"statewall lab: {self.scenario.name}")
        return buf.getvalue()

    def write(self, outdir: str | Path) -> Path:
        """Write ``capture.pcapng`` and ``kernel.json`` into ``outdir`` (created)."""
        d = Path(outdir)
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("capture.pcap",):
            (d / stale).unlink(missing_ok=True)
        (d / "capture.pcapng").write_bytes(self.pcapng_bytes())
        (d / "kernel.json").write_text(dump_json(self.kernel_json()))
        return d


def dump_json(obj: Any) -> str:
    """``kernel.json`` text: indented, one listing line per JSON line (diff-friendly)."""
    return json.dumps(obj, indent=1) + "\n"


# ---------------------------------------------------------------------------------------
class _Session:
    """One execution of one scenario inside an up topology."""

    def __init__(self, scn: Scenario, topo: Topology, cap: Capture, log: Log) -> None:
        self.scn = scn
        self.topo = topo
        self.cap = cap
        self.log = log
        self.upto = 0  # capture index up to which ingress frames have a snapshot
        self.batches: list[_Batch] = []
        self.snapshots: list[_Batch] = []
        self.steps: list[dict[str, Any]] = []
        self.programs: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.step_no = 0
        self.injected: dict[int, bytes] = {}  # capture index -> the frame we sent
        self.inject: dict[str, socket.socket] = {}
        for ep in (topo.client, topo.server):
            s = topo.socket(ep.side, socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.bind((ep.ifname, 0))
            self.inject[ep.side] = s

    def close(self) -> None:
        for s in self.inject.values():
            s.close()

    # -- observation -------------------------------------------------------------------
    def _pending_ingress(self, frames: list[Frame]) -> bool:
        return any(not f.outgoing and f.l3 for f in frames[self.upto:])

    def observe(self, until: float, need: Callable[[], bool] | None = None,
                quiet: float = 0.0, hard: float | None = None) -> None:
        """Snapshot after every ingress packet until monotonic time ``until`` has passed,
        ``need()`` (if given) is true and nothing entered fw for ``quiet`` seconds."""
        last = time.monotonic()
        hard_deadline = hard if hard is not None else until + 10.0
        while True:
            frames = self.cap.snapshot()
            if self._pending_ingress(frames):
                time.sleep(self.scn.settle)
                frames = self.cap.snapshot()
                idx = [i for i in range(self.upto, len(frames))
                       if not frames[i].outgoing and frames[i].l3]
                self.upto = len(frames)
                snap = kernelstate.snapshot(self.topo)
                self.batches.append(_Batch(snap, idx, self.step_no))
                last = time.monotonic()
                continue
            self.upto = len(frames)
            now = time.monotonic()
            if now >= until and (need is None or need()) and now - last >= quiet:
                return
            if now > hard_deadline:
                self.warnings.append(f"step {self.step_no}: gave up waiting for traffic")
                return
            self.cap.wait_for(self.upto, timeout=0.01)

    # -- steps -------------------------------------------------------------------------
    def run(self) -> None:
        for step in self.scn.steps:
            self.step_no += 1
            t0 = time.monotonic()
            rec: dict[str, Any] = {"step": self.step_no, "ts": round(time.time(), 6)}
            if isinstance(step, Send):
                self._send(step, rec)
            elif isinstance(step, Sleep):
                rec.update(kind="sleep", seconds=step.seconds)
                self.observe(t0 + step.seconds, quiet=0.0)
            elif isinstance(step, Snapshot):
                rec.update(kind="snapshot", label=step.label)
                self.observe(t0)  # flush pending packet snapshots first
                self.snapshots.append(_Batch(kernelstate.snapshot(self.topo), [],
                                             self.step_no, step.label))
            elif isinstance(step, Run):
                self._run(step, rec)
            self.steps.append(rec)

    def _send(self, step: Send, rec: dict[str, Any]) -> None:
        ep = self.topo.endpoint(step.side)
        frame = frame_for(step.packet, ep)
        info = check_addresses(frame[14:])
        rec.update(kind="send", side=step.side, summary=info.summary(), delay=step.delay)
        if step.note:
            rec["note"] = step.note
        start = self.cap.count()
        t0 = time.monotonic()
        self.inject[step.side].send(frame)
        seen = lambda: self.cap.wait_for(start, timeout=0.0)  # noqa: E731
        if not self.cap.wait_for(start, timeout=2.0):
            self.warnings.append(f"step {self.step_no}: injected packet never reached fw")
        else:
            frames = self.cap.snapshot()
            idx = next((i for i in range(start, len(frames)) if not frames[i].outgoing
                        and frames[i].iface == ep.fw_ifname), None)
            if idx is not None:
                self.injected[idx] = frame
        quiet = 0.3 if self.scn.is_live else 0.0
        self.observe(t0 + step.delay, need=seen, quiet=quiet)

    def _run(self, step: Run, rec: dict[str, Any]) -> None:
        import subprocess

        rec.update(kind="run", client=Run.argv(step.client), server=Run.argv(step.server))
        t0 = time.monotonic()
        server = None
        server_argv = Run.argv(step.server)
        client_argv = Run.argv(step.client)
        if server_argv:
            server = self.topo.popen("server", server_argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            self.observe(time.monotonic() + step.server_ready)
        client = None
        if client_argv:
            client = self.topo.popen("client", client_argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + step.timeout
            self.observe(time.monotonic(), need=lambda: client.poll() is not None,
                         quiet=step.quiet, hard=deadline)
            if client.poll() is None:
                self.warnings.append(f"step {self.step_no}: client timed out")
                self.topo.stop(client)
        for role, p in (("client", client), ("server", server)):
            if p is None:
                continue
            if p.poll() is None:
                self.topo.stop(p)
            out, err = p.communicate()
            self.programs.append({"step": self.step_no, "role": role,
                                  "argv": list(p.args)[4:],  # type: ignore[arg-type]
                                  "returncode": p.returncode,
                                  "stdout": out.decode(errors="replace")[-2000:],
                                  "stderr": err.decode(errors="replace")[-2000:]})
        self.observe(max(t0 + step.delay, time.monotonic()), quiet=step.quiet)


def _clean_save(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def scenario_v6_addresses(scn: Scenario) -> set[str]:
    addrs: set[str] = set()
    for step in scn.steps:
        if not isinstance(step, Send):
            continue
        info = pktinfo.parse(l3_bytes(step.packet))
        for p in (info, info.inner if info else None):
            if p is not None and p.version == 6:
                addrs.update((p.src, p.dst))
    return addrs


def record(scn: Scenario, *, prefix: str | None = None, log: Log | None = None) -> Recording:
    """Run ``scn`` against the kernel in a fresh lab and return the recording.

    The namespaces are gone when this returns or raises.
    """
    say: Log = log or (lambda _m: None)
    topo = Topology(prefix)
    session: _Session | None = None
    cap: Capture | None = None
    nfl: NflogReader | None = None
    events: EventLog | None = None
    delays: list[DelayLine] = []
    try:
        v6 = {a for a in scenario_v6_addresses(scn)}
        topo.up(live_peers=scn.is_live, extra_v6=v6)
        say(f"{scn.name}: lab {topo.prefix} up (live peers: {scn.is_live})")
        sysctls = topo.sysctl("fw", dict(scn.sysctls))
        rules = observe_ruleset(NFLOG_GROUP)
        topo.run("fw", ["iptables-restore", "--noflush"], input=rules)
        topo.run("fw", ["ip6tables-restore", "--noflush"], input=rules)
        if scn.rules_v4.strip():
            topo.run("fw", ["iptables-restore", "--noflush"], input=scn.rules_v4.strip() + "\n")
        if scn.rules_v6.strip():
            topo.run("fw", ["ip6tables-restore", "--noflush"],
                     input=scn.rules_v6.strip() + "\n")
        saved: dict[str, list[str] | str] = {
            "ipv4": _clean_save(topo.run("fw", ["iptables-save"]).stdout),
            "ipv6": _clean_save(topo.run("fw", ["ip6tables-save"]).stdout)}
        if saved["ipv6"] == saved["ipv4"]:
            saved["ipv6"] = "same as ipv4"
        if scn.is_paced:
            shared = Schedule()
            delays = [DelayLine(topo, side, schedule=shared) for side in ("client", "server")]
        ifindex = topo.ifindexes("fw")
        cap = Capture(topo.socket("fw", *Capture.open_socket_args()), FW_IFACES).start()
        nfl = NflogReader(topo.socket("fw", *NflogReader.open_socket_args()),
                          NFLOG_GROUP).start()
        events = EventLog(topo).start()
        start_ns = time.time_ns()
        session = _Session(scn, topo, cap, say)
        session.run()
        session.observe(time.monotonic(), quiet=0.2 if scn.is_live else 0.0)
        final = kernelstate.snapshot(topo)
        final_stats = kernelstate.stats(topo)
        event_lines = events.stop()
        events = None
        frames = cap.stop()
        cap = None
        for idx, sent in session.injected.items():
            # The packet socket's copy shares data with the skb until we read it; in-place
            # rewrites (IPv6 re-fragmentation writes the new fragment id into the original
            # fragments) can show through.  What entered fw is what we injected.
            if frames[idx].data != sent:
                session.warnings.append(
                    f"capture of the frame injected at {frames[idx].ts_ns} was rewritten by "
                    "the kernel after the tap (in-place re-fragmentation); recorded the "
                    "injected bytes instead")
                frames[idx] = Frame(frames[idx].ts_ns, frames[idx].iface, False, sent)
        records = nfl.stop()
        warnings = list(session.warnings)
        if nfl.errors:
            warnings += [f"nflog: {e}" for e in nfl.errors]
        nfl = None
        meta = {
            "versions": kernelstate.tool_versions(),
            "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "start_ts": round(start_ns / 1e9, 6),
            "topology": {
                "live_peers": scn.is_live,
                "delay_line": ({"delay": delays[0].delay, "gap": delays[0].gap}
                               if delays else None),
                "offloads_disabled": topo.offloads_disabled,
                "interfaces": {ep.fw_ifname: {"fw_mac": ep.fw_mac, "fw_ipv4": ep.fw_ipv4,
                                              "fw_ipv6": ep.fw_ipv6, "peer": ep.side,
                                              "peer_mac": ep.mac, "peer_ipv4": ep.ipv4,
                                              "peer_ipv6": ep.ipv6}
                               for ep in (topo.client, topo.server)},
            },
            "sysctls": sysctls,
            "rules": saved,
        }
        recording = Recording(scn, meta, frames, records, session.batches, session.snapshots,
                              final, final_stats, event_lines, session.steps, session.programs,
                              ifindex, warnings)
        recording.analyse()
        return recording
    finally:
        if session is not None:
            session.close()
        for d in delays:
            d.close()
        for thing in (events, cap, nfl):
            try:
                if thing is not None:
                    thing.stop()
            except Exception:
                pass
        topo.down()
        left = topo.leftover()
        if left:
            raise LabError(f"namespaces left behind: {left}")


def record_to(scn: Scenario, outdir: str | Path, **kw: Any) -> Recording:
    """``record`` and write ``capture.pcapng`` + ``kernel.json`` into ``outdir``."""
    rec = record(scn, **kw)
    rec.write(outdir)
    return rec
