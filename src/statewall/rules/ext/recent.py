"""The recent match: named lists of recently seen addresses.

Owns: its options, save text, and the lists: per name (shared by every rule and both
families, as in the kernel's per-namespace table list), at most ``IP_LIST_TOT`` addresses
(the least recently updated is dropped), each with a ring of time stamps sized from the
largest ``--hitcount`` (``ip_pkt_list_tot`` 0: as needed, 32 by default). Follows
iptables extensions/libxt_recent.c and net/netfilter/xt_recent.c (``recent_mt``,
``recent_entry_lookup``/``_init``/``_update``/``_reap``, ``recent_mt_check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..addr import V4_ALL, V6_ALL, apply_mask, ntop, parse_addr
from ..errors import OptionError
from ..numbers import U32, uint
from .base import ARG_NONE, Env, KernelCtx, MatchExt, Opt, Pred, RuleCtx, Seen
from .ratelimit import HZ

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

SET: Final = 1
CHECK: Final = 2
UPDATE: Final = 4
REMOVE: Final = 8
TTL: Final = 16
REAP: Final = 32
IP_LIST_TOT: Final = 100           # module parameter ip_list_tot
MAX_NSTAMPS: Final = 65536         # XT_RECENT_MAX_NSTAMPS
NAME_LEN: Final = 200              # XT_RECENT_NAME_LEN
_OPS: Final = (("set", SET), ("rcheck", CHECK), ("update", UPDATE), ("remove", REMOVE))


@dataclass(frozen=True, slots=True)
class RecentInfo:
    check_set: int
    invert: bool
    seconds: int
    hit_count: int
    name: str
    mask: bytes
    side_dest: bool


class Recent(MatchExt):
    name = "recent"
    options = tuple(Opt(n, "op", arg=ARG_NONE, invert=True) for n, _ in _OPS) + (
        Opt("seconds"), Opt("reap", arg=ARG_NONE, also=("seconds",)), Opt("hitcount"),
        Opt("rttl", arg=ARG_NONE), Opt("name"), Opt("rsource", "side", arg=ARG_NONE,
                                                    multi=True),
        Opt("rdest", "side", arg=ARG_NONE, multi=True), Opt("mask"),
    )

    def build(self, seen: Seen, rc: RuleCtx) -> RecentInfo:
        op = seen.get("op")
        if op is None:
            raise OptionError("recent: you must specify one of `--set', `--rcheck', "
                              "`--update' or `--remove'")
        cs = dict(_OPS)[op.opt.name]
        if "rttl" in seen:
            if cs & (SET | REMOVE):
                raise OptionError('recent: option "--rttl" cannot be used with --set or '
                                  "--remove")
            cs |= TTL
        if "reap" in seen:
            cs |= REAP
        seconds = uint(seen.arg("seconds"), 1, U32, "recent --seconds") \
            if "seconds" in seen else 0
        hits = uint(seen.arg("hitcount"), 0, U32, "recent --hitcount") \
            if "hitcount" in seen else 0
        name = seen.arg("name", "DEFAULT")[:NAME_LEN - 1]
        if "mask" in seen:
            mask = parse_addr(seen.arg("mask"), rc.family, "recent --mask")
        else:
            mask = V4_ALL if rc.family == 4 else V6_ALL
        side = seen.get("side")
        return RecentInfo(cs, op.inv, seconds, hits, name, mask,
                          side is not None and side.opt.name == "rdest")

    def save(self, i: RecentInfo, family: int) -> str:
        s = " !" if i.invert else ""
        for n, bit in _OPS:
            if i.check_set & bit:
                s += f" --{n}"
        if i.seconds:
            s += f" --seconds {i.seconds}"
        if i.check_set & REAP:
            s += " --reap"
        if i.hit_count:
            s += f" --hitcount {i.hit_count}"
        if i.check_set & TTL:
            s += " --rttl"
        s += f" --name {i.name} --mask {ntop(i.mask)}"
        return s + (" --rdest" if i.side_dest else " --rsource")

    def show(self, i: RecentInfo, family: int) -> str:
        s = (" !" if i.invert else "") + " recent:"
        for w, bit in (("SET", SET), ("CHECK", CHECK), ("UPDATE", UPDATE), ("REMOVE", REMOVE)):
            if i.check_set & bit:
                s += f" {w}"
        if i.seconds:
            s += f" seconds: {i.seconds}"
        if i.check_set & REAP:
            s += " reap"
        if i.hit_count:
            s += f" hit_count: {i.hit_count}"
        if i.check_set & TTL:
            s += " TTL-Match"
        s += f" name: {i.name} side: {'dest' if i.side_dest else 'source'}"
        return s + f" mask: {ntop(i.mask)}"

    def check(self, i: RecentInfo, kc: KernelCtx) -> None:
        cs = i.check_set
        if (cs & (SET | REMOVE)) and (i.seconds or i.hit_count or cs & (TTL | REAP)):
            raise OptionError("recent: --set and --remove take no --seconds, --hitcount, "
                              "--rttl or --reap")
        if cs & REAP and not i.seconds:
            raise OptionError("recent: --reap needs --seconds")
        if i.hit_count >= MAX_NSTAMPS:
            raise OptionError(f"recent: hitcount ({i.hit_count}) is larger than allowed "
                              f"maximum ({MAX_NSTAMPS - 1})")
        if not i.name or len(i.name) >= NAME_LEN or "/" in i.name or i.name in (".", ".."):
            raise OptionError(f"recent: bad list name '{i.name}'")

    def compile(self, i: RecentInfo, env: Env) -> Pred:
        key = f"recent/{i.name}"
        table = env.shared.get(key)
        want = (1 << (i.hit_count - 1).bit_length()) - 1 if i.hit_count else 31
        if table is None:
            table = env.shared[key] = _RecentTable(i.mask, want)
        elif want > table.mask_n:
            table.entries.clear()
            table.mask_n = want
        return table.pred(i)


class _Entry:
    """``struct recent_entry``: last TTL, the time-stamp ring, next slot, stamps used."""

    __slots__ = ("ttl", "stamps", "index", "nstamps")

    def __init__(self, ttl: int, size: int, now: int) -> None:
        self.ttl = ttl
        self.stamps = [0] * size
        self.stamps[0] = now
        self.index = 1
        self.nstamps = 1


class _RecentTable:
    """``struct recent_table``: masked address -> entry; dict order is the LRU order
    (oldest first)."""

    __slots__ = ("mask", "mask_n", "entries")

    def __init__(self, mask: bytes, mask_n: int) -> None:
        self.mask = mask
        self.mask_n = mask_n
        self.entries: dict[bytes, _Entry] = {}

    def pred(self, i: RecentInfo) -> Pred:
        cs, inv, seconds, hits = i.check_set, i.invert, i.seconds, i.hit_count
        use_dst = i.side_dest
        entries = self.entries

        def recent(pkt: Packet, ctx: Context) -> bool:
            ret = inv
            addr = pkt.dst if use_dst else pkt.src
            mask = self.mask if len(addr) == len(self.mask) else b"\xff" * len(addr)
            masked = apply_mask(addr, mask)
            ttl = pkt.ttl
            if ctx.out_iface is not None and ctx.hook in ("FORWARD", "POSTROUTING"):
                ttl = (ttl + 1) & 0xFF      # the TTL as seen before forwarding
            now = int(ctx.now * HZ)
            e = entries.get(masked)
            if e is not None and cs & TTL and not (ttl == e.ttl or e.ttl == 0):
                e = None
            if e is None:
                if not cs & SET:
                    return ret
                if len(entries) >= IP_LIST_TOT:
                    del entries[next(iter(entries))]
                entries[masked] = _Entry(ttl, self.mask_n + 1, now)
                return not ret
            if cs & SET:
                ret = not ret
            elif cs & REMOVE:
                del entries[masked]
                return not ret
            elif cs & (CHECK | UPDATE):
                t = now - seconds * HZ
                n = 0
                for k in range(e.nstamps):
                    if seconds and t > e.stamps[k]:
                        continue
                    n += 1
                    if not hits or n >= hits:
                        ret = not ret
                        break
                if cs & REAP:
                    oldest_key = next(iter(entries))
                    if not (oldest_key == masked and cs & UPDATE and ret):
                        old = entries[oldest_key]
                        if t > old.stamps[old.index - 1]:
                            del entries[oldest_key]
            if cs & SET or (cs & UPDATE and ret):
                entries.pop(masked, None)
                e.index &= self.mask_n
                e.stamps[e.index] = now
                e.index += 1
                if e.index > e.nstamps:
                    e.nstamps = e.index
                e.ttl = ttl
                entries[masked] = e
            return ret
        return recent


RECENT: Final = Recent()
