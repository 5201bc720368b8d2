"""The rule set as data: Ruleset -> Table -> Chain -> Rule (frozen dataclasses).

Owns: the shape of a loaded rule set and the literal tables that describe netfilter's
layout (which built-in chains each table has, hook numbers, the ``IPT_INV_*`` bits of the
generic part of a rule). Must not know: text syntax (``parse.py``/``save.py``), evaluation
(``compile.py``/``engine.py``). Follows include/uapi/linux/netfilter_ipv4/ip_tables.h
(``struct ipt_ip``) and net/ipv4/netfilter/iptable_*.c (tables and their hooks).

Extension data (``Match.info`` / ``Target.info``) is each extension's own frozen dataclass;
counters in the model are the ones the file gave (``[p:b]``, ``-c``); live counters are
the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# enum nf_inet_hooks
HOOKS: Final[dict[str, int]] = {"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3,
                                "POSTROUTING": 4}
HOOK_NAMES: Final = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

# built-in chains per table, in the order iptables-save lists them (hook order)
TABLE_CHAINS: Final[dict[str, tuple[str, ...]]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
# the order the kernel runs tables at one hook (priorities raw < mangle < nat(dst) < filter)
TABLE_ORDER: Final = ("raw", "mangle", "nat", "filter")

# struct ipt_ip invflags (IP6T_INV_* have the same values)
INV_VIA_IN: Final = 0x01
INV_VIA_OUT: Final = 0x02
INV_SRCIP: Final = 0x08
INV_DSTIP: Final = 0x10
INV_FRAG: Final = 0x20
INV_PROTO: Final = 0x40

# standard verdict names a rule can jump to without an extension
VERDICTS: Final = ("ACCEPT", "DROP", "QUEUE", "RETURN")


@dataclass(frozen=True, slots=True)
class Source:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class IpSpec:
    """The generic part of a rule (``struct ipt_ip`` / ``struct ip6t_ip6``).

    Addresses are already masked; an empty interface means any; ``proto`` 0 means all;
    ``has_proto`` records that ``-p`` was given at all (ip6tables' IP6T_F_PROTO).
    """

    src: bytes
    smsk: bytes
    dst: bytes
    dmsk: bytes
    iniface: str = ""
    outiface: str = ""
    proto: int = 0
    has_proto: bool = False
    frag: bool = False
    inv: int = 0


@dataclass(frozen=True, slots=True)
class Match:
    name: str            # the extension name iptables-save prints after -m
    info: object         # the extension's frozen parsed data


@dataclass(frozen=True, slots=True)
class Target:
    """``kind``: "verdict" (ACCEPT/DROP/QUEUE/RETURN), "jump" / "goto" (``name`` is a user
    chain), "ext" (a target extension, ``info`` its data) or "none" (no -j: count only)."""

    kind: str
    name: str = ""
    info: object = None


@dataclass(frozen=True, slots=True)
class Rule:
    ip: IpSpec
    matches: tuple[Match, ...]
    target: Target
    counters: tuple[int, int]
    src: Source
    text: str            # the line as written


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    policy: str | None   # None for a user-defined chain
    counters: tuple[int, int]
    rules: tuple[Rule, ...]
    src: Source | None = None

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    chains: tuple[Chain, ...]   # built-ins in hook order, then user chains by name

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True, slots=True)
class Ruleset:
    family: int                 # 4 or 6
    tables: tuple[Table, ...]   # in the order the file committed them
    # the IP sets its rules may name (statewall.ipset.Registry; None: none), shared, not
    # compared: the sets live beside the rules, as the kernel's do
    sets: Any = field(default=None, compare=False)

    def table(self, name: str) -> Table | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None


def empty_table(name: str) -> Table:
    return Table(name, tuple(Chain(c, "ACCEPT", (0, 0), ()) for c in TABLE_CHAINS[name]))
