"""Evaluation: one packet through one table at one hook (``ipt_do_table``), sans-I/O.

Owns: walking compiled chains (jump pushes a return point, goto does not, RETURN and the
end of a user chain pop, the end of a built-in chain or a RETURN with nothing to pop runs
the policy), rule and policy counters, hot-drops, TRACE lines (``rule``/``return``/
``policy`` with the kernel's rule numbers), the "why" list, and the state stateful
matches share (hashlimit/recent tables by name). Must not know: which hooks a packet
visits or in what order (the caller), how emitted records become packets or log lines.
Follows net/ipv4/netfilter/ip_tables.c ``ipt_do_table`` / ``trace_packet``.

    engine = Engine(ruleset)                     # compiled once
    res = engine.run("filter", "FORWARD", pkt, ctx)
    res.verdict, res.source, res.emitted, res.nat, res.ct_template
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .compile import (K_GOTO, K_JUMP, K_RETURN, K_TARGET, K_VERDICT, CompiledTable,
                      compile_ruleset)
from .numbers import U64
from .ext.base import HotDrop
from .model import Ruleset
from .result import XT_CONTINUE, XT_RETURN, RunResult, TraceRecord, Verdict

if TYPE_CHECKING:
    from ..packet.packet import Packet
    from .context import Context

__all__ = ["Engine", "RunResult", "Verdict"]

_VERDICTS: Final = (Verdict.DROP, Verdict.ACCEPT, Verdict.STOLEN, Verdict.QUEUE)


class Engine:
    """A compiled rule set with its live counters and match state."""

    __slots__ = ("ruleset", "family", "tables", "shared", "_fixed")

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.family = ruleset.family
        self.shared: dict[str, Any] = {}
        self.tables: dict[str, CompiledTable] = compile_ruleset(ruleset, self.shared)
        # results that never change, shared by every call (callers only read results):
        # a table/hook without a chain, and an empty built-in chain's policy
        self._fixed: dict[tuple[str, str], RunResult] = {}
        for tname in ("raw", "mangle", "nat", "filter", "security"):
            tab = self.tables.get(tname)
            for hook in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"):
                cix = tab.entry.get(hook) if tab is not None else None
                if tab is None or cix is None:
                    r = RunResult()
                    r.source = f"{tname}/{hook}: no such chain"
                    self._fixed[(tname, hook)] = r
                elif not tab.chains[cix]:
                    r = RunResult()
                    v = tab.policy[cix]
                    assert v is not None
                    r.verdict = _VERDICTS[v]
                    r.source = tab.policy_sources[cix]
                    self._fixed[(tname, hook)] = r

    def has_chain(self, table: str, hook: str) -> bool:
        """Is there a built-in chain for ``hook`` in ``table`` (a table the rule set loads)?"""
        t = self.tables.get(table)
        return t is not None and hook in t.entry

    def run(self, table: str, hook: str, pkt: Packet, ctx: Context,
            trace: bool = False) -> RunResult:
        fixed = self._fixed.get((table, hook))
        if fixed is not None and not ctx.nf_trace:
            if fixed.source.endswith(" policy"):       # an empty chain: count the underflow
                et = self.tables[table]
                eci = et.entry[hook]
                et.ppkts[eci] = (et.ppkts[eci] + 1) & U64
                et.pbytes[eci] = (et.pbytes[eci] + len(pkt.buf)) & U64
            return fixed
        res = RunResult()
        t = self.tables.get(table)
        ci = t.entry.get(hook) if t is not None else None
        if t is None or ci is None:
            res.source = f"{table}/{hook}: no such chain"
            return res
        ctx.hook = hook
        chains = t.chains
        pkts = t.pkts
        nbytes = t.bytes
        length = len(pkt.buf)
        stack: list[tuple[int, int]] | None = None
        i = 0
        try:
            while True:
                rules = chains[ci]
                n = len(rules)
                while i < n:
                    test, kind, arg, k = rules[i]
                    if test is None or test(pkt, ctx):
                        pkts[k] = (pkts[k] + 1) & U64          # u64, as the kernel
                        nbytes[k] = (nbytes[k] + length) & U64
                        if ctx.nf_trace:
                            res.emitted.append(TraceRecord(t.name, t.names[ci], "rule", i + 1))
                        if trace:
                            res.matched.append((t.name, t.names[ci], i + 1, t.texts[k]))
                        if kind == K_VERDICT:
                            res.verdict = _VERDICTS[arg]
                            res.source = t.sources[k]
                            return res
                        if kind == K_TARGET:
                            v = arg(pkt, ctx, res)
                            if v != XT_CONTINUE:
                                if v != XT_RETURN:
                                    res.verdict = _VERDICTS[v]
                                    res.source = t.sources[k]
                                    return res
                                kind = K_RETURN
                        if kind == K_JUMP:
                            if stack is None:
                                stack = []
                            stack.append((ci, i + 1))
                            ci, i = arg, 0
                            break
                        if kind == K_GOTO:
                            ci, i = arg, 0
                            break
                        if kind == K_RETURN:
                            if not stack:
                                self._policy(t, t.entry[hook], ctx, res, length)
                                return res
                            ci, i = stack.pop()
                            break
                    i += 1
                else:
                    # fell off the end of the chain
                    if not stack:
                        if t.policy[ci] is None and ctx.nf_trace:
                            res.emitted.append(TraceRecord(t.name, t.names[ci], "return",
                                                           n + 1))
                        self._policy(t, t.entry[hook], ctx, res, length)
                        return res
                    if ctx.nf_trace:
                        res.emitted.append(TraceRecord(t.name, t.names[ci], "return", n + 1))
                    ci, i = stack.pop()
        except HotDrop as e:
            ctx.volatile = True                  # a damaged packet: not the flow's answer
            res.verdict = Verdict.DROP
            res.source = f"{table}/{hook}: hot-drop ({e})"
            return res

    def walk(self, table: str, hook: str, pkt: Packet, ctx: Context
             ) -> tuple[Verdict, str, list[int]] | None:
        """The traversal ``run`` would make, without its effects: no counter moves, no
        target runs. Returns (verdict, source, hits: the counter indexes ``run`` would bump,
        ~chain for a policy), or None as soon as the answer could differ for the flow's
        next packet (a rule that is not flow-stable was looked at, a target would run, a
        hot-drop): the flow cache's recording (flowcache.py) then takes the full path,
        which starts over and counts."""
        t = self.tables.get(table)
        ci = t.entry.get(hook) if t is not None else None
        if t is None or ci is None:
            return Verdict.ACCEPT, f"{table}/{hook}: no such chain", []
        ctx.hook = hook
        ctx.volatile = False
        chains = t.chains
        hits: list[int] = []
        stack: list[tuple[int, int]] = []
        i = 0
        try:
            while True:
                rules = chains[ci]
                n = len(rules)
                to_policy = False
                while i < n:
                    test, kind, arg, k = rules[i]
                    matched = test is None or test(pkt, ctx)
                    if ctx.volatile:
                        return None
                    if matched:
                        hits.append(k)
                        if kind == K_VERDICT:
                            return _VERDICTS[arg], t.sources[k], hits
                        if kind == K_TARGET:
                            return None
                        if kind == K_JUMP:
                            stack.append((ci, i + 1))
                            ci, i = arg, 0
                            break
                        if kind == K_GOTO:
                            ci, i = arg, 0
                            break
                        if kind == K_RETURN:
                            if stack:
                                ci, i = stack.pop()
                            else:
                                to_policy = True
                            break
                    i += 1
                else:
                    if stack:
                        ci, i = stack.pop()
                    else:
                        to_policy = True
                if to_policy:
                    eci = t.entry[hook]
                    hits.append(~eci)
                    v = t.policy[eci]
                    assert v is not None
                    return _VERDICTS[v], t.policy_sources[eci], hits
        except HotDrop:
            return None

    @staticmethod
    def _policy(t: CompiledTable, ci: int, ctx: Context, res: RunResult, length: int) -> None:
        """The built-in chain's underflow: count it, trace it, apply the policy."""
        t.ppkts[ci] = (t.ppkts[ci] + 1) & U64
        t.pbytes[ci] = (t.pbytes[ci] + length) & U64
        if ctx.nf_trace:
            res.emitted.append(TraceRecord(t.name, t.names[ci], "policy",
                                           len(t.chains[ci]) + 1))
        v = t.policy[ci]
        assert v is not None
        res.verdict = _VERDICTS[v]
        res.source = t.policy_sources[ci]

    # -- counters ----------------------------------------------------------------------
    def counters(self) -> dict[tuple[str, str], tuple[tuple[int, int], list[tuple[int, int]]]]:
        """(table, chain) -> ((policy packets, bytes), [(packets, bytes) per rule])."""
        out: dict[tuple[str, str], tuple[tuple[int, int], list[tuple[int, int]]]] = {}
        for tname, t in self.tables.items():
            per: list[list[tuple[int, int]]] = [[] for _ in t.names]
            for k, ci in enumerate(t.chain_of):
                per[ci].append((t.pkts[k], t.bytes[k]))
            for ci, name in enumerate(t.names):
                out[(tname, name)] = ((t.ppkts[ci], t.pbytes[ci]), per[ci])
        return out

    def zero(self) -> None:
        for t in self.tables.values():
            for lst in (t.pkts, t.bytes, t.ppkts, t.pbytes):
                for k in range(len(lst)):
                    lst[k] = 0


# -- the C accelerator (statewall/_chains.c) -------------------------------------------------
walk_py: Final = Engine.walk      # the references the C versions must equal
run_py: Final = Engine.run


def _accelerate() -> bool:
    """Install the C ``walk`` and ``run`` (``_chains.c``: native specs of rules/native.py
    tested in C, every other predicate called). False: they stay pure Python."""
    from ..accel import install

    def bind() -> dict[str, Any]:
        from .. import _speedups
        from ..conntrack import conn as ctconn
        from ..packet.packet import Packet
        from . import compile as comp
        from . import native, result
        from .context import Context
        from .ext import conntrack as ctmatch
        consts = {**native.OPS,
                  **{k: getattr(comp, k) for k in ("K_NONE", "K_VERDICT", "K_RETURN", "K_JUMP",
                                                     "K_GOTO", "K_TARGET")},
                  **{k: getattr(ctmatch, k) for k in ("ST_SNAT", "ST_DNAT", "ST_UNTRACKED",
                                                      "ST_INVALID")},
                  "IP_CT_UNTRACKED": ctconn.IP_CT_UNTRACKED, "IPS_SRC_NAT": ctconn.IPS_SRC_NAT,
                  "IPS_DST_NAT": ctconn.IPS_DST_NAT, "XT_CONTINUE": result.XT_CONTINUE,
                  "XT_RETURN": result.XT_RETURN}
        return _speedups.chains_bind(Engine, comp.CompiledTable, Context, Packet, ctconn.Conn,
                                     RunResult, walk_py, run_py, _VERDICTS, HotDrop,
                                     TraceRecord, tuple(ctmatch.CTINFO_BIT), consts)
    return install(Engine, bind)


ACCELERATED: Final = _accelerate()
