"""``iptables -L`` / ``-S`` text for any mix of -v -n -x --line-numbers (iptables 1.8.9).

Owns: the listing layout of iptables/xshared.c (``print_header``, ``print_rule_details``,
``print_fragment``, ``print_ifaces``, ``print_ipv4_addresses``, ``xtables_print_num``: counters
abbreviated to K/M/G/T without -x, the in/out columns only with -v, protocol names and
``anywhere`` without -n) and of ``-S`` (``-P``/``-N``/``-A`` lines, ``-c P B`` before the
target with -v). Must not know: where the rule set or the counters come from.

Without -n: protocol, port (/etc/services), ICMP type, TCP flag, TOS and LOG level names,
and address names from /etc/hosts and /etc/networks, as iptables prints them
(``Fmt.names``: ctl/iptables_names.py); never DNS (none on a firewall's control path): an address the files
do not name prints as a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING, Any

from . import ext as registry
from .addr import ntop, numeric_mask_suffix
from .model import INV_DSTIP, INV_FRAG, INV_PROTO, INV_SRCIP, INV_VIA_IN, INV_VIA_OUT, \
    Chain, Rule, Ruleset, Table
from .netdb import proto_name
from .save import ip_text, target_text

if TYPE_CHECKING:
    from .engine import Engine

Counters = dict[tuple[str, str], tuple[tuple[int, int], list[tuple[int, int]]]]


@dataclass(frozen=True)
class Fmt:
    verbose: bool = False
    numeric: bool = False
    exact: bool = False
    linenumbers: bool = False
    # without -n: where names come from (``address``, ``match``, ``target``; the control
    # plane gives ctl/iptables_names, which reads /etc/hosts, /etc/services...); None:
    # numbers only, as with -n
    names: Any = None


def num(n: int, exact: bool, table: bool = True) -> str:
    """``xtables_print_num``."""
    if exact:
        return f"{n:>8} " if table else f"{n} "
    if n <= 99999:
        return f"{n:>5} " if table else f"{n} "
    for suffix in "KMGT":
        n = (n + 500) // 1000
        if n <= 9999 or suffix == "T":
            return f"{n:>4}{suffix} " if table else f"{n}{suffix} "
    raise AssertionError("unreachable")


def header(chain: Chain, refs: int, pc: tuple[int, int], fmt: Fmt) -> str:
    s = f"Chain {chain.name}"
    if chain.policy is not None:
        s += f" (policy {chain.policy}"
        if fmt.verbose:
            s += " " + num(pc[0], fmt.exact, False) + "packets, " + \
                num(pc[1], fmt.exact, False) + "bytes"
        s += ")"
    else:
        s += f" ({refs} references)"
    return s


def columns(fmt: Fmt) -> str:
    s = f"{'num':<4} " if fmt.linenumbers else ""
    if fmt.verbose:
        s += f"{'pkts':>8} {'bytes':>10} " if fmt.exact else f"{'pkts':>5} {'bytes':>5} "
    s += f"{'target':<9} " + " prot " + "opt"
    if fmt.verbose:
        s += f" {'in':<6} " + f"{'out':<6} "
    s += f" {'source':<19} " + f" {'destination':<19} "
    return s


def _addr(a: bytes, m: bytes, fmt: Fmt) -> str:
    # print_ipv4_addresses: "anywhere" for a /0 mask; print_ipv6_addresses: for ::
    if not fmt.numeric and (not any(m) if len(a) == 4 else not any(a)):
        return "anywhere"
    if not any(m):
        return ntop(a) + "/0"
    name = None if fmt.numeric or fmt.names is None else fmt.names.address(a)
    return (name or ntop(a)) + numeric_mask_suffix(m)


def rule_line(rule: Rule, ctr: tuple[int, int], family: int, n: int, fmt: Fmt) -> str:
    ip, t = rule.ip, rule.target
    s = f"{n:<4} " if fmt.linenumbers else ""
    if fmt.verbose:
        s += num(ctr[0], fmt.exact) + num(ctr[1], fmt.exact)
    target = "" if t.kind == "none" else t.name
    if t.kind == "ext":
        text = registry.find_target(t.name, family)
        assert text is not None
        target = text.list_name or t.name
    s += f"{target:<9} "
    s += "!" if ip.inv & INV_PROTO else " "
    pname = None if fmt.numeric else ("all" if ip.proto == 0 else proto_name(ip.proto))
    s += f"{pname or ip.proto:<4} "
    s += ("!" if ip.inv & INV_FRAG else "-") + ("f" if ip.frag else "-") + " "
    if fmt.verbose:
        anyif = "*" if fmt.numeric else "any"
        iin = ("!" if ip.inv & INV_VIA_IN else "") + (ip.iniface or anyif)
        iout = ("!" if ip.inv & INV_VIA_OUT else "") + (ip.outiface or anyif)
        s += f" {iin:<6} " + f"{iout:<6} "
    s += ("!" if ip.inv & INV_SRCIP else " ") + f"{_addr(ip.src, ip.smsk, fmt):<19} "
    s += ("!" if ip.inv & INV_DSTIP else " ") + f"{_addr(ip.dst, ip.dmsk, fmt):<19} "
    if t.kind == "goto":
        s += "[goto] "
    for m in rule.matches:
        mext = registry.find_match(m.name, family)
        assert mext is not None
        shown = mext.show(m.info, family)
        s += shown if fmt.numeric or fmt.names is None else \
            fmt.names.match(m.name, m.info, shown, ip.proto)
    if t.kind == "ext":
        text = registry.find_target(t.name, family)
        assert text is not None
        shown = text.show(t.info, family)
        s += shown if fmt.numeric or fmt.names is None else \
            fmt.names.target(t.name, t.info, shown)
    return s


def refs(table: Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in table.chains:
        for r in c.rules:
            if r.target.kind in ("jump", "goto"):
                out[r.target.name] = out.get(r.target.name, 0) + 1
    return out


def _live(table: Table, chain: Chain, counters: Counters
          ) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    got = counters.get((table.name, chain.name))
    if got is None or len(got[1]) != len(chain.rules):
        return chain.counters, [r.counters for r in chain.rules]
    return got


def list_table(table: Table, family: int, counters: Counters | None = None,
               fmt: Fmt | None = None, chain: str | None = None, rulenum: int = 0,
               line_numbers: bool = False) -> str:
    """``iptables -t T -L [CHAIN [RULENUM]]``: chains separated by blank lines; with a
    rule number only that rule's line (no header), as iptables prints it. Without ``fmt``:
    ``-n -v -x`` (``--line-numbers`` with ``line_numbers``); without ``counters``: the rule
    set's own."""
    if fmt is None:
        fmt = Fmt(verbose=True, numeric=True, exact=True, linenumbers=line_numbers)
    if counters is None:
        counters = {}
    rc = refs(table)
    out: list[str] = []
    for c in table.chains:
        if chain is not None and c.name != chain:
            continue
        pc, rcs = _live(table, c, counters)
        if rulenum:
            if rulenum <= len(c.rules):
                out.append(rule_line(c.rules[rulenum - 1], rcs[rulenum - 1], family,
                                     rulenum, fmt) + "\n")
            continue
        text = header(c, rc.get(c.name, 0), pc, fmt) + "\n" + columns(fmt) + "\n"
        for n, r in enumerate(c.rules, 1):
            text += rule_line(r, rcs[n - 1], family, n, fmt) + "\n"
        out.append(text)
    return "\n".join(out)


def rule_spec(rule: Rule, chain: str, family: int, ctr: tuple[int, int] | None) -> str:
    """``-A CHAIN ...`` with ``-c P B`` before the target (``iptables -S -v``)."""
    s = f"-A {chain}" + ip_text(rule.ip)
    for m in rule.matches:
        mext = registry.find_match(m.name, family)
        assert mext is not None
        s += f" -m {m.name}" + mext.save(m.info, family)
    if ctr is not None:
        s += f" -c {ctr[0]} {ctr[1]}"
    return s + target_text(rule.target, family)


def list_rules(table: Table, family: int, counters: Counters, verbose: bool,
               chain: str | None = None, rulenum: int = 0) -> str:
    """``iptables -t T -S [CHAIN [RULENUM]]``."""
    out: list[str] = []
    chains = [c for c in table.chains if chain is None or c.name == chain]
    if rulenum:
        for c in chains:
            _, rcs = _live(table, c, counters)
            if rulenum <= len(c.rules):
                out.append(rule_spec(c.rules[rulenum - 1], c.name, family,
                                     rcs[rulenum - 1] if verbose else None))
        return "".join(x + "\n" for x in out)
    for c in chains:
        pc, _ = _live(table, c, counters)
        if c.policy is not None:
            out.append(f"-P {c.name} {c.policy}" + (f" -c {pc[0]} {pc[1]}" if verbose else ""))
        else:
            out.append(f"-N {c.name}")
    for c in chains:
        _, rcs = _live(table, c, counters)
        for k, r in enumerate(c.rules):
            out.append(rule_spec(r, c.name, family, rcs[k] if verbose else None))
    return "".join(x + "\n" for x in out)


def list_ruleset(rs: Ruleset, counters: Counters | None = None,
                 line_numbers: bool = False, tables: tuple[str, ...] | None = None) -> str:
    """Every table as ``iptables -t T -L -n -v -x`` prints it, each preceded by that
    command (``statewall rules list``, ``replay --list-rules``)."""
    tool = "iptables" if rs.family == 4 else "ip6tables"
    parts = []
    for t in rs.tables:
        if tables is not None and t.name not in tables:
            continue
        cmd = f"# {tool} -t {t.name} -L -n -v -x" + (" --line-numbers" if line_numbers else "")
        parts.append(cmd + "\n" + list_table(t, rs.family, counters, line_numbers=line_numbers))
    return "\n".join(parts)


def list_all(engine: Engine, family: int | None = None, line_numbers: bool = False) -> str:
    """The engine's rule set with its live counters (``family`` is accepted for callers
    that pass it; the engine's own family is used)."""
    return list_ruleset(engine.ruleset, engine.counters(), line_numbers)
