"""Counting matches: quota (bytes left) and statistic (every nth packet, or at random).

Owns: their options, save/listing text and per-rule state. Follows iptables extensions/
libxt_quota.c, libxt_statistic.c and net/netfilter/xt_quota.c, xt_statistic.c.

Difference: statistic's random mode draws from a deterministic generator (xorshift32
seeded per rule) instead of the kernel's random numbers, so replays are repeatable; the
probability and its test (31-bit value < probability * 2^31) are the kernel's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from ..numbers import U32, U64, uint
from .base import Env, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context


@dataclass(frozen=True, slots=True)
class QuotaInfo:
    quota: int
    invert: bool


class Quota(MatchExt):
    name = "quota"
    options = (Opt("quota", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> QuotaInfo:
        return QuotaInfo(uint(seen.arg("quota"), 0, U64, "quota --quota"), seen.inv("quota"))

    def save(self, i: QuotaInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --quota {i.quota}"

    def show(self, i: QuotaInfo, family: int) -> str:
        return f" quota: {i.quota} bytes"

    def compile(self, i: QuotaInfo, env: Env) -> Pred:
        left = [i.quota]
        inv = i.invert

        def quota(pkt: Packet, ctx: Context) -> bool:
            n = len(pkt.buf)
            if left[0] >= n:
                left[0] -= n
                return not inv
            left[0] = 0
            return inv
        return quota


@dataclass(frozen=True, slots=True)
class StatisticInfo:
    mode: str                # random, nth
    invert: bool
    probability: int         # random: lround(p * 2^31)
    every: int               # nth: n - 1 (the kernel's stored value)
    packet: int
    count: int               # nth: the counter's start value


class Statistic(MatchExt):
    name = "statistic"
    options = (Opt("mode", mand=True), Opt("probability", invert=True),
               Opt("every", invert=True), Opt("packet"))

    def build(self, seen: Seen, rc: RuleCtx) -> StatisticInfo:
        mode = seen.arg("mode")
        if mode not in ("random", "nth"):
            raise OptionError(f'statistic: bad mode "{mode}"')
        inv = seen.inv("probability") or seen.inv("every")
        prob = every = packet = 0
        if "probability" in seen:
            if mode != "random":
                raise OptionError("statistic: --probability can only be used in random mode")
            try:
                p = float(seen.arg("probability"))
            except ValueError:
                raise OptionError(f'statistic: bad probability "{seen.arg("probability")}"') \
                    from None
            if not 0.0 <= p <= 1.0:
                raise OptionError("statistic: --probability must be between 0 and 1")
            prob = int(p * 0x80000000 + 0.5)
        if "every" in seen or "packet" in seen:
            if mode != "nth":
                raise OptionError("statistic: --every and --packet can only be used in nth "
                                  "mode")
            if "every" not in seen or "packet" not in seen:
                raise OptionError("statistic: nth mode needs --every and --packet")
            every = uint(seen.arg("every"), 1, U32, "statistic --every") - 1
            packet = uint(seen.arg("packet"), 0, U32, "statistic --packet")
            if packet > every:
                raise OptionError("statistic: the --packet p must be 0 <= p <= n-1")
        elif mode == "nth":
            raise OptionError("statistic: nth mode needs --every and --packet")
        return StatisticInfo(mode, inv, prob, every, packet, every - packet)

    def _text(self, i: StatisticInfo, pfx: str) -> str:
        neg = " !" if i.invert else ""
        if i.mode == "random":
            return (f" {pfx}mode random{neg} {pfx}probability "
                    f"{i.probability / 0x80000000:.11f}")
        s = f" {pfx}mode nth{neg} {pfx}every {i.every + 1}"
        if i.packet or pfx:
            s += f" {pfx}packet {i.packet}"
        return s

    def save(self, i: StatisticInfo, family: int) -> str:
        return self._text(i, "--")

    def show(self, i: StatisticInfo, family: int) -> str:
        return " statistic" + self._text(i, "")

    def compile(self, i: StatisticInfo, env: Env) -> Pred:
        inv = i.invert
        if i.mode == "nth":
            state = [i.count]
            every = i.every

            def nth(pkt: Packet, ctx: Context) -> bool:
                state[0] = 0 if state[0] == every else state[0] + 1
                return (state[0] == 0) != inv
            return nth
        prob = i.probability
        rng = [(0x9E3779B9 ^ (env.rulenum * 0x85EBCA6B)) & U32 or 1]

        def random_(pkt: Packet, ctx: Context) -> bool:
            x = rng[0]
            x ^= (x << 13) & U32
            x ^= x >> 17
            x ^= (x << 5) & U32
            rng[0] = x
            return ((x & 0x7FFFFFFF) < prob) != inv
        return random_


QUOTA: Final = Quota()
STATISTIC: Final = Statistic()
