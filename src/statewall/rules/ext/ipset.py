"""ipset's ``set`` match and ``SET`` target (xt_set), over statewall.ipset.

Owns: their options (``[!] --match-set NAME src,dst...``, ``--return-nomatch``,
``! --update-counters``, ``! --update-subcounters``; ``--add-set`` / ``--del-set NAME
FLAGS``, ``--exist``, ``--timeout``), the save and ``-L`` texts, the checks (the set
must exist when the rule is read, as libxt_set's ``get_set_byname`` asks the kernel) and
the packet code: ``ip_set_test`` with the flags as the element's directions, ``ip_set_add``
/ ``ip_set_del`` for SET. Follows iptables extensions/libxt_set.c / libxt_SET.c (match
revision 4, target revision 3, as iptables 1.8.9 loads them) and net/netfilter/xt_set.c.

Not modelled (the rule is refused): element counter matches (``--packets-*``,
``--bytes-*``) and ``--map-set`` (skb marks, priorities, queues from an element). A set
changes with SET and its timeouts: the match is never flow-stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ...ipset.sets import MAX_DIM, change, matches
from ..errors import OptionError
from ..numbers import U32, uint
from ..result import XT_CONTINUE
from .base import (ARG_NONE, Env, MatchExt, Opt, Pred, RuleCtx, Seen, TargetExt, TargetFn)

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context
    from ..result import RunResult

NAME_MAX: Final = 31                    # IPSET_MAXNAMELEN - 1
_COUNTERS: Final = tuple(f"{w}-{op}" for w in ("packets", "bytes") for op in ("eq", "lt", "gt"))


@dataclass(frozen=True, slots=True)
class SetRef:
    name: str
    flags: tuple[bool, ...]             # per dimension: True = src, False = dst


def _ref(arg: str, rc: RuleCtx, what: str) -> SetRef:
    name, _, dirs = arg.partition(" ")
    if len(name) > NAME_MAX:
        raise OptionError(f"setname `{name}' too long, max {NAME_MAX} characters.")
    sets = rc.sets
    if sets is None or name not in sets:
        raise OptionError(f"Set {name} doesn't exist.")
    words = dirs.split(",")
    if len(words) > MAX_DIM:
        raise OptionError(f"Can't be more src/dst options than {MAX_DIM}.")
    flags = []
    for w in words:
        if w[:3] not in ("src", "dst"):        # (libxt_set compares three characters)
            raise OptionError("You must spefify (the comma separated list of) 'src' or "
                              "'dst'.")
        flags.append(w[:3] == "src")
    return SetRef(name, tuple(flags))


def _ref_text(r: SetRef) -> str:
    return f"{r.name} {','.join('src' if f else 'dst' for f in r.flags)}"


@dataclass(frozen=True, slots=True)
class SetMatchInfo:
    ref: SetRef
    invert: bool
    return_nomatch: bool
    skip_counters: bool
    skip_subcounters: bool


class SetMatch(MatchExt):
    name = "set"
    options = (Opt("match-set", invert=True, extra=1),
               Opt("set", "match-set", invert=True, extra=1),
               Opt("return-nomatch", arg=ARG_NONE, invert=True),
               Opt("update-counters", arg=ARG_NONE, invert=True),
               Opt("update-subcounters", arg=ARG_NONE, invert=True),
               *(Opt(c, invert=c.endswith("eq")) for c in _COUNTERS))

    def build(self, seen: Seen, rc: RuleCtx) -> SetMatchInfo:
        for c in _COUNTERS:
            if c in seen:
                raise OptionError(f"set: --{c} (element counters) is not supported by "
                                  "statewall")
        g = seen.get("match-set")
        if g is None:
            raise OptionError("You must specify `--match-set' with proper arguments")
        if "return-nomatch" in seen and seen.inv("return-nomatch"):
            raise OptionError("--return-nomatch flag cannot be inverted")
        return SetMatchInfo(_ref(g.arg, rc, "match-set"), g.inv, "return-nomatch" in seen,
                            seen.inv("update-counters"), seen.inv("update-subcounters"))

    @staticmethod
    def _text(i: SetMatchInfo, dash: str) -> str:
        s = f"{' !' if i.invert else ''} {dash}match-set {_ref_text(i.ref)}"
        if i.return_nomatch:
            s += f" {dash}return-nomatch"
        if i.skip_counters:
            s += f" ! {dash}update-counters"
        if i.skip_subcounters:
            s += f" ! {dash}update-subcounters"
        return s

    def save(self, i: SetMatchInfo, family: int) -> str:
        return self._text(i, "--")

    def show(self, i: SetMatchInfo, family: int) -> str:
        return self._text(i, "")

    def compile(self, i: SetMatchInfo, env: Env) -> Pred:
        reg: Any = env.sets
        s = reg.sets[i.ref.name]
        flags, nomatch, inv = i.ref.flags, i.return_nomatch, i.invert

        def set_match(pkt: Packet, ctx: Context) -> bool:
            return matches(reg, s, pkt, flags, nomatch, ctx.now) != inv
        return set_match


@dataclass(frozen=True, slots=True)
class SetTargetInfo:
    add: SetRef | None
    delete: SetRef | None
    exist: bool
    timeout: int | None


class SetTarget(TargetExt):
    name = "SET"
    options = (Opt("add-set", extra=1), Opt("del-set", extra=1), Opt("exist", arg=ARG_NONE),
               Opt("timeout"), Opt("map-set", extra=1), Opt("map-mark", arg=ARG_NONE),
               Opt("map-prio", arg=ARG_NONE), Opt("map-queue", arg=ARG_NONE))

    def build(self, seen: Seen, rc: RuleCtx) -> SetTargetInfo:
        for m in ("map-set", "map-mark", "map-prio", "map-queue"):
            if m in seen:
                raise OptionError(f"SET: --{m} (skb info from an element) is not supported "
                                  "by statewall")
        if "add-set" not in seen and "del-set" not in seen:
            raise OptionError("You must specify either `--add-set' or `--del-set' or "
                              "`--map-set'")
        add = _ref(seen.arg("add-set"), rc, "add-set") if "add-set" in seen else None
        delete = _ref(seen.arg("del-set"), rc, "del-set") if "del-set" in seen else None
        timeout = uint(seen.arg("timeout"), 0, U32 - 1, "SET --timeout") \
            if "timeout" in seen else None
        return SetTargetInfo(add, delete, "exist" in seen, timeout)

    def _text(self, i: SetTargetInfo, dash: str) -> str:
        s = ""
        if i.add is not None:
            s += f" {dash}add-set {_ref_text(i.add)}"
        if i.exist:
            s += f" {dash}exist"
        if i.timeout is not None:
            s += f" {dash}timeout {i.timeout}"
        if i.delete is not None:
            s += f" {dash}del-set {_ref_text(i.delete)}"
        return s

    def save(self, i: SetTargetInfo, family: int) -> str:
        return self._text(i, "--")

    def show(self, i: SetTargetInfo, family: int) -> str:
        return self._text(i, "")

    def compile(self, i: SetTargetInfo, env: Env) -> TargetFn:
        reg: Any = env.sets
        add = (reg.sets[i.add.name], i.add.flags) if i.add is not None else None
        delete = (reg.sets[i.delete.name], i.delete.flags) if i.delete is not None else None
        exist, timeout = i.exist, i.timeout

        def set_target(pkt: Packet, ctx: Context, res: RunResult) -> int:
            if add is not None:
                change(reg, add[0], pkt, add[1], True, timeout, exist, ctx.now)
            if delete is not None:
                change(reg, delete[0], pkt, delete[1], False, None, False, ctx.now)
            return XT_CONTINUE
        return set_target


SET_MATCH: Final = SetMatch()
SET_TARGET: Final = SetTarget()
