"""One kernel-diff run: plan the lab, record the kernel, replay statewall, compare.

Owns: the sequence behind ``statewall kernel-diff`` and ``tools/record_corpus.py`` - a
capture (planned into a lab scenario by ``plan``) or a corpus scenario file, recorded by
``statewall.lab.record`` (namespaces always torn down, also on errors and Ctrl-C), the
recording's own ``capture.pcapng`` replayed through statewall by ``compare``, and the facts
the report's header shows.
Must not know: the report layout, argument parsing.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..conntrack.sysctl import MODULE_PARAMS, resolve_name
from ..io.capture import CaptureReader, open_capture
from ..lab.record import Recording, record
from ..lab.scenario import Scenario, load_scenario
from . import plan as _plan
from .compare import Comparison, compare

Log = Callable[[str], None]


@dataclass
class Options:
    """What ``statewall kernel-diff`` was asked to do (see the command's help)."""

    source: Path  # a pcap/pcapng capture or a corpus scenario (.py)
    rules_v4: str | None = None  # None: none (a scenario: its own)
    rules_v6: str | None = None
    sysctls: list[tuple[str, str]] = field(default_factory=list)
    fw_ifaces: list[tuple[str, list[str]]] = field(default_factory=list)
    mode: str = "auto"  # auto | interfaces | sides
    side_names: tuple[str, str] = _plan.SIDE_NAMES
    speed: float = 1.0
    snapshots: str | int = "auto"  # auto | all | none | N
    marks: list[float] = field(default_factory=list)
    linger: float = 0.0
    any_address: bool = False
    fw_silent: bool = True
    name: str | None = None
    prefix: str | None = None  # namespace prefix (tests)


@dataclass
class Result:
    comparison: Comparison
    recording: Recording
    info: dict[str, Any]


def sysctl_pairs(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Full sysctl names; helper module parameters cannot be set per namespace."""
    out: dict[str, str] = {}
    for key, value in items:
        full = resolve_name(key)
        if full is None:
            if "." in key:  # any other sysctl of the firewall: passed to the lab as is
                out[key] = value
                continue
            raise _plan.PlanError(f"--sysctl: unknown sysctl {key!r}")
        if full in MODULE_PARAMS:
            raise _plan.PlanError(f"--sysctl {key}: a module parameter is global to the "
                                  "kernel and cannot be set inside the lab")
        out[full] = value
    return out


def auto_snapshots(n: int) -> str | int:
    """Every packet for short captures; about 200 listings for long ones."""
    return "all" if n <= 400 else max(2, n // 200)


def scenario_for(opts: Options) -> tuple[Scenario, _plan.Plan | None]:
    """The lab scenario for ``opts.source`` (and the capture's plan, if it is one)."""
    src = opts.source
    sysctls = sysctl_pairs(opts.sysctls)
    if src.suffix == ".py":
        scn = load_scenario(src)
        overrides: dict[str, Any] = {}
        if opts.rules_v4 is not None:
            overrides["rules_v4"] = opts.rules_v4
        if opts.rules_v6 is not None:
            overrides["rules_v6"] = opts.rules_v6
        if sysctls:
            overrides["sysctls"] = {**scn.sysctls, **sysctls}
        if opts.snapshots != "auto":
            overrides["snapshots"] = opts.snapshots
        if overrides:
            import dataclasses
            scn = dataclasses.replace(scn, **overrides)
        return scn, None
    with open_capture(src) as cap:
        frames = list(cap)
        damage = cap.error
    pl = _plan.plan_capture(frames, fw_ifaces=opts.fw_ifaces, mode=opts.mode,
                            side_names=opts.side_names, any_address=opts.any_address)
    if damage is not None:
        pl.warnings.append(f"capture damaged after packet {len(frames)}: {damage}")
    snaps = auto_snapshots(len(pl.packets)) if opts.snapshots == "auto" else opts.snapshots
    scn = _plan.to_scenario(pl, opts.name or src.stem, rules_v4=opts.rules_v4 or "",
                            rules_v6=opts.rules_v6 or "", sysctls=sysctls, speed=opts.speed,
                            snapshots=snaps, marks=opts.marks, linger=opts.linger,
                            fw_silent=opts.fw_silent)
    return scn, pl


def compare_recording(rec: Recording) -> Comparison:
    """Replay a fresh recording's own capture through statewall."""
    k = rec.kernel_json()
    reader = CaptureReader(io.BytesIO(rec.pcapng_bytes()), name="lab capture")
    frames = list(reader)
    return compare(k, frames, rec.scenario.name)


def _count_rules(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip().startswith(("-A", "-I")))


def describe(opts: Options, scn: Scenario, pl: _plan.Plan | None,
             rec: Recording) -> dict[str, Any]:
    """The report header's facts."""
    k = rec.kernel_json()
    topo = k.get("topology", {})
    ifs = topo.get("interfaces", {})
    if pl is None:
        lab = "corpus lab: " + ", ".join(f"{n} ({v['peer']})" for n, v in ifs.items())
    else:
        how = ("as named in the capture" if pl.mode == "interfaces"
               else "client and server side, found from the addresses")
        lab = (f"{len(ifs)} interfaces ({how}): "
               + ", ".join(f"{ln.fw_ifname} ({len(ln.neighbours)} host"
                           + ("s" if len(ln.neighbours) != 1 else "")
                           + (f", fw {' '.join(ln.fw_addrs)}" if ln.fw_addrs else "") + ")"
                           for ln in pl.links))
    lab += "; fw's own stack " + ("silenced" if scn.fw_silent else "answering")
    v = k.get("versions", {})
    kernel = " / ".join(x for x in (f"Linux {v.get('kernel', '?')}", v.get("conntrack", ""),
                                    v.get("iptables", "")) if x)
    rules = (f"{_count_rules(scn.rules_v4)} (iptables), {_count_rules(scn.rules_v6)} "
             "(ip6tables)")
    asked = sysctl_pairs(opts.sysctls) if pl is not None else dict(scn.sysctls)
    settings = ", ".join(f"{name.rsplit('.', 1)[-1]}={val}"
                         for name, val in asked.items()) or "kernel defaults"
    if pl is not None and opts.speed != 1:
        settings += f" (every timeout divided by {opts.speed:g})"
    info: dict[str, Any] = {"title": str(opts.source), "lab": lab, "kernel": kernel,
                            "rules": rules, "settings": settings,
                            "warnings": list(k.get("warnings", []))}
    if pl is not None:
        d = pl.describe()
        skipped = ", ".join(f"{n} {why}" for why, n in d["skipped"].items())
        info["capture"] = (f"{d['capture_packets']} packets: {d['injected']} injected"
                           + (f" ({d['sent_by_fw']} sent by fw itself)" if d["sent_by_fw"]
                              else "") + (f"; not injected: {skipped}" if skipped else ""))
        info["warnings"] = pl.warnings + info["warnings"]
        info["plan"] = d
        late = lateness(pl, rec, opts.speed)
        timing = f"speed {opts.speed:g}x"
        if late is not None:
            timing += f"; the lab ran at most {late:.3f} s behind the capture's timing"
        info["timing"] = timing
        info["capture_n"] = capture_numbers(pl, rec)
    return info


def capture_numbers(pl: _plan.Plan, rec: Recording) -> list[int] | None:
    """Recorded packet i (0-based) -> its number in the user's capture, when the lab
    recorded exactly the injected packets."""
    if len(rec.packets) != len(pl.packets):
        return None
    return [p.index for p in pl.packets]


def lateness(pl: _plan.Plan, rec: Recording, speed: float) -> float | None:
    if len(rec.packets) != len(pl.packets) or not pl.packets:
        return None
    t0 = pl.packets[0].ts_ns
    r0 = rec.packets[0]["ts_ns"]
    worst = 0.0
    for p, r in zip(pl.packets, rec.packets):
        want = (p.ts_ns - t0) / 1e9 / speed
        got = (r["ts_ns"] - r0) / 1e9
        worst = max(worst, got - want)
    return worst


def kernel_diff(opts: Options, log: Log | None = None, save: Path | None = None) -> Result:
    """Record ``opts.source`` in the lab and compare statewall with it."""
    for name, addrs in opts.fw_ifaces:
        for a in addrs:
            ipaddress.ip_interface(a)  # ValueError for the caller
    scn, pl = scenario_for(opts)
    rec = record(scn, prefix=opts.prefix, log=log)
    if save is not None:
        rec.write(save)
    cmp = compare_recording(rec)
    info = describe(opts, scn, pl, rec)
    numbers = info.pop("capture_n", None)
    if numbers:
        for p, idx in zip(cmp.packets, numbers):
            p.capture_n = idx
    return Result(cmp, rec, info)
