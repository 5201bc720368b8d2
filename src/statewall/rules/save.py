"""Ruleset -> canonical ``iptables-save`` / ``ip6tables-save`` text.

Owns: the byte layout of iptables-save output: ``*table``, ``:CHAIN POLICY [p:b]`` (user
chains ``-``), each rule as ``-A CHAIN`` then ``-s``/``-d`` (masked address, ``/N`` or a
non-contiguous mask), ``-i``/``-o`` (``+`` alone is not printed), ``-p`` (by name when
/etc/protocols has one), ``-f``, every ``-m NAME`` with its options, then ``-j``/``-g``;
``[p:b]`` before ``-A`` with counters; ``COMMIT``. Must not know: parsing. Follows
iptables/xshared.c (``save_ipv4_addr``, ``save_ipv6_addr``, ``save_rule_details``,
``print_match_save``) and iptables/iptables-save.c.

Counters: ``counters=True`` prints rule counters (``iptables-save -c``) and the chains'
policy counters; ``live`` (``Engine.counters()``) replaces the file's counters.
"""

from __future__ import annotations

from . import ext as registry
from .addr import mask_plen, ntop, save_mask
from .model import INV_DSTIP, INV_FRAG, INV_PROTO, INV_SRCIP, INV_VIA_IN, INV_VIA_OUT, \
    IpSpec, Rule, Ruleset, Target
from .netdb import proto_name

Counters = dict[tuple[str, str], tuple[tuple[int, int], list[tuple[int, int]]]]


def _addr(letter: str, a: bytes, m: bytes, inv: bool) -> str:
    neg = " !" if inv else ""
    if len(a) == 4:
        if not any(m) and not inv and not any(a):
            return ""
        return f"{neg} -{letter} {ntop(a)}/{save_mask(m)}"
    n = mask_plen(m)
    if not inv and n == 0:
        return ""
    return f"{neg} -{letter} {ntop(a)}/{n if n >= 0 else ntop(m)}"


def ip_text(ip: IpSpec) -> str:
    s = _addr("s", ip.src, ip.smsk, bool(ip.inv & INV_SRCIP))
    s += _addr("d", ip.dst, ip.dmsk, bool(ip.inv & INV_DSTIP))
    for letter, name, bit in (("i", ip.iniface, INV_VIA_IN), ("o", ip.outiface, INV_VIA_OUT)):
        if name and (name != "+" or ip.inv & bit):
            s += f"{' !' if ip.inv & bit else ''} -{letter} {name}"
    if ip.proto:
        s += f"{' !' if ip.inv & INV_PROTO else ''} -p {proto_name(ip.proto) or ip.proto}"
    if ip.frag:
        s += f"{' !' if ip.inv & INV_FRAG else ''} -f"
    return s


def target_text(t: Target, family: int) -> str:
    if t.kind == "none":
        return ""
    if t.kind == "goto":
        return f" -g {t.name}"
    if t.kind == "ext":
        ext = registry.find_target(t.name, family)
        assert ext is not None
        return f" -j {t.name}" + ext.save(t.info, family)
    return f" -j {t.name}"


def rule_body(rule: Rule, family: int) -> str:
    """Everything after ``-A CHAIN`` (with a leading space unless empty)."""
    s = ip_text(rule.ip)
    for m in rule.matches:
        ext = registry.find_match(m.name, family)
        assert ext is not None
        s += f" -m {m.name}" + ext.save(m.info, family)
    return s + target_text(rule.target, family)


def rule_text(rule: Rule, chain: str, family: int) -> str:
    return f"-A {chain}{rule_body(rule, family)}"


def save(ruleset: Ruleset, counters: bool = False, live: Counters | None = None,
         tables: tuple[str, ...] | None = None, header: str | None = None) -> str:
    fam = ruleset.family
    out: list[str] = []
    for table in ruleset.tables:
        if tables is not None and table.name not in tables:
            continue
        if header is not None:
            out.append(f"# {header}")
        out.append(f"*{table.name}")
        rule_ctrs: dict[str, list[tuple[int, int]]] = {}
        for chain in table.chains:
            lc = live.get((table.name, chain.name)) if live is not None else None
            if chain.policy is not None:
                pc = lc[0] if lc is not None else chain.counters
                if not counters:
                    pc = (0, 0)
                out.append(f":{chain.name} {chain.policy} [{pc[0]}:{pc[1]}]")
            else:
                out.append(f":{chain.name} - [0:0]")
            rule_ctrs[chain.name] = lc[1] if lc is not None else [r.counters for r in chain.rules]
        for chain in table.chains:
            for k, rule in enumerate(chain.rules):
                line = rule_text(rule, chain.name, fam)
                if counters:
                    p, b = rule_ctrs[chain.name][k]
                    line = f"[{p}:{b}] {line}"
                out.append(line)
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def save_ruleset(ruleset: Ruleset, counters: Counters | bool | None = None,
                 family: int | None = None, header: str | None = None) -> str:
    """``save`` for front ends: ``counters`` is either a flag (print the file's counters)
    or ``Engine.counters()`` (print the live ones); ``family`` is accepted and must match."""
    if family is not None and family != ruleset.family:
        raise ValueError(f"rule set is IPv{ruleset.family}, not IPv{family}")
    if isinstance(counters, dict):
        return save(ruleset, counters=True, live=counters, header=header)
    return save(ruleset, counters=bool(counters), header=header)
