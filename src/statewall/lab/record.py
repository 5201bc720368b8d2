"""Recording a scenario against the real kernel: inject, capture, classify, snapshot.

Owns: running one ``Scenario`` in a fresh ``Topology`` (always torn down), with the
scenario's sysctls and rules, then fw's observation rules (``nflog.observe_ruleset``: ctstate
per packet at PREROUTING and OUTPUT, delivery to fw itself at the end of INPUT, fw's own
stack silenced unless the scenario says otherwise), a capture of every frame on fw's
interfaces, the NFLOG stream, a ``conntrack -E`` listener and table snapshots; then joining
all that into the ``Recording``: ``kernel.json`` (per packet: ``n, ts, iface, hook,
ctstate, dir, verdict, forwarded, delivered, entry, conntrack, proc``...) and
``capture.pcapng`` (every packet conntrack saw, in the order of ``packets[].n``: frames
entering fw with ``epb_flags`` inbound, packets fw sent itself on their output interface
with ``epb_flags`` outbound).
Must not know: statewall's tracker.  scapy is only touched through the scenario's packet
objects (``bytes(packet)``).

Snapshot timing: for crafted packets one packet is in flight at a time, so the listing
taken ``settle`` seconds after fw saw it is exactly "the table after that packet".  With
real programs packets can follow each other faster than a listing takes; the peers' own
output then goes through a ``DelayLine`` (every packet >= 150 ms late, >= 100 ms apart) and
each packet still records ``snapshot_exact``: false when another packet entered fw between
it and the end of its listing.

Packets fw sends itself (``Send("fw", ...)``) leave through a raw socket (``IP_HDRINCL`` /
IPv6 ``IPPROTO_RAW``) owned by ``INJECT_UID``, so they take the OUTPUT path (conntrack at
LOCAL_OUT) and the silence rule lets exactly them through.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import io
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from statewall.io.capture import PcapngWriter
from statewall.lab import egress as egress_mod
from statewall.lab import kernelstate, pktinfo
from statewall.lab.capture import Capture, Frame
from statewall.lab.delayline import DelayLine, Schedule
from statewall.lab.kernelstate import EventLog, TableSnapshot
from statewall.lab.netns import Endpoint, LabError, Topology, is_doc_address
from statewall.lab.nflog import NF_INET_LOCAL_OUT, NflogReader, NflogRecord, observe_ruleset
from statewall.lab.scenario import (FW, Run, Scenario, Send, Sleep, Snapshot, is_ethernet,
                                    l3_bytes, packet_bytes)

FORMAT: Final = "statewall-kernel-recording/2"
NFLOG_GROUP: Final = 7
INJECT_UID: Final = 47017  # owner of fw's injection sockets (the silence rule's exception)
LINKTYPE_ETHERNET: Final = 1
EPB_INBOUND: Final = 1
EPB_OUTBOUND: Final = 2

Log = Callable[[str], None]


def _mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def _ethertype(l3: bytes) -> bytes:
    if not l3 or l3[0] >> 4 not in (4, 6):
        raise ValueError(f"packet does not start with an IPv4/IPv6 header: {l3[:20].hex()}")
    return b"\x08\x00" if l3[0] >> 4 == 4 else b"\x86\xdd"


def frame_for(packet: object, ep: Endpoint) -> bytes:
    """The Ethernet frame to inject from ``ep`` for a scenario packet."""
    if is_ethernet(packet):
        return packet_bytes(packet)
    l3 = packet_bytes(packet)
    return _mac(ep.fw_mac) + _mac(ep.mac) + _ethertype(l3) + l3


def check_addresses(l3: bytes, any_address: bool = False) -> pktinfo.PacketInfo:
    """Refuse crafted packets with any address outside the documentation ranges."""
    info = pktinfo.parse(l3)
    if info is None:
        raise ValueError(f"cannot parse crafted packet {l3[:40].hex()}")
    if any_address:
        return info
    for p in (info, info.inner):
        if p is None:
            continue
        for a in (p.src, p.dst):
            if not (is_doc_address(a) or link_scoped(a)):
                raise ValueError(f"crafted packet uses {a}, outside the documentation ranges")
    return info


def link_scoped(addr: str) -> bool:
    """Multicast, link-local and unspecified addresses: they never leave the link."""
    import ipaddress

    ip = ipaddress.ip_address(addr)
    return ip.is_multicast or ip.is_link_local or ip.is_unspecified


def _ttl(l3: bytes) -> int:
    """TTL / hop limit (a forwarded copy has one less)."""
    return l3[8] if l3[0] >> 4 == 4 else l3[7]


def _local_key(l3: bytes) -> bytes:
    """Match key for a packet fw sent: forward_key, and the IPv4 id masked (the kernel fills
    in a zero id of a header-included packet)."""
    k = bytearray(pktinfo.forward_key(l3))
    if k and k[0] >> 4 == 4 and len(k) >= 20:
        k[4:6] = b"\0\0"
    return bytes(k)


@dataclass
class _Batch:
    """One table listing and the packets it follows: ingress frames (capture indices) and
    packets fw sent (``_Local`` ids)."""

    snap: TableSnapshot
    frames: list[int]
    step: int
    label: str = ""
    locals: list[int] = field(default_factory=list)


@dataclass
class _Local:
    """A packet fw sent itself (``Send("fw", ...)``)."""

    id: int
    ts_ns: int  # just before the send
    l3: bytes
    step: int
    oif: str | None  # fw's route for the destination (where it should leave)
    error: str | None = None  # sendto failed (EPERM: an OUTPUT rule dropped it)


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
    fw_ifaces: tuple[str, ...] = ("c0", "s0")
    locals: list[_Local] = field(default_factory=list)
    macs: dict[str, tuple[str, str]] = field(default_factory=dict)  # iface -> (fw, peer)
    packets: list[dict[str, Any]] = field(default_factory=list)
    fw_sent: list[dict[str, Any]] = field(default_factory=list)
    _wire: list[tuple[int, str, bytes, int]] = field(default_factory=list)

    # -- the join ----------------------------------------------------------------------
    def ingress(self) -> list[tuple[int, Frame]]:
        """(capture index, frame) of IPv4/IPv6 frames entering fw, in capture order."""
        return [(i, f) for i, f in enumerate(self.frames)
                if not f.outgoing and f.iface in self.fw_ifaces and f.l3]

    def egress(self) -> list[tuple[int, Frame]]:
        return [(i, f) for i, f in enumerate(self.frames)
                if f.outgoing and f.iface in self.fw_ifaces and f.l3]

    def analyse(self) -> None:
        ingress = self.ingress()
        for (_, a), (_, b) in zip(ingress, ingress[1:]):
            if b.ts_ns < a.ts_ns:
                self.warnings.append(f"capture timestamps go backwards at {b.ts_ns}")
        egress = self.egress()
        local_out, used_egress = self._match_locals(egress)
        nf_local = self._match_local_nflog()
        nf_of = self._match_nflog(ingress, lambda r: r.ctstate is not None
                                  and r.hook != NF_INET_LOCAL_OUT)
        deliv = self._match_nflog(ingress, lambda r: r.delivered, quiet=True)
        fwd_of, sent = self._match_egress(ingress, egress, used_egress)
        snap_of: dict[int, _Batch] = {}
        snap_loc: dict[int, _Batch] = {}
        for bt in self.batches:
            for idx in bt.frames:
                snap_of[idx] = bt
            for lid in bt.locals:
                snap_loc[lid] = bt

        # every packet conntrack saw, in time order: ("in", capture index) / ("local", id)
        items: list[tuple[int, int, str, int]] = []
        for seq, (idx, f) in enumerate(ingress):
            items.append((f.ts_ns, seq, "in", idx))
        for loc in self.locals:
            j = local_out.get(loc.id)
            ts = self.frames[j].ts_ns if j is not None else loc.ts_ns
            items.append((ts, len(ingress) + loc.id, "local", loc.id))
        items.sort()
        ts_list = [t for t, _, _, _ in items]  # sorted
        packets: list[dict[str, Any]] = []
        wire: list[tuple[int, str, bytes, int]] = []
        for n, (ts_ns, _, kind, key) in enumerate(items, 1):
            batch: _Batch | None
            if kind == "in":
                f = self.frames[key]
                l3, iface, data = f.l3, f.iface, f.data
                rec = nf_of.get(key)
                batch = snap_of.get(key)
                out = fwd_of.get(key)
                delivered = key in deliv
                hook = "PREROUTING"
                flags = EPB_INBOUND
            else:
                loc = self.locals[key]
                rec = nf_local.get(key)
                j = local_out.get(key)
                l3 = rec.payload if rec is not None and rec.payload else loc.l3
                out = self.frames[j].iface if j is not None else None
                iface = out or loc.oif or self.fw_ifaces[0]
                if j is not None and _local_key(self.frames[j].l3) == _local_key(l3):
                    data = self.frames[j].data
                else:   # not seen leaving, or NAT rewrote it on the way: as it was sent
                    fw_mac, peer_mac = self.macs.get(iface, ("02:00:00:00:00:01",
                                                             "02:00:00:00:00:02"))
                    data = _mac(peer_mac) + _mac(fw_mac) + _ethertype(l3) + l3
                batch = snap_loc.get(key)
                delivered = False
                hook = "OUTPUT"
                flags = EPB_OUTBOUND
            wire.append((ts_ns, iface, data, flags))
            info = pktinfo.parse(l3)
            seen = pktinfo.parse(rec.payload) if rec is not None and rec.payload else None
            p: dict[str, Any] = {
                "n": n, "ts": round(ts_ns / 1e9, 6), "ts_ns": ts_ns,
                "iface": iface if kind == "in" else None, "hook": hook, "len": len(l3),
                "summary": info.summary() if info else l3[:20].hex(),
            }
            if info is not None and info.is_fragment:
                p["frag"] = {"id": info.frag_id, "offset": info.frag_offset,
                             "more": info.frag_more}
            p["nflog"] = rec is not None
            p["ctstate"] = rec.ctstate if rec is not None else None
            p["dir"] = rec.ctdir if rec is not None else None
            if rec is not None and len(rec.payload) != len(l3):
                p["conntrack_len"] = len(rec.payload)  # e.g. the reassembled datagram
            p["forwarded"] = out is not None
            p["out_iface"] = out
            p["delivered"] = delivered
            if out is not None or delivered:
                p["verdict"] = "ACCEPT"
            elif rec is None and "frag" in p:
                p["verdict"] = None  # held for reassembly (or dropped with its queue)
            else:
                p["verdict"] = "DROP"
            if kind == "local" and self.locals[key].error:
                p["send_error"] = self.locals[key].error
            if batch is not None:
                later = bisect.bisect_right(ts_list, batch.snap.end_ns) - \
                    bisect.bisect_right(ts_list, ts_ns)
                p["step"] = batch.step
                p["snapshot_ts"] = round(batch.snap.start_ns / 1e9, 6)
                p["snapshot_exact"] = later <= 0
                key_info = seen or info
                p["entry"] = (pktinfo.find_entry(key_info, batch.snap.conntrack)
                              if key_info is not None else None)
                p["conntrack"] = batch.snap.conntrack
                p["proc"] = batch.snap.proc
            else:
                if self.scenario.snapshots == "all":
                    self.warnings.append(f"packet {n} has no table snapshot")
                p.update(step=None, snapshot_ts=None, snapshot_exact=False, entry=None,
                         conntrack=None, proc=None)
            packets.append(p)
        self.packets = packets
        self._wire = wire
        self.fw_sent = self._describe_sent(sent)

    def _match_locals(self, egress: list[tuple[int, Frame]]
                      ) -> tuple[dict[int, int], set[int]]:
        """Packet fw sent -> the capture index of its frame leaving fw."""
        out: dict[int, int] = {}
        used: set[int] = set()
        if not self.locals:
            return out, used
        by_key: dict[bytes, list[tuple[int, Frame]]] = {}
        for j, g in egress:
            by_key.setdefault(_local_key(g.l3), []).append((j, g))
        for loc in self.locals:
            for j, g in by_key.get(_local_key(loc.l3), ()):
                if j not in used and g.ts_ns >= loc.ts_ns:
                    out[loc.id] = j
                    used.add(j)
                    break
        # sent after NAT rewrote it on OUTPUT/POSTROUTING (issue 7): lab.egress
        egress_mod.match_local_translated(self.locals, egress, used, out)
        return out, used

    def _match_local_nflog(self) -> dict[int, NflogRecord]:
        """Packet fw sent -> its NFLOG record at mangle OUTPUT (same bytes, in order)."""
        recs = [r for r in self.nflog if r.ctstate is not None and r.hook == NF_INET_LOCAL_OUT]
        used: set[int] = set()
        out: dict[int, NflogRecord] = {}
        for loc in self.locals:
            key = _local_key(loc.l3)
            for i, r in enumerate(recs):
                if i not in used and _local_key(r.payload) == key:
                    out[loc.id] = r
                    used.add(i)
                    break
        return out

    def _match_nflog(self, ingress: list[tuple[int, Frame]],
                     want: Callable[[NflogRecord], bool],
                     quiet: bool = False) -> dict[int, NflogRecord]:
        """NFLOG record -> ingress frame: same skb timestamp (µs) and input interface;
        a reassembled datagram carries the timestamp of the fragment that completed it."""
        by_key: dict[tuple[int, str], list[int]] = {}
        for idx, f in ingress:
            by_key.setdefault((f.ts_ns // 1000, f.iface), []).append(idx)
        frames = dict(ingress)
        out: dict[int, NflogRecord] = {}
        for rec in self.nflog:
            if not want(rec):
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
                if not quiet:
                    self.warnings.append(f"NFLOG record '{rec.prefix}' at {rec.ts_ns} on "
                                         f"{indev} matches no captured packet")
                continue
            out[pick] = rec
        return out

    def _match_egress(self, ingress: list[tuple[int, Frame]], egress: list[tuple[int, Frame]],
                      used: set[int]) -> tuple[dict[int, str], list[tuple[int, Frame]]]:
        """ingress frame -> interface it left fw on; plus egress frames fw made itself."""
        used = set(used)
        out: dict[int, str] = {}
        by_key: dict[bytes, list[tuple[int, Frame]]] = {}
        for j, g in egress:
            by_key.setdefault(pktinfo.forward_key(g.l3), []).append((j, g))
        for idx, f in ingress:
            hops = _ttl(f.l3) - 1
            for j, g in by_key.get(pktinfo.forward_key(f.l3), ()):
                if j > idx and j not in used and _ttl(g.l3) == hops:
                    used.add(j)
                    out[idx] = g.iface
                    break
        # Re-fragmented on output: same addresses and offset (IPv4 keeps the fragment id,
        # IPv6 picks a new one), leaving after the fragment came in.
        frag_out = [(j, g, pktinfo.parse(g.l3)) for j, g in egress if j not in used]
        frag_out = [(j, g, gi) for j, g, gi in frag_out if gi is not None and gi.is_fragment]
        for idx, f in ingress:
            info = pktinfo.parse(f.l3) if frag_out else None
            if idx in out or info is None or not info.is_fragment:
                continue
            for j, g, gi in frag_out:
                if (j > idx and j not in used and gi is not None and gi.is_fragment
                        and (gi.src, gi.dst, gi.frag_offset) == (info.src, info.dst,
                                                                  info.frag_offset)
                        and (gi.version == 6 or gi.frag_id == info.frag_id)):
                    out[idx] = g.iface
                    used.add(j)
                    break
        # forwarded after NAT rewrote addresses/ports/checksums (issue 7): lab.egress
        egress_mod.match_translated(ingress, egress, used, out)
        sent = []
        for j, g in egress:
            if j in used:
                continue
            gi = pktinfo.parse(g.l3)
            if gi is not None and gi.dst.startswith("ff02:"):
                continue  # fw's own MLD/ND multicast
            sent.append((j, g))
        return out, sent

    def _describe_sent(self, sent: list[tuple[int, Frame]]) -> list[dict[str, Any]]:
        """Frames fw emitted on its own (REJECT answers, ICMP errors, its stack's replies
        when not silenced), with the ctstate conntrack gave them at OUTPUT if logged."""
        recs = [r for r in self.nflog if r.ctstate is not None and r.hook == NF_INET_LOCAL_OUT]
        local_keys = {_local_key(loc.l3) for loc in self.locals}
        recs = [r for r in recs if _local_key(r.payload) not in local_keys]
        used: set[int] = set()
        out = []
        for _, g in sent:
            gi = pktinfo.parse(g.l3)
            d: dict[str, Any] = {"ts": round(g.ts_ns / 1e9, 6), "ts_ns": g.ts_ns,
                                 "iface": g.iface,
                                 "summary": gi.summary() if gi else g.l3[:20].hex()}
            key = _local_key(g.l3)
            for i, r in enumerate(recs):
                if i not in used and _local_key(r.payload) == key:
                    used.add(i)
                    d["ctstate"], d["dir"] = r.ctstate, r.ctdir
                    break
            out.append(d)
        return out

    # -- output ------------------------------------------------------------------------
    def kernel_json(self) -> dict[str, Any]:
        if not self.packets and (self.frames or self.locals):
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
        """``capture.pcapng``: one IDB per fw interface (in the lab's order, ns timestamps),
        one EPB per packet of ``packets`` (inbound, or outbound for packets fw sent)."""
        if not self.packets and (self.frames or self.locals):
            self.analyse()
        buf = io.BytesIO()
        w = PcapngWriter(buf, userappl=f"statewall lab: {self.scenario.name}")
        ids = {name: w.interface(name, LINKTYPE_ETHERNET) for name in self.fw_ifaces}
        for ts_ns, iface, data, flags in self._wire:
            w.write(data, ts_ns, ids[iface], flags=flags)
        return buf.getvalue()

    def write(self, outdir: str | Path) -> Path:
        """Write ``capture.pcapng`` and ``kernel.json`` into ``outdir`` (created)."""
        d = Path(outdir)
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("capture.pcap",):
            (d / stale).unlink(missing_ok=True)
        (d / "capture.pcapng").write_bytes(self.pcapng_bytes())
        (d / "kernel.json").write_text(dump_json(self.kernel_json()))
        egress_mod.write(self, d)        # every frame fw transmitted (NAT comparisons)
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
        self.upto = 0  # capture index up to which ingress frames have been looked at
        self.local_upto = 0  # same for packets fw sent
        self.batches: list[_Batch] = []
        self.snapshots: list[_Batch] = []
        self.steps: list[dict[str, Any]] = []
        self.programs: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.locals: list[_Local] = []
        self.step_no = 0
        self.t_start = time.monotonic()
        self.counted = 0  # packets seen, for snapshots every N
        self.next_snap = scn.snapshots if isinstance(scn.snapshots, int) else 0
        self.injected: dict[int, bytes] = {}  # capture index -> the frame we sent
        self.inject: dict[str, socket.socket] = {}
        self.raw: dict[int, socket.socket] = {}
        self.iface_of_side = {ep.side: ep.fw_ifname for ep in topo.endpoints}
        for ep in topo.endpoints:
            s = topo.socket(ep.side, socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.bind((ep.ifname, 0))
            self.inject[ep.side] = s

    def close(self) -> None:
        for s in (*self.inject.values(), *self.raw.values()):
            s.close()

    # -- observation -------------------------------------------------------------------
    def _new_ingress(self, frames: list[Frame]) -> list[int]:
        return [i for i in range(self.upto, len(frames))
                if not frames[i].outgoing and frames[i].l3]

    def _want_snapshot(self, n: int) -> bool:
        policy = self.scn.snapshots
        if policy == "all":
            return True
        if policy == "none":
            return False
        self.counted += n
        if self.counted >= self.next_snap:
            assert isinstance(policy, int)
            while self.next_snap <= self.counted:
                self.next_snap += policy
            return True
        return False

    def observe(self, until: float, need: Callable[[], bool] | None = None,
                quiet: float = 0.0, hard: float | None = None) -> None:
        """Snapshot after every ingress packet (and packet fw sent) until monotonic time
        ``until`` has passed, ``need()`` (if given) is true and nothing entered fw for
        ``quiet`` seconds."""
        last = time.monotonic()
        hard_deadline = hard if hard is not None else until + 10.0
        while True:
            frames = self.cap.snapshot()
            new = self._new_ingress(frames)
            new_loc = list(range(self.local_upto, len(self.locals)))
            if new or new_loc:
                if self._want_snapshot(len(new) + len(new_loc)):
                    time.sleep(self.scn.settle)
                    frames = self.cap.snapshot()
                    new = self._new_ingress(frames)
                    snap = kernelstate.snapshot(self.topo)
                    self.batches.append(_Batch(snap, new, self.step_no, locals=new_loc))
                self.upto = len(frames)
                self.local_upto = len(self.locals)
                last = time.monotonic()
                continue
            self.upto = len(frames)
            now = time.monotonic()
            if now >= until and (need is None or need()) and now - last >= quiet:
                return
            if now > hard_deadline:
                self.warnings.append(f"step {self.step_no}: gave up waiting for traffic")
                return
            self.cap.wait_for(self.upto, timeout=min(0.01, until - now) if until > now else 0.01)

    # -- steps -------------------------------------------------------------------------
    def run(self) -> None:
        self.t_start = time.monotonic()
        for step in self.scn.steps:
            self.step_no += 1
            at = getattr(step, "at", None)
            if at is not None:
                self.observe(self.t_start + at)
            t0 = time.monotonic()
            rec: dict[str, Any] = {"step": self.step_no, "ts": round(time.time(), 6)}
            if isinstance(step, Send):
                if step.side == FW:
                    self._send_local(step, rec)
                else:
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
        info = check_addresses(frame[14:], self.scn.any_address)
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

    def _raw_socket(self, version: int) -> socket.socket:
        s = self.raw.get(version)
        if s is None:
            if version == 4:
                s = self.topo.socket("fw", socket.AF_INET, socket.SOCK_RAW,
                                     socket.IPPROTO_RAW, fsuid=INJECT_UID)
            else:
                s = self.topo.socket("fw", socket.AF_INET6, socket.SOCK_RAW,
                                     socket.IPPROTO_RAW, fsuid=INJECT_UID)
            self.raw[version] = s
        return s

    def _send_local(self, step: Send, rec: dict[str, Any]) -> None:
        l3 = l3_bytes(step.packet)
        info = check_addresses(l3, self.scn.any_address)
        rec.update(kind="send", side=FW, summary=info.summary(), delay=step.delay)
        if step.note:
            rec["note"] = step.note
        sock = self._raw_socket(info.version)
        t0 = time.monotonic()
        loc = _Local(len(self.locals), time.time_ns(), l3, self.step_no,
                     self.topo.route_iface(info.dst))
        try:
            if info.version == 4:
                sock.sendto(l3, (info.dst, 0))
            else:
                sock.sendto(l3, (info.dst, 0, 0, 0))
        except OSError as exc:  # EPERM: dropped by an OUTPUT rule
            loc.error = exc.strerror or str(exc)
        self.locals.append(loc)
        self.observe(t0 + step.delay)

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
        if not isinstance(step, Send) or step.side == FW:
            continue
        info = pktinfo.parse(l3_bytes(step.packet))
        for p in (info, info.inner if info else None):
            if p is not None and p.version == 6:
                addrs.update(a for a in (p.src, p.dst) if is_doc_address(a))
    return addrs


def _interfaces_meta(topo: Topology) -> dict[str, Any]:
    return {ep.fw_ifname: {"fw_mac": ep.fw_mac, "fw_ipv4": ep.fw_ipv4, "fw_ipv6": ep.fw_ipv6,
                           "fw_addrs": ep.fw_addresses(), "peer": ep.side,
                           "peer_mac": ep.mac, "peer_ipv4": ep.ipv4, "peer_ipv6": ep.ipv6}
            for ep in topo.endpoints}


def record(scn: Scenario, *, prefix: str | None = None, log: Log | None = None) -> Recording:
    """Run ``scn`` against the kernel in a fresh lab and return the recording.

    The namespaces are gone when this returns or raises.
    """
    say: Log = log or (lambda _m: None)
    topo: Topology | None = None
    session: _Session | None = None
    cap: Capture | None = None
    nfl: NflogReader | None = None
    events: EventLog | None = None
    delays: list[DelayLine] = []
    try:
        topo = Topology(prefix, links=scn.links)
        v6 = scenario_v6_addresses(scn) if scn.links is None else set()
        sides = {ep.side for ep in topo.endpoints} | {FW}
        for step in scn.steps:
            if isinstance(step, Send) and step.side not in sides:
                raise LabError(f"Send side {step.side!r} is not a peer of this lab "
                               f"({', '.join(sorted(sides))})")
        topo.up(live_peers=scn.is_live, extra_v6=v6)
        say(f"{scn.name}: lab {topo.prefix} up (live peers: {scn.is_live})")
        sysctls = topo.sysctl("fw", dict(scn.sysctls))
        if scn.ipsets.strip():
            topo.run("fw", ["ipset", "restore"], input=scn.ipsets.strip() + "\n")
        if scn.rules_v4.strip():
            topo.run("fw", ["iptables-restore", "--noflush"], input=scn.rules_v4.strip() + "\n")
        if scn.rules_v6.strip():
            topo.run("fw", ["ip6tables-restore", "--noflush"],
                     input=scn.rules_v6.strip() + "\n")
        rules = observe_ruleset(NFLOG_GROUP,
                                silence_uid=INJECT_UID if scn.fw_silent else None)
        topo.run("fw", ["iptables-restore", "--noflush"], input=rules)
        topo.run("fw", ["ip6tables-restore", "--noflush"], input=rules)
        saved: dict[str, list[str] | str] = {
            "ipv4": _clean_save(topo.run("fw", ["iptables-save"]).stdout),
            "ipv6": _clean_save(topo.run("fw", ["ip6tables-save"]).stdout)}
        if saved["ipv6"] == saved["ipv4"]:
            saved["ipv6"] = "same as ipv4"
        if scn.is_paced:
            shared = Schedule()
            delays = [DelayLine(topo, ep.side, schedule=shared) for ep in topo.endpoints]
        ifindex = topo.ifindexes("fw")
        cap = Capture(topo.socket("fw", *Capture.open_socket_args()), topo.fw_ifaces).start()
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
            "requires": list(scn.requires),
            "topology": {
                "lab": "capture" if scn.links is not None else "corpus",
                "live_peers": scn.is_live,
                "fw_silent": scn.fw_silent,
                "delay_line": ({"delay": delays[0].delay, "gap": delays[0].gap}
                               if delays else None),
                "offloads_disabled": topo.offloads_disabled,
                "interfaces": _interfaces_meta(topo),
                "routes": [list(r) for r in topo.route_table],
            },
            "sysctls": sysctls,
            "rules_input": {"ipv4": scn.rules_v4.strip(), "ipv6": scn.rules_v6.strip(),
                            **({"ipset": scn.ipsets.strip()} if scn.ipsets.strip() else {})},
            "rules": saved,
            "snapshot_policy": scn.snapshots,
        }
        recording = Recording(scn, meta, frames, records, session.batches, session.snapshots,
                              final, final_stats, event_lines, session.steps, session.programs,
                              ifindex, warnings, topo.fw_ifaces, session.locals,
                              {ep.fw_ifname: (ep.fw_mac, ep.mac) for ep in topo.endpoints})
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
        if topo is not None:
            topo.down()
            left = topo.leftover()
            if left:
                raise LabError(f"namespaces left behind: {left}")


def record_to(scn: Scenario, outdir: str | Path, **kw: Any) -> Recording:
    """``record`` and write ``capture.pcapng`` + ``kernel.json`` into ``outdir``."""
    rec = record(scn, **kw)
    rec.write(outdir)
    return rec
