"""The kernel-diff report: text for people, JSON for machines.

Owns: the layout of ``statewall kernel-diff``'s output - a header (capture, lab, kernel,
rules, settings), one line per packet with the kernel's outcome and statewall's (verdict,
ctstate/direction, the packet's entry: state, flags, timeout), totals, the first divergence
of each connection with both sides' view, run-level differences (snapshots, final table,
events) - and its JSON twin.
Must not know: how the comparison is made (``compare``) or the lab is run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .compare import Comparison, PacketResult, View, entry_summary

_SEQACK = re.compile(r" seq=\d+ ack=\d+")
_TYPECODE = re.compile(r" type=(\d+) code=(\d+)")


def short_summary(summary: str) -> str:
    """``tcp 198.51.100.2:40000 > 203.0.113.2:80 [S]`` from the lab's packet summary."""
    s = _TYPECODE.sub(r" type \1/\2", _SEQACK.sub("", summary))
    for pre in ("IPv4 ", "IPv6 "):
        if s.startswith(pre):
            s = s[len(pre):]
    return s


def cell(v: View) -> str:
    verdict = v.verdict or "-"
    return f"{verdict:<6} {v.state():<13} {entry_summary(v.entry)}"


def _header(info: Mapping[str, Any]) -> list[str]:
    out = []
    title = info.get("title")
    if title:
        out.append(f"statewall kernel-diff: {title}")
    for key in ("lab", "kernel", "rules", "settings", "capture", "timing"):
        if info.get(key):
            out.append(f"  {key + ':':<10}{info[key]}")
    for w in info.get("warnings", []):
        out.append(f"  warning:  {w}")
    return out


def packet_line(p: PacketResult, t0: float, width: int = 52) -> str:
    mark = "!" if p.diffs else " "
    where = p.iface or ("fw>" if p.hook == "OUTPUT" else "?")
    summ = short_summary(p.summary)
    if len(summ) > width:
        summ = summ[:width - 1] + "~"
    k = cell(p.kernel)
    s = "same" if not p.diffs else cell(p.statewall)
    n = p.capture_n if p.capture_n is not None else p.n
    return f"{mark}{n:>5} {p.ts - t0:>10.6f} {where:<5} {summ:<{width}} {k:<44} {s}"


def text(cmp: Comparison, info: Mapping[str, Any] | None = None, *,
         all_packets: bool = True) -> str:
    """The human report.  ``all_packets`` false: only the packets that differ."""
    lines = _header(info or {})
    if cmp.missing:
        lines.append("  note:     statewall lacks " + ", ".join(cmp.missing)
                     + ": it replays without, differences are expected")
    lines.append("")
    lines.append(f"{'':1}{'n':>5} {'time':>10} {'in':<5} {'packet':<52} "
                 f"{'kernel: verdict ctstate entry':<44} statewall")
    t0 = cmp.packets[0].ts if cmp.packets else 0.0
    for p in cmp.packets:
        if all_packets or p.diffs:
            lines.append(packet_line(p, t0))
    t = cmp.totals()
    lines.append("")
    kinds = ", ".join(f"{k} {v}" for k, v in t["by_kind"].items())
    lines.append(f"totals: {t['packets']} packets: {t['agree']} agree, {t['differ']} differ"
                 + (f" ({kinds})" if kinds else "")
                 + f"; tables compared after {t['tables_compared']} packets")
    run_kinds = {d.kind for d in cmp.problems}
    lines.append("        " + "; ".join(
        f"{what}: {'DIFFER' if k in run_kinds else 'agree'}"
        for what, k in (("snapshots", "snapshot"), ("final table", "final"),
                        ("events", "events"))))
    firsts = cmp.first_divergences()
    if firsts:
        lines.append("")
        lines.append("first divergence per connection:")
        for p in firsts:
            lines.append(f"  {p.conn}: packet {p.n} ({short_summary(p.summary)})")
            lines.append(f"    kernel:    {p.kernel.verdict or '-'} {p.kernel.ctstate or '-'}"
                         f"{'/' + p.kernel.dir if p.kernel.dir else ''}")
            lines.append(f"               entry {p.kernel.entry or '(none)'}")
            reason = f" ({p.statewall.reason})" if p.statewall.reason else ""
            lines.append(f"    statewall: {p.statewall.verdict or '-'} "
                         f"{p.statewall.ctstate or '-'}"
                         f"{'/' + p.statewall.dir if p.statewall.dir else ''}{reason}")
            lines.append(f"               entry {p.statewall.entry or '(none)'}")
            for d in p.diffs:
                first, *rest = d.text.splitlines()
                lines.append(f"    {d.kind}: {first}")
                lines += [f"      {r}" for r in rest]
    if cmp.problems:
        lines.append("")
        lines.append("other differences:")
        for d in cmp.problems:
            first, *rest = d.text.splitlines()
            lines.append(f"  {d.kind}: {first}")
            lines += [f"    {r}" for r in rest]
    lines.append("")
    if cmp.agree:
        lines.append("result: statewall agrees with the kernel on every packet")
    else:
        lines.append(f"result: {len(cmp.diffs)} difference(s)"
                     f" in {t['differ']} packet(s)" if t["differ"] else
                     f"result: {len(cmp.diffs)} difference(s)")
    return "\n".join(lines) + "\n"


def as_json(cmp: Comparison, info: Mapping[str, Any] | None = None) -> str:
    doc = {"kernel_diff": 1, **(dict(info) if info else {}), **cmp.to_json()}
    return json.dumps(doc, indent=1) + "\n"
