"""The flow cache: the rule traversals of an established connection, replayed (sans-I/O).

For most packets a stateful rule set asks the same questions with the same answers: an
ESTABLISHED packet of a known connection, arriving on the same interface, meets rules that
look only at its tuple, interfaces and ctstate (``-p``, ``-s``/``-d``, ``-i``/``-o``,
``--dport``, ``-m conntrack --ctstate``, ``multiport``, ``iprange``, ...) and reaches the
same verdict through the same rules. The first such packet of each direction is walked
through the tables without effects (``Engine.walk``: no counter moves, no target runs) and
what the walk found is kept on the entry (which rule and policy counters go up, the hooks,
the output interface, the verdict and who decided it); that packet and the next ones replay
it: the same counters go up by the packet's length, the same verdict comes out, without
walking the chains (in C when the accelerator is built). The kernel's flowtable does the
same for forwarding; unlike it, every rule and policy counter stays exact and nothing is
skipped that could decide differently.

A record is made only when nothing in the walk can change within the flow: every
rule looked at declares itself flow-stable (``MatchExt.flow_stable``; a rule with any other
match marks the traversal volatile as soon as it is looked at, see rules/compile.py), no
target other than ACCEPT/DROP/jumps would run (LOG, MARK, CT, REJECT...: the walk stops), no
NAT table and no tracing. A record is used only for the same rule set (Engine identity),
the same input interface, packet mark and TOS, the same host addresses and routes
(``HostModel.gen``) and the same ctinfo, which conntrack confirms for the packet before
the record is trusted: a packet that conntrack finds INVALID, or that reopens the
connection, takes the full path from the point after conntrack.

Owns: ``FlowEntry`` and its validity rules, recording and replaying counters.
Must not know: how chains are walked (rules/engine.py), the hook order (firewall.py).
"""

from __future__ import annotations

from typing import Any, Sequence

from .rules.numbers import U64

# one counter bump: (packet counters, byte counters, index) of a CompiledTable
Step = tuple[memoryview, memoryview, int]


class FlowEntry:
    """What the established packets of one direction of one connection do."""

    __slots__ = ("engine", "iface", "mark", "tos", "hostgen", "ctinfo", "pre", "post",
                 "path", "out_iface", "verdict", "source", "reason")

    def __init__(self, engine: Any, iface: str | None, mark: int, tos: int, hostgen: int,
                 ctinfo: int, pre: tuple[Step, ...], post: tuple[Step, ...],
                 path: Sequence[str], out_iface: str | None, verdict: str,
                 source: str | None, reason: str | None) -> None:
        self.engine = engine
        self.iface = iface
        self.mark = mark
        self.tos = tos
        self.hostgen = hostgen
        self.ctinfo = ctinfo
        self.pre = pre              # raw, before conntrack
        self.post = post            # every table after conntrack
        self.path = path
        self.out_iface = out_iface
        self.verdict = verdict
        self.source = source
        self.reason = reason


def steps(table: Any, hits: list[int]) -> list[Step]:
    """The counter bumps of one traversal (``Engine.walk``'s hits: rule counter indexes, ~chain
    index for a policy) of ``table`` (a CompiledTable; each bump is made once and kept in
    ``table.steps``)."""
    known = table.steps
    out: list[Step] = []
    for h in hits:
        st = known.get(h)
        if st is None:
            st = known[h] = (table.pkts, table.bytes, h) if h >= 0 else \
                (table.ppkts, table.pbytes, ~h)
        out.append(st)
    return out


def replay(record: tuple[Step, ...], length: int) -> None:
    """Bump the recorded counters for one packet of ``length`` bytes."""
    for pk, by, i in record:
        pk[i] = (pk[i] + 1) & U64           # u64 counters wrap, as the kernel's
        by[i] = (by[i] + length) & U64


def store(ct: Any, dir: int, entry: FlowEntry) -> None:
    fc = ct.fc
    if fc is None:
        fc = ct.fc = [None, None]
    fc[dir] = entry
