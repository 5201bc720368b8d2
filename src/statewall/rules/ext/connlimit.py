"""The connlimit match: how many tracked connections share the packet's (masked) address.

Owns: its options and save text, and the per-rule connection lists of
net/netfilter/nf_conncount.c: a key (source or destination address under the mask, and
the zone) maps to the tuples this rule has seen; before counting, entries whose connection
is gone from the tracker (or is a TCP connection in TIME_WAIT/CLOSE) are dropped, and the
packet's own connection is added if new. Follows iptables extensions/libxt_connlimit.c and
net/netfilter/xt_connlimit.c.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..addr import plen_mask
from ..errors import OptionError
from ..numbers import U32, uint
from .base import ARG_NONE, Env, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

_TCP_CLOSED: Final = (7, 8)        # TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE


@dataclass(frozen=True, slots=True)
class ConnlimitInfo:
    limit: int
    upto: bool           # XT_CONNLIMIT_INVERT: match when count <= limit
    plen: int
    daddr: bool


class Connlimit(MatchExt):
    name = "connlimit"
    options = (Opt("connlimit-upto", "upto", invert=True, excl=("above",)),
               Opt("connlimit-above", "above", invert=True, excl=("upto",)),
               Opt("connlimit-mask", "mask"),
               Opt("connlimit-saddr", "saddr", arg=ARG_NONE, excl=("daddr",)),
               Opt("connlimit-daddr", "daddr", arg=ARG_NONE, excl=("saddr",)))

    def build(self, seen: Seen, rc: RuleCtx) -> ConnlimitInfo:
        g = seen.get("upto") or seen.get("above")
        if g is None:
            raise OptionError('connlimit: you must specify "--connlimit-above" or '
                              '"--connlimit-upto"')
        limit = uint(g.arg, 0, U32, f"connlimit --{g.opt.name}")
        upto = (g.opt.id == "upto") != g.inv
        full = 32 if rc.family == 4 else 128
        plen = uint(seen.arg("mask"), 0, full, "connlimit --connlimit-mask") \
            if "mask" in seen else full
        return ConnlimitInfo(limit, upto, plen, "daddr" in seen)

    def save(self, i: ConnlimitInfo, family: int) -> str:
        return (f" --connlimit-{'upto' if i.upto else 'above'} {i.limit} --connlimit-mask "
                f"{i.plen} --connlimit-{'daddr' if i.daddr else 'saddr'}")

    def show(self, i: ConnlimitInfo, family: int) -> str:
        return (f" #conn {'dst' if i.daddr else 'src'}/{i.plen} {'<=' if i.upto else '>'} "
                f"{i.limit}")

    def compile(self, i: ConnlimitInfo, env: Env) -> Pred:
        mask = int.from_bytes(plen_mask(i.plen, env.family), "big")
        lists: dict[tuple[int, int], dict[Any, Any]] = {}
        limit, upto, daddr = i.limit, i.upto, i.daddr
        calls = [0]

        def collect(conns: dict[Any, Any], tracker: Any, now: float) -> None:
            """Drop connections no longer tracked, or closed TCP ones (``find_or_evict``);
            one added at this very moment is kept (not confirmed yet)."""
            if tracker is None:
                return
            for tup in list(conns):
                live = tracker.table.get(tup)
                if live is None or live.timeout <= now or \
                        (live.proto == 6 and live.state in _TCP_CLOSED):
                    if conns[tup] != now:
                        del conns[tup]

        def connlimit(pkt: Packet, ctx: Context) -> bool:
            ct = pkt.ct
            addr = pkt.dst if daddr else pkt.src
            zone = ct.zone if ct is not None else 0
            key = (int.from_bytes(addr, "big") & mask, zone)
            tracker = ctx.tracker
            now = ctx.now
            calls[0] += 1
            if calls[0] >= 4096:           # the kernel's background tree_gc_worker
                calls[0] = 0
                for k in list(lists):
                    collect(lists[k], tracker, now)
                    if not lists[k]:
                        del lists[k]
            conns = lists.get(key)
            if conns is None:
                conns = lists[key] = {}
            collect(conns, tracker, now)
            if ct is not None:
                tup = ct.orig
                if not (ct.proto == 6 and ct.state in _TCP_CLOSED) and tup not in conns:
                    conns[tup] = now
            count = len(conns)
            if not conns:
                del lists[key]
            return (count > limit) != upto
        return connlimit


CONNLIMIT: Final = Connlimit()
