"""Packet and connection marks: the mark and connmark matches, MARK and CONNMARK targets.

Owns: their options (MARK's --set-mark/--and-mark/--or-mark/--xor-mark all become one
--set-xmark value/mask, as libxt_MARK.c stores them), save text and actions. Follows
iptables extensions/libxt_mark.c, libxt_connmark.c, libxt_MARK.c, libxt_CONNMARK.c and
net/netfilter/xt_mark.c, xt_connmark.c (CONNMARK on a packet without an entry does
nothing; a changed ct mark raises IPCT_MARK).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from ..numbers import U32, uint, value_mask
from ..result import XT_CONTINUE
from .base import ARG_NONE, Env, MatchExt, Opt, Pred, RuleCtx, Seen, TargetExt, TargetFn

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context
    from ..result import RunResult

IPCT_MARK: Final = 1 << 7


def mark_text(mark: int, mask: int) -> str:
    return f"0x{mark:x}" if mask == U32 else f"0x{mark:x}/0x{mask:x}"


@dataclass(frozen=True, slots=True)
class MarkMatchInfo:
    mark: int
    mask: int
    invert: bool


class Mark(MatchExt):
    name = "mark"
    options = (Opt("mark", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> MarkMatchInfo:
        v, m = value_mask(seen.arg("mark"), f"{self.name} --mark")
        return MarkMatchInfo(v, m, seen.inv("mark"))

    def save(self, i: MarkMatchInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --mark {mark_text(i.mark, i.mask)}"

    def show(self, i: MarkMatchInfo, family: int) -> str:
        return f" mark match {'! ' if i.invert else ''}{mark_text(i.mark, i.mask)}"

    def compile(self, i: MarkMatchInfo, env: Env) -> Pred:
        mark, mask, inv = i.mark, i.mask, i.invert

        def markm(pkt: Packet, ctx: Context) -> bool:
            return ((pkt.mark & mask) == mark) != inv
        return markm


class Connmark(Mark):
    name = "connmark"

    def show(self, i: MarkMatchInfo, family: int) -> str:
        # libxt_connmark: " connmark match " then "!" then print_mark's " 0x..."
        return f" connmark match {'!' if i.invert else ''} {mark_text(i.mark, i.mask)}"

    def compile(self, i: MarkMatchInfo, env: Env) -> Pred:
        mark, mask, inv = i.mark, i.mask, i.invert

        def connmark(pkt: Packet, ctx: Context) -> bool:
            ct = pkt.ct
            if ct is None:
                return False
            return bool(((ct.mark & mask) == mark) != inv)
        return connmark


# ------------------------------------------------------------------------------- targets
_OPS: Final = ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark")


def _xmark(g_name: str, arg: str, what: str) -> tuple[int, int]:
    """One of the five spellings -> (xor value, clear mask)."""
    if g_name == "set-xmark":
        return value_mask(arg, what)
    if g_name == "set-mark":
        v, m = value_mask(arg, what)
        return v, v | m
    v = uint(arg, 0, U32, what)
    if g_name == "and-mark":
        return 0, ~v & U32
    if g_name == "or-mark":
        return v, v
    return v, 0                                    # xor-mark


def _xmark_show(name: str, mark: int, mask: int) -> str:
    if mark == 0:
        return f" {name} and 0x{~mask & U32:x}"
    if mark == mask:
        return f" {name} or 0x{mark:x}"
    if mask == 0:
        return f" {name} xor 0x{mark:x}"
    if mask == U32:
        return f" {name} set 0x{mark:x}"
    return f" {name} xset 0x{mark:x}/0x{mask:x}"


@dataclass(frozen=True, slots=True)
class MarkTargetInfo:
    mark: int
    mask: int


class MarkTarget(TargetExt):
    name = "MARK"
    options = tuple(Opt(n, "op", excl=()) for n in _OPS)

    def build(self, seen: Seen, rc: RuleCtx) -> MarkTargetInfo:
        g = seen.get("op")
        if g is None:
            raise OptionError("MARK: one of the --set-xmark, --{and,or,xor,set}-mark "
                              "options is required")
        v, m = _xmark(g.opt.name, g.arg, f"MARK --{g.opt.name}")
        return MarkTargetInfo(v, m)

    def save(self, i: MarkTargetInfo, family: int) -> str:
        return f" --set-xmark 0x{i.mark:x}/0x{i.mask:x}"

    def show(self, i: MarkTargetInfo, family: int) -> str:
        return _xmark_show("MARK", i.mark, i.mask)

    def compile(self, i: MarkTargetInfo, env: Env) -> TargetFn:
        keep = ~i.mask & U32
        xor = i.mark

        def mark(pkt: Packet, ctx: Context, res: RunResult) -> int:
            pkt.mark = (pkt.mark & keep) ^ xor
            return XT_CONTINUE
        return mark


@dataclass(frozen=True, slots=True)
class ConnmarkTargetInfo:
    mode: str        # set, save, restore
    ctmark: int
    ctmask: int
    nfmask: int


class ConnmarkTarget(TargetExt):
    name = "CONNMARK"
    _ANY: Final = ("op",)
    options = tuple(Opt(n, "op") for n in _OPS) + (
        Opt("save-mark", "op", arg=ARG_NONE), Opt("restore-mark", "op", arg=ARG_NONE),
        Opt("mask", excl=("ctmask", "nfmask")), Opt("ctmask", excl=("mask",)),
        Opt("nfmask", excl=("mask",)),
    )

    def build(self, seen: Seen, rc: RuleCtx) -> ConnmarkTargetInfo:
        mode, ctmark, ctmask, nfmask = "", 0, U32, U32
        for g in seen.items:
            n = g.opt.name
            if n in _OPS:
                mode = "set"
                ctmark, ctmask = _xmark(n, g.arg, f"CONNMARK --{n}")
            elif n == "save-mark":
                mode = "save"
            elif n == "restore-mark":
                mode = "restore"
            elif n == "mask":
                nfmask = ctmask = uint(g.arg, 0, U32, "CONNMARK --mask")
            elif n == "ctmask":
                ctmask = uint(g.arg, 0, U32, "CONNMARK --ctmask")
            elif n == "nfmask":
                nfmask = uint(g.arg, 0, U32, "CONNMARK --nfmask")
        if not mode:
            raise OptionError("CONNMARK: no operation specified")
        return ConnmarkTargetInfo(mode, ctmark, ctmask, nfmask)

    def save(self, i: ConnmarkTargetInfo, family: int) -> str:
        if i.mode == "set":
            return f" --set-xmark 0x{i.ctmark:x}/0x{i.ctmask:x}"
        return f" --{i.mode}-mark --nfmask 0x{i.nfmask:x} --ctmask 0x{i.ctmask:x}"

    def show(self, i: ConnmarkTargetInfo, family: int) -> str:
        if i.mode == "set":
            return _xmark_show("CONNMARK", i.ctmark, i.ctmask)
        if i.mode == "save":
            if i.nfmask == U32 and i.ctmask == U32:
                return " CONNMARK save"
            if i.nfmask == i.ctmask:
                return f" CONNMARK save mask 0x{i.nfmask:x}"
            return f" CONNMARK save nfmask 0x{i.nfmask:x} ctmask ~0x{i.ctmask:x}"
        if i.nfmask == U32 and i.ctmask == U32:
            return " CONNMARK restore"
        if i.ctmask == i.nfmask:
            return f" CONNMARK restore mask 0x{i.ctmask:x}"
        return f" CONNMARK restore ctmask 0x{i.ctmask:x} nfmask ~0x{i.nfmask:x}"

    def compile(self, i: ConnmarkTargetInfo, env: Env) -> TargetFn:
        ctmark, ctmask, nfmask = i.ctmark, i.ctmask, i.nfmask
        keep_ct = ~ctmask & U32
        keep_nf = ~nfmask & U32
        if i.mode == "set":
            def connmark_set(pkt: Packet, ctx: Context, res: RunResult) -> int:
                ct = pkt.ct
                if ct is not None:
                    new = (ct.mark & keep_ct) ^ ctmark
                    if new != ct.mark:
                        ct.mark = new
                        ct.events |= IPCT_MARK
                return XT_CONTINUE
            return connmark_set
        if i.mode == "save":
            def connmark_save(pkt: Packet, ctx: Context, res: RunResult) -> int:
                ct = pkt.ct
                if ct is not None:
                    new = (ct.mark & keep_ct) ^ (pkt.mark & nfmask)
                    if new != ct.mark:
                        ct.mark = new
                        ct.events |= IPCT_MARK
                return XT_CONTINUE
            return connmark_save

        def connmark_restore(pkt: Packet, ctx: Context, res: RunResult) -> int:
            ct = pkt.ct
            if ct is not None:
                pkt.mark = (pkt.mark & keep_nf) ^ (ct.mark & ctmask)
            return XT_CONTINUE
        return connmark_restore


MARK: Final = Mark()
CONNMARK: Final = Connmark()
MARK_TARGET: Final = MarkTarget()
CONNMARK_TARGET: Final = ConnmarkTarget()
