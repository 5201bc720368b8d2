"""``statewall explain CAPTURE --packet N``: the story of one packet, in words.

Owns: turning one packet's ``Decision`` (conntrack's classification and reason, the entry
before and after, the routing decision, the rules that fired, the verdict's source, what
the firewall emitted) into sentences. Must not know: how any of it is decided (it replays
the capture up to packet N through the same ``Firewall`` as ``replay``, with tracing on).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..conntrack.conn import ctinfo_state
from ..conntrack.format import conntrack_line
from ..firewall import Decision, Emitted, Firewall
from ..packet.describe import describe
from ..packet.packet import Packet
from . import replay as rp


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain", help="explain in words what happened to one packet of a capture",
        description="Replay a capture up to packet N and tell its story: conntrack's "
                    "classification and why, the entry before and after, routing, the "
                    "rules that matched and the verdict.")
    p.add_argument("capture")
    p.add_argument("--packet", "-n", type=int, required=True, metavar="N",
                   help="1-based packet number, as in the trace")
    rp.add_common_options(p)
    p.set_defaults(func=run)


_CTINFO_WORDS = {
    0: "an existing entry, original direction, which has seen a reply",
    1: "a connection related to an existing entry (an expectation or an ICMP error about it)",
    2: "the original direction of an entry that has not seen a reply yet",
    3: "an existing entry, reply direction",
    4: "an ICMP error about an existing entry, reply direction",
}


def _entry_before(fw: Firewall, pkt: Packet, now: float) -> str | None:
    """The entry the packet will meet, as a conntrack -L line, before it is processed."""
    t = fw.tracker
    for key in ((pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport, 0),
                (pkt.src, pkt.dst, pkt.proto, 0, 0, 0)):
        ct = t.table.hash.get(key)
        if ct is not None and ct.timeout > now:
            return conntrack_line(ct, now, t.l4[ct.proto])
    return None


def story(n: int, ts: float, t0: float, iface: str | None, pkt: Packet, before: str | None,
          d: Decision, fw: Firewall) -> list[str]:
    out = [f"Packet {n}, {ts - t0:.6f} s after the first packet, "
           + (f"arrived on {iface}" if iface else "with no input interface (local or unknown)"),
           f"  {describe(pkt)}", ""]
    if d.verdict == "HOLD":
        out.append("Defragmentation kept it: it is a fragment of a datagram that is not "
                   "complete yet; conntrack and the rules will see the whole datagram when "
                   "its last fragment arrives.")
        return out
    seen = d.pkt
    if seen is None:
        out.append(f"It never reached connection tracking: {d.reason}.")
        return out
    if d.fragments:
        out.append(f"It completed a datagram of {d.fragments} fragments; everything below is "
                   "about the reassembled datagram.")
    out.append("Connection tracking:")
    state = ctinfo_state(seen.ct, seen.ctinfo)
    if seen.ct is None:
        if state == "UNTRACKED":
            out.append("  UNTRACKED: conntrack skips it (NOTRACK, or an ICMPv6 type the kernel "
                       "never tracks).")
        else:
            out.append(f"  INVALID: {seen.reason or 'no connection for it'}.")
            out.append("  The packet carries no entry; rules see --ctstate INVALID.")
    else:
        if before is None:
            out.append(f"  {state}: no entry had this tuple, so a new one was created; it "
                       "joins the table only if the packet survives the rules (confirm).")
        else:
            out.append(f"  {state}: {_CTINFO_WORDS.get(seen.ctinfo, 'an existing entry')}.")
            out.append(f"  before: {before}")
        t = fw.tracker
        ct = seen.ct
        if ct.status & 8 and not ct.status & (1 << 9):
            out.append(f"  after:  {conntrack_line(ct, ts, t.l4[ct.proto])}")
        elif ct.status & (1 << 9) and before is None:
            out.append("  after:  none: the packet did not survive, so the new entry was "
                       "never confirmed")
        elif ct.status & (1 << 9):
            out.append("  after:  the entry was removed by this packet")
        if seen.reason:
            out.append(f"  note: {seen.reason}")
    if d.path:
        route = " -> ".join(d.path)
        out += ["", f"Path: {route}" + (f", out via {d.out_iface}" if d.out_iface else "")]
    if d.matched:
        out += ["", "Rules that matched:"]
        for table, chain, num, text in d.matched:
            out.append(f"  {table}/{chain}#{num}: {text}")
    if d.nat:
        out.append(f"NAT rules matched (not applied yet): {d.nat}")
    for e in d.emitted:
        if isinstance(e, Emitted):
            if e.data:
                fate = e.decision.verdict if e.decision is not None else "?"
                out.append(f"Emitted: REJECT reply ({e.about}), {len(e.data)} bytes, "
                           f"{fate} on its way out through OUTPUT")
            else:
                why = e.decision.reason if e.decision is not None else ""
                out.append(f"REJECT ({e.about}) sends nothing here: {why}")
        elif type(e).__name__ == "LogRecord":
            out.append(f"Logged by {e.table}/{e.chain}#{e.rulenum} with prefix {e.prefix!r}")
        elif type(e).__name__ != "RejectRecord":
            out.append(f"Emitted: {e!r}")
    out.append("")
    verdict = f"Verdict: {d.verdict}"
    if d.source:
        verdict += f" by {d.source}"
    elif d.verdict == "ACCEPT":
        verdict += " (no rule dropped it; policies ACCEPT)"
    if d.verdict == "DROP" and d.reason and not d.reason.startswith("dropped by"):
        verdict += f": {d.reason}"
    out.append(verdict)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        fw, _ = rp.build_firewall(args, trace=True)
    except rp.UsageError as e:
        print(f"statewall explain: {e}", file=sys.stderr)
        return 2
    target = args.packet
    if target < 1:
        print("statewall explain: --packet counts from 1", file=sys.stderr)
        return 2
    t0: float | None = None
    try:
        for n, rec, pkt, hook in rp.iter_packets(args.capture, fw):
            if t0 is None:
                t0 = rec.ts
            if pkt is None:
                if n == target:
                    print(f"Packet {n}: {hook}")
                    return 0
                continue
            before = _entry_before(fw, pkt, rec.ts) if n == target else None
            d = fw.process(pkt, rec.ts, hook)
            if n == target:
                for line in story(n, rec.ts, t0, pkt.iface, pkt, before, d, fw):
                    print(line)
                return 0
    except rp.CaptureError as e:
        print(f"statewall explain: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"statewall explain: {e}", file=sys.stderr)
        return 2
    print(f"statewall explain: the capture has fewer than {target} packets", file=sys.stderr)
    return 1
