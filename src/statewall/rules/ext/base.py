"""The interface every match and target extension implements, and the option framework.

Owns: ``Opt`` (one long option of an extension: argument kind, may it be inverted, is it
mandatory, may it repeat, which options exclude it - libxtables ``struct xt_option_entry``),
``Seen`` (the options one extension instance was given, with the generic checks of
``xtables_option_parse`` / ``xtables_options_fcheck``), the contexts handed to an extension
(``RuleCtx`` while parsing, ``KernelCtx`` for the kernel's checkentry, ``Env`` when
compiling) and the ``MatchExt`` / ``TargetExt`` base classes. Must not know: any particular
extension, the text of a rule file.

An extension is a module-level singleton with: ``build`` (options -> frozen info),
``save`` (info -> the iptables-save text after ``-m name`` / ``-j NAME``), ``show`` (the
``iptables -L`` text), ``check`` (the kernel's checkentry), ``compile`` (info -> predicate
or target function), plus literal ``table`` / ``hooks`` / ``proto`` restrictions that
x_tables.c ``xt_check_match`` / ``xt_check_target`` enforce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Final, NamedTuple

from ..errors import OptionError

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context
    from ..model import IpSpec
    from ..result import RunResult

ARG_NONE: Final = 0
ARG_REQ: Final = 1
ARG_OPT: Final = 2

# hook bits (1 << NF_INET_*)
H_PRE: Final = 1 << 0
H_IN: Final = 1 << 1
H_FWD: Final = 1 << 2
H_OUT: Final = 1 << 3
H_POST: Final = 1 << 4

Pred = Callable[["Packet", "Context"], bool]
TargetFn = Callable[["Packet", "Context", "RunResult"], int]


class HotDrop(Exception):
    """A match asked for the packet to be dropped at once (``par->hotdrop``)."""


@dataclass(frozen=True, slots=True)
class Opt:
    """One long option. ``key`` groups aliases (defaults to ``name``); ``excl`` lists keys
    that may not be combined with this one; ``also`` keys it requires."""

    name: str
    key: str = ""
    arg: int = ARG_REQ
    invert: bool = False
    mand: bool = False
    multi: bool = False
    excl: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    extra: int = 0          # further argv words the option takes (--tcp-flags MASK COMP)

    @property
    def id(self) -> str:
        return self.key or self.name


class Given(NamedTuple):
    """One option occurrence; ``proto`` / ``proto_inv``: the rule's ``-p`` when the option
    was read (libxt_multiport checks it then)."""

    opt: Opt
    arg: str
    inv: bool
    proto: int = 0
    proto_inv: bool = False


class Seen:
    """The options one extension instance received, in order."""

    __slots__ = ("ext", "items")

    def __init__(self, ext: Ext) -> None:
        self.ext = ext
        self.items: list[Given] = []

    def add(self, opt: Opt, arg: str | None, inv: bool, proto: int = 0,
            proto_inv: bool = False) -> None:
        name = self.ext.name
        if inv and not opt.invert:
            raise OptionError(f'{name}: option "--{opt.name}" cannot be inverted')
        key = opt.id
        if not opt.multi and any(g.opt.id == key for g in self.items):
            raise OptionError(f'{name}: option "--{opt.name}" can only be used once')
        for g in self.items:
            if g.opt.id in opt.excl or key in g.opt.excl:
                raise OptionError(f'{name}: option "--{opt.name}" cannot be used together '
                                  f'with "--{g.opt.name}"')
        self.items.append(Given(opt, arg if arg is not None else "", inv, proto, proto_inv))

    def finish(self) -> None:
        """``xtables_options_fcheck``: mandatory options and requirements."""
        name = self.ext.name
        for opt in self.ext.options:
            if opt.mand and opt.id not in self:
                raise OptionError(f'{name}: option "--{opt.name}" must be specified')
        for g in self.items:
            for need in g.opt.also:
                if need not in self:
                    raise OptionError(f'{name}: option "--{g.opt.name}" requires "--{need}"')

    def __contains__(self, key: object) -> bool:
        return any(g.opt.id == key for g in self.items)

    def get(self, key: str) -> Given | None:
        for g in reversed(self.items):
            if g.opt.id == key:
                return g
        return None

    def arg(self, key: str, default: str = "") -> str:
        g = self.get(key)
        return g.arg if g is not None else default

    def inv(self, key: str) -> bool:
        g = self.get(key)
        return g.inv if g is not None else False

    def all(self, key: str) -> list[Given]:
        return [g for g in self.items if g.opt.id == key]

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass(frozen=True, slots=True)
class RuleCtx:
    """What an extension may know while its options are parsed."""

    family: int
    table: str
    chain: str
    proto: int          # -p value (0: any)
    invproto: bool      # ! -p
    sets: Any = None    # the IP sets rules may name (statewall.ipset.Registry), or None


@dataclass(frozen=True, slots=True)
class KernelCtx:
    """What the kernel's checkentry sees: the table, the hooks the rule can be reached from
    (0 when unreachable), the generic part of the rule."""

    family: int
    table: str
    hook_mask: int
    ip: IpSpec


class Env:
    """Compile-time environment: family, position of the rule, and ``shared`` - per-engine
    state stateful matches share by name (hashlimit/recent tables)."""

    __slots__ = ("family", "table", "chain", "rulenum", "shared", "sets")

    def __init__(self, family: int, shared: dict[str, Any], sets: Any = None) -> None:
        self.family = family
        self.table = ""
        self.chain = ""
        self.rulenum = 0
        self.shared = shared
        self.sets = sets            # statewall.ipset.Registry (-m set, -j SET) or None


class Ext:
    """Common part of match and target extensions."""

    name: str = ""
    family: int = 0                  # 0: IPv4 and IPv6
    options: tuple[Opt, ...] = ()
    table: str | None = None         # kernel: only valid in this table
    hooks: int = 0                   # kernel: only valid from these hooks (0: any)
    proto: int = 0                   # kernel: needs "-p proto" (not inverted)

    def build(self, seen: Seen, rc: RuleCtx) -> object:
        raise NotImplementedError

    def save(self, info: Any, family: int) -> str:
        raise NotImplementedError

    def show(self, info: Any, family: int) -> str:
        """``iptables -L -n`` text (without the leading match name where iptables has
        none); defaults to the save text."""
        return self.save(info, family)

    def check(self, info: Any, kc: KernelCtx) -> None:
        """The kernel's checkentry beyond table/hooks/proto; raise OptionError."""


class MatchExt(Ext):
    def compile(self, info: Any, env: Env) -> Pred:
        raise NotImplementedError

    def flow_stable(self, info: Any) -> bool:
        """Does this match give the same answer for every ESTABLISHED packet of one
        connection in one direction, through one interface (it reads only the tuple, the
        interfaces, ctinfo or facts fixed when the entry was created)? Then the flow cache
        (flowcache.py) may replay its outcome. False unless a match says so."""
        return False


class TargetExt(Ext):
    terminal: bool = False           # never returns XT_CONTINUE (documentation only)
    list_name: str | None = None     # the name ``iptables -L`` shows, when it differs

    def compile(self, info: Any, env: Env) -> TargetFn:
        raise NotImplementedError


def hook_names(mask: int) -> str:
    names = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
    return "/".join(n for i, n in enumerate(names) if mask & (1 << i))
