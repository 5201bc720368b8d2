"""Ruleset -> compiled tables: each rule a tuple of small predicates plus a target code.

Owns: turning the generic part of a rule (``ip_packet_match`` / ``ip6_packet_match``:
addresses under masks, interface names with ``+`` wildcards, protocol, ``-f``) into the
fewest closures that read packet fields directly, asking each extension to compile its
matches and target, and laying chains out as lists indexed by number with jumps resolved
to chain indexes. Must not know: how the lists are walked (``engine.py``).

A compiled rule is the tuple ``(test, kind, arg, counter_index)``: ``test`` is None (the
rule matches every packet) or one callable (the rule's predicates chained with ``and``,
so a rule costs one call); kind K_NONE (no target: continue), K_VERDICT (arg:
NF_ACCEPT/NF_DROP/NF_QUEUE), K_RETURN, K_JUMP / K_GOTO (arg: chain index), K_TARGET (arg:
the target function).
"""

from __future__ import annotations

from array import array
from typing import Any, Final

from . import ext as registry
from .ext.base import Env, Pred, TargetFn
from .numbers import U64
from .native import (OP_ADDR, OP_IFACE, OP_PROTO, OP_VOLATILE, mark, program)
from .model import (INV_DSTIP, INV_FRAG, INV_PROTO, INV_SRCIP, INV_VIA_IN, INV_VIA_OUT,
                    TABLE_CHAINS, IpSpec, Rule, Ruleset, Table)
from .result import NF_ACCEPT, NF_DROP, NF_QUEUE
from .save import rule_text

K_NONE: Final = 0
K_VERDICT: Final = 1
K_RETURN: Final = 2
K_JUMP: Final = 3
K_GOTO: Final = 4
K_TARGET: Final = 5

_VERDICT_CODES: Final = {"ACCEPT": NF_ACCEPT, "DROP": NF_DROP, "QUEUE": NF_QUEUE}

CompiledRule = tuple[Pred | None, int, Any, int]
Counters = memoryview


def counters(values: list[int]) -> Counters:
    """Packet or byte counters as the kernel keeps them (u64; a larger restored value is
    saturated, as iptables-restore's strtoull does): a memoryview of an array of "Q", so
    Python indexes it like a list and the C accelerator adds in place."""
    return memoryview(array("Q", [min(max(v, 0), U64) for v in values]))


class CompiledTable:
    """One table: ``chains[i]`` compiled rules, ``names[i]`` chain names, ``entry`` hook ->
    chain index, ``policy[i]`` the built-in chain's verdict (None for user chains),
    ``texts[k]`` / ``rulenums[k]`` / ``chain_of[k]`` per counter index, and the counters."""

    __slots__ = ("name", "chains", "names", "entry", "policy", "texts", "rulenums",
                 "chain_of", "sources", "policy_sources", "pkts", "bytes", "ppkts", "pbytes",
                 "steps", "progs")

    def __init__(self, name: str) -> None:
        self.name = name
        self.chains: list[list[CompiledRule]] = []
        self.names: list[str] = []
        self.entry: dict[str, int] = {}
        self.policy: list[int | None] = []
        self.texts: list[str] = []
        self.rulenums: list[int] = []
        self.chain_of: list[int] = []
        self.sources: list[str] = []           # "filter/FORWARD#3" per counter index
        self.policy_sources: list[str] = []    # "filter/FORWARD policy" per chain
        # counters: u64 in arrays (C bumps them in place), indexed by counter / chain index
        self.pkts: Counters = counters([])
        self.bytes: Counters = counters([])
        self.ppkts: Counters = counters([])
        self.pbytes: Counters = counters([])
        # the flow cache's counter bumps, made once (flowcache.steps): hit -> step
        self.steps: dict[int, tuple[Counters, Counters, int]] = {}
        # per chain, per rule: its predicates as native specs (rules/native.py), for the C walk
        self.progs: list[list[tuple[tuple[Any, ...], ...]]] = []


def compile_ruleset(rs: Ruleset, shared: dict[str, Any]) -> dict[str, CompiledTable]:
    out: dict[str, CompiledTable] = {}
    for table in rs.tables:
        out[table.name] = compile_table(table, rs.family, shared, rs.sets)
    return out


def compile_table(table: Table, family: int, shared: dict[str, Any],
                  sets: Any = None) -> CompiledTable:
    ct = CompiledTable(table.name)
    index = {c.name: k for k, c in enumerate(table.chains)}
    env = Env(family, shared, sets)
    env.table = table.name
    pkts: list[int] = []
    nbytes: list[int] = []
    for c in table.chains:
        ct.names.append(c.name)
        ct.policy.append(_VERDICT_CODES[c.policy] if c.policy is not None else None)
        ct.policy_sources.append(f"{table.name}/{c.name} policy")
        if c.policy is not None and c.name in TABLE_CHAINS[table.name]:
            ct.entry[c.name] = index[c.name]
    for ci, c in enumerate(table.chains):
        rules: list[CompiledRule] = []
        progs: list[tuple[tuple[Any, ...], ...]] = []
        env.chain = c.name
        for n, rule in enumerate(c.rules, 1):
            env.rulenum = n
            k = len(ct.texts)
            ct.texts.append(rule_text(rule, c.name, family))
            ct.rulenums.append(n)
            ct.chain_of.append(ci)
            ct.sources.append(f"{table.name}/{c.name}#{n}")
            pkts.append(rule.counters[0])
            nbytes.append(rule.counters[1])
            preds: list[Pred] = []
            rules.append(compile_rule(rule, family, env, index, k, preds))
            progs.append(program(preds))
        ct.chains.append(rules)
        ct.progs.append(progs)
    ct.pkts, ct.bytes = counters(pkts), counters(nbytes)
    ct.ppkts = counters([c.counters[0] for c in table.chains])
    ct.pbytes = counters([c.counters[1] for c in table.chains])
    return ct


def _volatile(p: Any, c: Any) -> bool:
    """First predicate of a rule whose answer may change within a flow (flowcache.py)."""
    c.volatile = True
    return True


mark(_volatile, OP_VOLATILE)


def _volatile_target(fn: TargetFn) -> TargetFn:
    def target(p: Any, c: Any, r: Any) -> int:
        c.volatile = True                       # a target ran: never replayed from cache
        return fn(p, c, r)
    return target


def compile_rule(rule: Rule, family: int, env: Env, index: dict[str, int],
                 k: int, preds_out: list[Pred] | None = None) -> CompiledRule:
    """One rule; ``preds_out`` receives its predicates in test order."""
    preds = ip_preds(rule.ip, family)
    stable = True
    for m in rule.matches:
        mext = registry.find_match(m.name, family)
        assert mext is not None
        preds.append(mext.compile(m.info, env))
        stable = stable and mext.flow_stable(m.info)
    if not stable:
        preds.insert(0, _volatile)
    if preds_out is not None:
        preds_out.extend(preds)
    t = rule.target
    kind: int
    arg: Any = None
    if t.kind == "none":
        kind = K_NONE
    elif t.kind == "verdict":
        if t.name == "RETURN":
            kind = K_RETURN
        else:
            kind, arg = K_VERDICT, _VERDICT_CODES[t.name]
    elif t.kind in ("jump", "goto"):
        kind, arg = (K_JUMP if t.kind == "jump" else K_GOTO), index[t.name]
    else:
        text = registry.find_target(t.name, family)
        assert text is not None
        fn: TargetFn = text.compile(t.info, env)
        kind, arg = K_TARGET, _volatile_target(fn)
    return chain_preds(preds), kind, arg, k


def chain_preds(preds: list[Pred]) -> Pred | None:
    """One callable testing every predicate in order, stopping at the first false."""
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds

        def test2(p: Any, c: Any) -> bool:
            return a(p, c) and b(p, c)
        return test2
    if len(preds) == 3:
        a, b, d = preds

        def test3(p: Any, c: Any) -> bool:
            return a(p, c) and b(p, c) and d(p, c)
        return test3
    allp = tuple(preds)

    def testn(p: Any, c: Any) -> bool:
        for f in allp:
            if not f(p, c):
                return False
        return True
    return testn


# ----------------------------------------------------------------------- generic part
def _addr_pred(addr: bytes, mask: bytes, inv: bool, src: bool) -> Pred | None:
    if not any(mask) and not inv:
        return None
    return mark(_addr_fn(addr, mask, inv, src), OP_ADDR, not src, *_addr_spec(addr, mask), inv)


def _addr_spec(addr: bytes, mask: bytes) -> tuple[bytes, bytes]:
    """(want, mask) for OP_ADDR, exactly as _addr_fn compares: a whole-byte prefix looks at
    its bytes only, any other mask compares the masked address with ``addr`` as given."""
    plen = 0
    while plen < len(mask) and mask[plen] == 0xFF:
        plen += 1
    if all(b == 0 for b in mask[plen:]):
        zeros = bytes(len(mask) - plen)
        return addr[:plen] + zeros, mask[:plen] + zeros
    return addr, mask


def _addr_fn(addr: bytes, mask: bytes, inv: bool, src: bool) -> Pred:
    full = b"\xff" * len(mask)
    nbytes = len(mask)
    plen = 0
    while plen < nbytes and mask[plen] == 0xFF:
        plen += 1
    whole = all(b == 0 for b in mask[plen:])
    if mask == full:
        if src:
            return (lambda p, c: p.src != addr) if inv else (lambda p, c: p.src == addr)
        return (lambda p, c: p.dst != addr) if inv else (lambda p, c: p.dst == addr)
    if whole:
        prefix = addr[:plen]
        if src:
            return (lambda p, c: p.src[:plen] != prefix) if inv else \
                (lambda p, c: p.src[:plen] == prefix)
        return (lambda p, c: p.dst[:plen] != prefix) if inv else \
            (lambda p, c: p.dst[:plen] == prefix)
    m = int.from_bytes(mask, "big")
    a = int.from_bytes(addr, "big")
    if src:
        return lambda p, c: ((int.from_bytes(p.src, "big") & m) == a) != inv
    return lambda p, c: ((int.from_bytes(p.dst, "big") & m) == a) != inv


def _iface_pred(name: str, inv: bool, incoming: bool) -> Pred | None:
    if not name or (name == "+" and not inv):
        return None
    wild = name.endswith("+")
    return mark(_iface_fn(name, inv, incoming), OP_IFACE, not incoming,
                name[:-1] if wild else name, wild, inv)


def _iface_fn(name: str, inv: bool, incoming: bool) -> Pred:
    if name.endswith("+"):
        stem = name[:-1]
        if incoming:
            return lambda p, c: (c.in_iface or "").startswith(stem) != inv
        return lambda p, c: (c.out_iface or "").startswith(stem) != inv
    if incoming:
        return lambda p, c: ((c.in_iface or "") == name) != inv
    return lambda p, c: ((c.out_iface or "") == name) != inv


def ip_preds(ip: IpSpec, family: int) -> list[Pred]:
    preds: list[Pred | None] = [
        _addr_pred(ip.src, ip.smsk, bool(ip.inv & INV_SRCIP), True),
        _addr_pred(ip.dst, ip.dmsk, bool(ip.inv & INV_DSTIP), False),
        _iface_pred(ip.iniface, bool(ip.inv & INV_VIA_IN), True),
        _iface_pred(ip.outiface, bool(ip.inv & INV_VIA_OUT), False),
    ]
    proto, pinv = ip.proto, bool(ip.inv & INV_PROTO)
    if proto:
        preds.append(mark((lambda p, c: p.proto != proto) if pinv else
                          (lambda p, c: p.proto == proto), OP_PROTO, proto, pinv))
    if ip.frag and family == 4:
        finv = bool(ip.inv & INV_FRAG)
        # "-f": non-first fragments only; "! -f": unfragmented and first fragments
        preds.append((lambda p, c: p.fragoff == 0) if finv else (lambda p, c: p.fragoff != 0))
    return [p for p in preds if p is not None]

