"""What one traversal of a table produces: the verdict and the side outputs, in order.

Owns: ``Verdict`` (the kernel's NF_* verdicts), the internal continue/return codes targets
hand back, ``RunResult`` and the records targets emit (LOG, NFLOG, REJECT, TRACE) or leave
for the caller (the CT template, a NAT request). Must not know: how rules are evaluated or
how the records are turned into log lines or packets (the caller does that: statewall.packet
.reject builds REJECT replies; the lead formats kernel log lines). All are slotted
classes, created only when a rule that emits them fires.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class Verdict(IntEnum):
    """``NF_DROP`` .. ``NF_QUEUE`` (include/uapi/linux/netfilter.h)."""

    DROP = 0
    ACCEPT = 1
    STOLEN = 2
    QUEUE = 3


# what a target function returns besides a Verdict (ints on the hot path)
NF_DROP: Final = 0
NF_ACCEPT: Final = 1
NF_QUEUE: Final = 3
XT_CONTINUE: Final = -1     # XT_CONTINUE: go on with the next rule
XT_RETURN: Final = -5       # XT_RETURN (-NF_REPEAT - 1): back to the calling chain


class LogRecord:
    """A LOG target hit: the lead prints the kernel line (``nf_log_ip_packet``)."""

    __slots__ = ("prefix", "level", "flags", "table", "chain", "rulenum", "hook")

    def __init__(self, prefix: str, level: int, flags: int, table: str, chain: str,
                 rulenum: int, hook: str) -> None:
        self.prefix = prefix
        self.level = level
        self.flags = flags          # XT_LOG_* bits: 1 tcp seq, 2 tcp opt, 4 ip opt, 8 uid, 32 mac
        self.table = table
        self.chain = chain
        self.rulenum = rulenum
        self.hook = hook

    def __repr__(self) -> str:
        return f"LogRecord({self.prefix!r}, level={self.level}, flags={self.flags:#x})"


class NflogRecord:
    """An NFLOG target hit (``nfulnl_log_packet``): group, prefix, copy size, threshold."""

    __slots__ = ("group", "prefix", "size", "threshold", "table", "chain", "rulenum", "hook")

    def __init__(self, group: int, prefix: str, size: int | None, threshold: int, table: str,
                 chain: str, rulenum: int, hook: str) -> None:
        self.group = group
        self.prefix = prefix
        self.size = size            # --nflog-size (None: whole packet) / --nflog-range
        self.threshold = threshold
        self.table = table
        self.chain = chain
        self.rulenum = rulenum
        self.hook = hook

    def __repr__(self) -> str:
        return f"NflogRecord(group={self.group}, prefix={self.prefix!r})"


class RejectRecord:
    """A REJECT target hit: ``with_`` is the canonical ``--reject-with`` name
    (``icmp-port-unreachable``, ``tcp-reset``, ``icmp6-adm-prohibited``, ...)."""

    __slots__ = ("with_", "table", "chain", "rulenum", "hook")

    def __init__(self, with_: str, table: str, chain: str, rulenum: int, hook: str) -> None:
        self.with_ = with_
        self.table = table
        self.chain = chain
        self.rulenum = rulenum
        self.hook = hook

    def __repr__(self) -> str:
        return f"RejectRecord({self.with_!r})"


class TraceRecord:
    """One ``TRACE: table:chain:kind:rulenum`` line (``kind``: rule, return, policy)."""

    __slots__ = ("table", "chain", "kind", "rulenum")

    def __init__(self, table: str, chain: str, kind: str, rulenum: int) -> None:
        self.table = table
        self.chain = chain
        self.kind = kind
        self.rulenum = rulenum

    def __str__(self) -> str:
        return f"TRACE: {self.table}:{self.chain}:{self.kind}:{self.rulenum}"

    __repr__ = __str__


class CtTemplate:
    """What a CT target asks conntrack to use for the packet's new entry (raw table).

    zone / zone_dir ("both", "orig", "reply"), helper name, timeout policy name, the
    ctevents / expevents masks (None: all). ``notrack`` is also set on the packet."""

    __slots__ = ("notrack", "zone", "zone_dir", "helper", "timeout", "ctevents", "expevents")

    def __init__(self) -> None:
        self.notrack = False
        self.zone = 0
        self.zone_dir = "both"
        self.helper: str | None = None
        self.timeout: str | None = None
        self.ctevents: int | None = None
        self.expevents: int | None = None

    def __repr__(self) -> str:
        return (f"CtTemplate(notrack={self.notrack}, zone={self.zone}/{self.zone_dir}, "
                f"helper={self.helper}, timeout={self.timeout})")


class NatRequest:
    """A NAT target hit, for the NAT stage to carry out.

    kind: SNAT, DNAT, MASQUERADE, REDIRECT or NETMAP. ``ranges``: tuple of
    (min_addr, max_addr, min_port, max_port, base_port) with None for what is not given
    (addresses as bytes). flags: "random", "random-fully", "persistent". NETMAP: ``ranges``
    holds the ``--to`` network address and ``prefix_len`` its prefix length."""

    __slots__ = ("kind", "ranges", "flags", "prefix_len", "table", "chain", "rulenum")

    def __init__(self, kind: str, ranges: tuple[tuple[bytes | None, bytes | None, int | None,
                                                      int | None, int | None], ...],
                 flags: frozenset[str], table: str, chain: str, rulenum: int,
                 prefix_len: int | None = None) -> None:
        self.kind = kind
        self.ranges = ranges
        self.flags = flags
        self.prefix_len = prefix_len
        self.table = table
        self.chain = chain
        self.rulenum = rulenum

    def __repr__(self) -> str:
        return f"NatRequest({self.kind}, {self.ranges}, {sorted(self.flags)})"


Emitted = LogRecord | NflogRecord | RejectRecord | TraceRecord


class RunResult:
    """The outcome of ``Engine.run``.

    verdict: a Verdict. source: where it was decided ("filter/FORWARD#3",
    "filter/FORWARD policy", "nat/PREROUTING#1", or "no chain" when the table has no such
    hook). matched: (table, chain, rulenum, rule text) for every rule that matched and whose
    target ran (only with ``trace=True``). emitted: LOG/NFLOG/REJECT/TRACE records in order.
    ct_template / nat: set by CT and NAT targets. queue_num / queue_bypass: the queue of a
    QUEUE verdict (``-j QUEUE``: 0) and NFQUEUE's --queue-bypass (accept the packet when
    no program listens on the queue).
    """

    __slots__ = ("verdict", "source", "matched", "emitted", "ct_template", "nat", "queue_num",
                 "queue_bypass")

    def __init__(self) -> None:
        self.verdict = Verdict.ACCEPT
        self.source = ""
        self.matched: list[tuple[str, str, int, str]] = []
        self.emitted: list[Emitted] = []
        self.ct_template: CtTemplate | None = None
        self.nat: NatRequest | None = None
        self.queue_num = 0
        self.queue_bypass = False

    def __repr__(self) -> str:
        return (f"RunResult({self.verdict.name}, {self.source!r}, emitted={self.emitted}, "
                f"nat={self.nat}, ct_template={self.ct_template})")
