"""``iptables -L -n -v -x [--line-numbers]`` text (and ip6tables), with live counters.

Owns: the column layout of iptables' listing (``print_header``, ``print_rule_details``,
``print_fragment``, ``print_ifaces``, ``print_ipv4_addresses`` in iptables/xshared.c, as
iptables 1.8.9 prints them with -n -v -x: counters right-aligned in 8 columns, the
protocol as a number, ``[goto]``, then each match's and the target's listing text).
Must not know: parsing, evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ext as registry
from .addr import ntop, numeric_mask_suffix
from .model import INV_DSTIP, INV_FRAG, INV_PROTO, INV_SRCIP, INV_VIA_IN, INV_VIA_OUT, \
    Rule, Ruleset, Table

if TYPE_CHECKING:
    from .engine import Engine

Counters = dict[tuple[str, str], tuple[tuple[int, int], list[tuple[int, int]]]]


def _addr(a: bytes, m: bytes) -> str:
    return ntop(a) + numeric_mask_suffix(m) if any(m) else ntop(a) + "/0"


def _header(line_numbers: bool) -> str:
    s = "num  " if line_numbers else ""
    s += f"{'pkts':>8} {'bytes':>10} "
    s += f"{'target':<9}  prot opt {'in':<6} {'out':<6}  {'source':<19}  {'destination':<19} "
    return s


def rule_line(rule: Rule, counters: tuple[int, int], family: int, num: int | None) -> str:
    ip = rule.ip
    t = rule.target
    s = f"{num:<4} " if num is not None else ""
    s += f"{counters[0]:>8} {counters[1]:>8} "
    target = "" if t.kind == "none" else t.name
    if t.kind == "ext":
        text_ = registry.find_target(t.name, family)
        assert text_ is not None
        target = text_.list_name or t.name
    s += f"{target:<9} "
    s += "!" if ip.inv & INV_PROTO else " "
    s += f"{ip.proto:<4} "
    if ip.frag:
        s += ("!" if ip.inv & INV_FRAG else "-") + "f "
    else:
        s += "-- "
    iin = ("!" if ip.inv & INV_VIA_IN else "") + (ip.iniface or "*")
    iout = ("!" if ip.inv & INV_VIA_OUT else "") + (ip.outiface or "*")
    s += f" {iin:<6} {iout:<6} "
    s += ("!" if ip.inv & INV_SRCIP else " ") + f"{_addr(ip.src, ip.smsk):<19} "
    s += ("!" if ip.inv & INV_DSTIP else " ") + f"{_addr(ip.dst, ip.dmsk):<19} "
    if t.kind == "goto":
        s += "[goto] "
    for m in rule.matches:
        mext = registry.find_match(m.name, family)
        assert mext is not None
        s += mext.show(m.info, family)
    if t.kind == "ext":
        text = registry.find_target(t.name, family)
        assert text is not None
        s += text.show(t.info, family)
    return s


def list_table(table: Table, family: int, counters: Counters | None = None,
               line_numbers: bool = False) -> str:
    """One table as ``iptables -t TABLE -L -n -v -x [--line-numbers]`` prints it."""
    refs: dict[str, int] = {}
    for c in table.chains:
        for r in c.rules:
            if r.target.kind in ("jump", "goto"):
                refs[r.target.name] = refs.get(r.target.name, 0) + 1
    out: list[str] = []
    for k, c in enumerate(table.chains):
        if k:
            out.append("")
        live = counters.get((table.name, c.name)) if counters is not None else None
        if c.policy is not None:
            pc = live[0] if live is not None else c.counters
            out.append(f"Chain {c.name} (policy {c.policy} {pc[0]} packets, {pc[1]} bytes)")
        else:
            out.append(f"Chain {c.name} ({refs.get(c.name, 0)} references)")
        out.append(_header(line_numbers))
        rc = live[1] if live is not None else [r.counters for r in c.rules]
        for n, r in enumerate(c.rules, 1):
            out.append(rule_line(r, rc[n - 1], family, n if line_numbers else None))
    return "\n".join(out) + "\n"


def list_ruleset(rs: Ruleset, counters: Counters | None = None,
                 line_numbers: bool = False, tables: tuple[str, ...] | None = None) -> str:
    """Every table, each preceded by the command that would print it."""
    tool = "iptables" if rs.family == 4 else "ip6tables"
    parts = []
    for t in rs.tables:
        if tables is not None and t.name not in tables:
            continue
        cmd = f"# {tool} -t {t.name} -L -n -v -x" + (" --line-numbers" if line_numbers else "")
        parts.append(cmd + "\n" + list_table(t, rs.family, counters, line_numbers))
    return "\n".join(parts)


def list_all(engine: Engine, family: int | None = None, line_numbers: bool = False) -> str:
    """The engine's rule set with its live counters (``family`` is accepted for callers
    that pass it; the engine's own family is used)."""
    return list_ruleset(engine.ruleset, engine.counters(), line_numbers)
