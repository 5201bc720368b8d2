"""Small stateless matches: comment, length, ttl, hl, pkttype, addrtype, iprange.

Owns: their options, save text and packet tests. Follows iptables extensions/
libxt_comment.c, libxt_length.c, libipt_ttl.c, libip6t_hl.c, libxt_pkttype.c,
libxt_addrtype.c, libxt_iprange.c and the kernel's xt_length.c, xt_hl.c, xt_pkttype.c,
xt_addrtype.c (``inet_addr_type`` on the local routing table: the zero network and
255.255.255.255 are BROADCAST, 224/4 MULTICAST, the host's addresses and 127/8 LOCAL, its
subnet broadcasts BROADCAST, anything else UNICAST; IPv6 uses ``ipv6_addr_type``),
xt_iprange.c.

Not modelled (the rule is refused): addrtype types that need the host's routes
(ANYCAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT, XRESOLVE). ``--limit-iface-in``/
``--limit-iface-out`` are accepted; statewall knows the host's addresses, not which
interface holds each one, so the restriction to that interface is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..addr import ntop, parse_range
from ..errors import OptionError
from ..numbers import U8, U16, uint, uint_range
from ..quote import save_string
from .base import (ARG_NONE, H_IN, H_OUT, H_POST, H_PRE, Env, KernelCtx, MatchExt,
                   Opt, Pred, RuleCtx, Seen)

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context


# ------------------------------------------------------------------------------- comment
@dataclass(frozen=True, slots=True)
class CommentInfo:
    comment: str


class Comment(MatchExt):
    name = "comment"
    options = (Opt("comment", mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> CommentInfo:
        c = seen.arg("comment")
        if len(c.encode()) > 255:
            raise OptionError("comment: argument must have a maximum length of 255 "
                              "characters")
        return CommentInfo(c)

    def save(self, i: CommentInfo, family: int) -> str:
        return " --comment" + save_string(i.comment)

    def show(self, i: CommentInfo, family: int) -> str:
        return f" /* {i.comment} */"

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: CommentInfo, env: Env) -> Pred:
        return _true


def _true(pkt: Packet, ctx: Context) -> bool:
    return True


# -------------------------------------------------------------------------------- length
@dataclass(frozen=True, slots=True)
class LengthInfo:
    lo: int
    hi: int
    invert: bool


class Length(MatchExt):
    name = "length"
    options = (Opt("length", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> LengthInfo:
        lo, hi = uint_range(seen.arg("length"), U16, "length --length")
        return LengthInfo(lo, hi, seen.inv("length"))

    def _r(self, i: LengthInfo) -> str:
        return f"{i.lo}" if i.lo == i.hi else f"{i.lo}:{i.hi}"

    def save(self, i: LengthInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --length {self._r(i)}"

    def show(self, i: LengthInfo, family: int) -> str:
        return f" length {'!' if i.invert else ''}{self._r(i)}"

    def compile(self, i: LengthInfo, env: Env) -> Pred:
        lo, hi, inv = i.lo, i.hi, i.invert

        def length(pkt: Packet, ctx: Context) -> bool:
            return (lo <= len(pkt.buf) <= hi) != inv
        return length


# ------------------------------------------------------------------------------- ttl, hl
@dataclass(frozen=True, slots=True)
class TtlInfo:
    mode: str        # eq, ne, lt, gt
    value: int


_TTL_OPS: Final = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">"}


class Ttl(MatchExt):
    name = "ttl"
    family = 4
    word = "ttl"
    options = (Opt("ttl-eq", "op", invert=True), Opt("ttl-lt", "op"), Opt("ttl-gt", "op"))

    def build(self, seen: Seen, rc: RuleCtx) -> TtlInfo:
        g = seen.get("op")
        if g is None:
            raise OptionError(f"{self.name}: you must specify one of `--{self.word}-eq', "
                              f"`--{self.word}-lt', `--{self.word}-gt'")
        mode = g.opt.name.rsplit("-", 1)[1]
        if mode == "eq" and g.inv:
            mode = "ne"
        return TtlInfo(mode, uint(g.arg, 0, U8, f"{self.name} --{g.opt.name}"))

    def save(self, i: TtlInfo, family: int) -> str:
        if i.mode == "ne":
            return f" ! --{self.word}-eq {i.value}"
        return f" --{self.word}-{i.mode} {i.value}"

    def show(self, i: TtlInfo, family: int) -> str:
        w = self.word.upper()
        return f" {w} match {w} {_TTL_OPS[i.mode]} {i.value}"

    def compile(self, i: TtlInfo, env: Env) -> Pred:
        v = i.value
        if i.mode == "eq":
            return lambda pkt, ctx: pkt.ttl == v
        if i.mode == "ne":
            return lambda pkt, ctx: pkt.ttl != v
        if i.mode == "lt":
            return lambda pkt, ctx: pkt.ttl < v
        return lambda pkt, ctx: pkt.ttl > v


class Hl(Ttl):
    name = "hl"
    family = 6
    word = "hl"
    options = (Opt("hl-eq", "op", invert=True), Opt("hl-lt", "op"), Opt("hl-gt", "op"))


# ------------------------------------------------------------------------------- pkttype
# (name, PACKET_*) in libxt_pkttype.c order; the first name of a value is what save prints
PKTTYPES: Final = (("unicast", 0), ("broadcast", 1), ("multicast", 2), ("bcast", 1),
                   ("mcast", 2), ("for-us", 0), ("host", 0), ("otherhost", 3),
                   ("outgoing", 4), ("loopback", 5))
CTX_PKTTYPE: Final = {"host": 0, "broadcast": 1, "multicast": 2, "otherhost": 3,
                      "outgoing": 4, "loopback": 5}
_LBCAST: Final = b"\xff\xff\xff\xff"


@dataclass(frozen=True, slots=True)
class PkttypeInfo:
    type: int
    invert: bool


def _pkttype_name(t: int) -> str:
    return next(n for n, v in PKTTYPES if v == t)


class Pkttype(MatchExt):
    name = "pkttype"
    options = (Opt("pkt-type", "type", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> PkttypeInfo:
        a = seen.arg("type")
        for n, v in PKTTYPES:
            if n == a.lower():
                return PkttypeInfo(v, seen.inv("type"))
        raise OptionError(f"pkttype: bad packet type '{a}'")

    def save(self, i: PkttypeInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --pkt-type {_pkttype_name(i.type)}"

    def show(self, i: PkttypeInfo, family: int) -> str:
        return f" PKTTYPE {'!' if i.invert else ''}= {_pkttype_name(i.type)}"

    def compile(self, i: PkttypeInfo, env: Env) -> Pred:
        want, inv, v4 = i.type, i.invert, env.family == 4

        def pkttype(pkt: Packet, ctx: Context) -> bool:
            t = CTX_PKTTYPE.get(ctx.pkttype or "", -1)
            if t < 0:
                d = pkt.dst
                if (d[0] & 0xF0 == 0xE0) if v4 else d[0] == 0xFF:
                    t = 2
                elif v4 and (d == _LBCAST or d in ctx.broadcast_addrs):
                    t = 1
                else:
                    t = 0
            elif t == 5:                       # PACKET_LOOPBACK
                d = pkt.dst
                t = 2 if (not v4 or d[0] & 0xF0 == 0xE0) else 1
            return (t == want) != inv
        return pkttype


# ------------------------------------------------------------------------------ addrtype
RTN_NAMES: Final = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
                    "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")
T_UNSPEC, T_UNICAST, T_LOCAL, T_BROADCAST = 1, 2, 4, 8
T_MULTICAST: Final = 32
_MODELLED: Final = T_UNSPEC | T_UNICAST | T_LOCAL | T_BROADCAST | T_MULTICAST


def _rtn_mask(text: str, what: str) -> int:
    mask = 0
    for word in text.split(","):
        for bit, name in enumerate(RTN_NAMES):
            if word and name.lower().startswith(word.lower()):
                mask |= 1 << bit
                break
        else:
            raise OptionError(f'addrtype: bad value for "{what}": "{word}"')
    return mask


def _rtn_text(mask: int) -> str:
    return ",".join(n for b, n in enumerate(RTN_NAMES) if mask & (1 << b))


@dataclass(frozen=True, slots=True)
class AddrtypeInfo:
    source: int
    dest: int
    inv_source: bool
    inv_dest: bool
    iface_in: bool
    iface_out: bool


class Addrtype(MatchExt):
    name = "addrtype"
    options = (Opt("src-type", invert=True), Opt("dst-type", invert=True),
               Opt("limit-iface-in", arg=ARG_NONE, excl=("limit-iface-out",)),
               Opt("limit-iface-out", arg=ARG_NONE, excl=("limit-iface-in",)))

    def build(self, seen: Seen, rc: RuleCtx) -> AddrtypeInfo:
        if "src-type" not in seen and "dst-type" not in seen:
            raise OptionError("addrtype: you must specify --src-type or --dst-type")
        src = _rtn_mask(seen.arg("src-type"), "--src-type") if "src-type" in seen else 0
        dst = _rtn_mask(seen.arg("dst-type"), "--dst-type") if "dst-type" in seen else 0
        unknown = (src | dst) & ~_MODELLED
        if unknown:
            raise OptionError(f"addrtype: type {_rtn_text(unknown)} depends on the host's "
                              "routes, which statewall does not model")
        return AddrtypeInfo(src, dst, seen.inv("src-type"), seen.inv("dst-type"),
                            "limit-iface-in" in seen, "limit-iface-out" in seen)

    def save(self, i: AddrtypeInfo, family: int) -> str:
        s = ""
        if i.source:
            s += f"{' !' if i.inv_source else ''} --src-type {_rtn_text(i.source)}"
        if i.dest:
            s += f"{' !' if i.inv_dest else ''} --dst-type {_rtn_text(i.dest)}"
        if i.iface_in:
            s += " --limit-iface-in"
        if i.iface_out:
            s += " --limit-iface-out"
        return s

    def show(self, i: AddrtypeInfo, family: int) -> str:
        s = " ADDRTYPE match"
        if i.source:
            s += f" src-type {'!' if i.inv_source else ''}{_rtn_text(i.source)}"
        if i.dest:
            s += f" dst-type {'!' if i.inv_dest else ''}{_rtn_text(i.dest)}"
        if i.iface_in:
            s += " limit-in"
        if i.iface_out:
            s += " limit-out"
        return s

    def check(self, i: AddrtypeInfo, kc: KernelCtx) -> None:
        if kc.hook_mask & (H_PRE | H_IN) and i.iface_out:
            raise OptionError("addrtype: output interface limitation not valid in "
                              "PREROUTING and INPUT")
        if kc.hook_mask & (H_POST | H_OUT) and i.iface_in:
            raise OptionError("addrtype: input interface limitation not valid in "
                              "POSTROUTING and OUTPUT")
        if kc.family == 6 and (i.source | i.dest) & T_BROADCAST:
            raise OptionError("addrtype: ipv6 does not support BROADCAST matching")

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: AddrtypeInfo, env: Env) -> Pred:
        classify = _type4 if env.family == 4 else None
        src, dst, isrc, idst = i.source, i.dest, i.inv_source, i.inv_dest

        if classify is not None:
            def addrtype4(pkt: Packet, ctx: Context) -> bool:
                if src and (src & _type4(pkt.src, ctx) == 0) != isrc:
                    return False
                if dst and (dst & _type4(pkt.dst, ctx) == 0) != idst:
                    return False
                return True
            return addrtype4

        def addrtype6(pkt: Packet, ctx: Context) -> bool:
            if src and _match6(pkt.src, src, ctx) == isrc:
                return False
            if dst and _match6(pkt.dst, dst, ctx) == idst:
                return False
            return True
        return addrtype6


def _type4(a: bytes, ctx: Context) -> int:
    """``inet_addr_type`` as a bit (1 << RTN_*)."""
    if a[0] == 0 or a == _LBCAST:
        return T_BROADCAST
    if a[0] & 0xF0 == 0xE0:
        return T_MULTICAST
    if a in ctx.local_addrs or a[0] == 127:
        return T_LOCAL
    if a in ctx.broadcast_addrs:
        return T_BROADCAST
    return T_UNICAST


_V6_LOOPBACK: Final = bytes(15) + b"\x01"


def _match6(a: bytes, mask: int, ctx: Context) -> bool:
    """xt_addrtype ``match_type6``: every asked property must hold."""
    any_ = a == bytes(16)
    mcast = a[0] == 0xFF
    mapped = a[:10] == bytes(10) and a[10:12] == b"\xff\xff"
    unicast = not any_ and not mcast and not mapped
    if mask & T_MULTICAST and not mcast:
        return False
    if mask & T_UNICAST and not unicast:
        return False
    if mask & T_UNSPEC and not any_:
        return False
    if mask & T_LOCAL:
        return a in ctx.local_addrs or a == _V6_LOOPBACK
    return True


# ------------------------------------------------------------------------------- iprange
@dataclass(frozen=True, slots=True)
class IprangeInfo:
    src: tuple[bytes, bytes] | None
    dst: tuple[bytes, bytes] | None
    inv_src: bool
    inv_dst: bool


class Iprange(MatchExt):
    name = "iprange"
    options = (Opt("src-range", invert=True), Opt("dst-range", invert=True))

    def build(self, seen: Seen, rc: RuleCtx) -> IprangeInfo:
        if not seen:
            raise OptionError("iprange: you must specify `--src-range' or `--dst-range'")
        src = parse_range(seen.arg("src-range"), rc.family, "iprange --src-range") \
            if "src-range" in seen else None
        dst = parse_range(seen.arg("dst-range"), rc.family, "iprange --dst-range") \
            if "dst-range" in seen else None
        return IprangeInfo(src, dst, seen.inv("src-range"), seen.inv("dst-range"))

    def save(self, i: IprangeInfo, family: int) -> str:
        s = ""
        if i.src:
            s += f"{' !' if i.inv_src else ''} --src-range {ntop(i.src[0])}-{ntop(i.src[1])}"
        if i.dst:
            s += f"{' !' if i.inv_dst else ''} --dst-range {ntop(i.dst[0])}-{ntop(i.dst[1])}"
        return s

    def show(self, i: IprangeInfo, family: int) -> str:
        s = ""
        if i.src:
            s += (f" source IP range{' !' if i.inv_src else ''} "
                  f"{ntop(i.src[0])}-{ntop(i.src[1])}")
        if i.dst:
            s += (f" destination IP range{' !' if i.inv_dst else ''} "
                  f"{ntop(i.dst[0])}-{ntop(i.dst[1])}")
        return s

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: IprangeInfo, env: Env) -> Pred:
        src, dst, isrc, idst = i.src, i.dst, i.inv_src, i.inv_dst

        def iprange(pkt: Packet, ctx: Context) -> bool:
            if src is not None and (src[0] <= pkt.src <= src[1]) == isrc:
                return False
            if dst is not None and (dst[0] <= pkt.dst <= dst[1]) == idst:
                return False
            return True
        return iprange


COMMENT: Final = Comment()
LENGTH: Final = Length()
TTL: Final = Ttl()
HL: Final = Hl()
PKTTYPE: Final = Pkttype()
ADDRTYPE: Final = Addrtype()
IPRANGE: Final = Iprange()
