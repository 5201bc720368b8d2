"""Port matches: tcp, udp, multiport.

Owns: their options, iptables-save text and packet tests. Must not know: other matches.
Follows iptables extensions/libxt_tcp.c, libxt_udp.c, libxt_multiport.c (parsing, save)
and net/netfilter/xt_tcpudp.c, xt_multiport.c (matching, hot-drops: a TCP fragment at
offset 8 bytes, a header cut short).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..native import OP_MULTIPORT, OP_PORTS, mark
from ..errors import OptionError
from ..numbers import U16, port, port_range, uint, uint_range
from . import l4
from .base import ARG_NONE, Env, Given, HotDrop, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

FULL: Final = (0, U16)

# libxt_tcp.c tcp_flag_names (ALL is FIN..URG; ECE/CWR have no names)
TCP_FLAG_NAMES: Final = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08),
                         ("ACK", 0x10), ("URG", 0x20), ("ALL", 0x3F), ("NONE", 0))


def _flags(text: str) -> int:
    v = 0
    for word in text.split(","):
        for name, bit in TCP_FLAG_NAMES:
            if name.lower() == word.lower():
                v |= bit
                break
        else:
            raise OptionError(f"tcp: unknown TCP flag `{word}'")
    return v


def flags_text(v: int) -> str:
    out = [name for name, bit in TCP_FLAG_NAMES[:6] if v & bit]
    return ",".join(out) if out else "NONE"


def _ports_save(opt: str, rng: tuple[int, int], inv: bool) -> str:
    if rng == FULL and not inv:
        return ""
    s = f"{rng[0]}" if rng[0] == rng[1] else f"{rng[0]}:{rng[1]}"
    return f"{' !' if inv else ''} --{opt} {s}"


def _ports_show(what: str, rng: tuple[int, int], inv: bool) -> str:
    if rng == FULL and not inv:
        return ""
    if rng[0] == rng[1]:
        return f" {what}:{'!' if inv else ''}{rng[0]}"
    return f" {what}s:{'!' if inv else ''}{rng[0]}:{rng[1]}"


def _in(lo: int, hi: int, inv: bool) -> Any:
    """A port test as a tiny closure factory input (None when it always passes)."""
    if (lo, hi) == FULL and not inv:
        return None
    return (lo, hi, inv)


# ---------------------------------------------------------------------------------- tcp
@dataclass(frozen=True, slots=True)
class TcpInfo:
    spts: tuple[int, int] = FULL
    dpts: tuple[int, int] = FULL
    sinv: bool = False
    dinv: bool = False
    option: int = 0
    oinv: bool = False
    flg_mask: int = 0
    flg_cmp: int = 0
    finv: bool = False


class Tcp(MatchExt):
    name = "tcp"
    proto = 6
    options = (
        Opt("source-port", "sport", invert=True), Opt("sport", "sport", invert=True),
        Opt("destination-port", "dport", invert=True), Opt("dport", "dport", invert=True),
        Opt("syn", "flags", arg=ARG_NONE, invert=True),
        Opt("tcp-flags", "flags", invert=True, extra=1),
        Opt("tcp-option", "option", invert=True),
    )

    def build(self, seen: Seen, rc: RuleCtx) -> TcpInfo:
        kw: dict[str, Any] = {}
        for g in seen.items:
            key = g.opt.id
            if key == "sport":
                kw["spts"] = port_range(g.arg, "tcp", "tcp --sport")
                kw["sinv"] = g.inv
            elif key == "dport":
                kw["dpts"] = port_range(g.arg, "tcp", "tcp --dport")
                kw["dinv"] = g.inv
            elif key == "flags":
                if g.opt.name == "syn":
                    kw["flg_mask"], kw["flg_cmp"] = 0x17, 0x02
                else:
                    mask, _, comp = g.arg.partition(" ")
                    kw["flg_mask"], kw["flg_cmp"] = _flags(mask), _flags(comp)
                kw["finv"] = g.inv
            elif key == "option":
                try:
                    kw["option"] = uint(g.arg, 1, 255, "tcp --tcp-option")
                except OptionError:
                    raise OptionError(f"tcp: bad TCP option `{g.arg}'") from None
                kw["oinv"] = g.inv
        return TcpInfo(**kw)

    def save(self, i: TcpInfo, family: int) -> str:
        s = _ports_save("sport", i.spts, i.sinv) + _ports_save("dport", i.dpts, i.dinv)
        if i.option or i.oinv:
            s += f"{' !' if i.oinv else ''} --tcp-option {i.option}"
        if i.flg_mask or i.finv:
            s += (f"{' !' if i.finv else ''} --tcp-flags {flags_text(i.flg_mask)} "
                  f"{flags_text(i.flg_cmp)}")
        return s

    def show(self, i: TcpInfo, family: int) -> str:
        s = " tcp" + _ports_show("spt", i.spts, i.sinv) + _ports_show("dpt", i.dpts, i.dinv)
        if i.option or i.oinv:
            s += f" option={'!' if i.oinv else ''}{i.option}"
        if i.flg_mask or i.finv:
            s += f" flags:{'!' if i.finv else ''}0x{i.flg_mask:02X}/0x{i.flg_cmp:02X}"
        return s

    def flow_stable(self, info: Any) -> bool:
        return not (info.flg_mask or info.finv or info.option or info.oinv)   # ports only

    def compile(self, i: TcpInfo, env: Env) -> Pred:
        fn = self._compile(i)
        if i.option or i.oinv:
            return fn
        return mark(fn, OP_PORTS, *i.spts, i.sinv, *i.dpts, i.dinv, i.flg_mask, i.flg_cmp,
                    i.finv)

    @staticmethod
    def _compile(i: TcpInfo) -> Pred:
        sp = _in(*i.spts, i.sinv)
        dp = _in(*i.dpts, i.dinv)
        fmask, fcmp, finv = i.flg_mask, i.flg_cmp, i.finv
        option, oinv = i.option, i.oinv
        check_flags = fmask != 0 or finv
        def full(pkt: Packet, ctx: Context) -> bool:
            if pkt.fragoff:
                if pkt.fragoff == 8:
                    raise HotDrop("tcp: fragment at offset 8")
                return False
            if pkt.l4err is None:
                sport, dport, flags = pkt.sport, pkt.dport, pkt.flags
            else:
                if not l4.have(pkt, 20):
                    raise HotDrop("tcp: header cut short")
                b, o = pkt.buf, pkt.l4off
                sport, dport, flags = b[o] << 8 | b[o + 1], b[o + 2] << 8 | b[o + 3], b[o + 13]
            if sp is not None and (sp[0] <= sport <= sp[1]) == sp[2]:
                return False
            if dp is not None and (dp[0] <= dport <= dp[1]) == dp[2]:
                return False
            if check_flags and ((flags & fmask) == fcmp) == finv:
                return False
            if option:
                return _find_option(pkt, option, oinv)
            return True
        # fast paths for the common shapes; anything unusual goes through full()
        if sp is None and not option:
            if not check_flags and dp is not None and not dp[2]:
                lo, hi = dp[0], dp[1]

                def dport_only(pkt: Packet, ctx: Context) -> bool:
                    if pkt.fragoff or pkt.l4err is not None:
                        return full(pkt, ctx)
                    return bool(lo <= pkt.dport <= hi)
                return dport_only

            def dport_flags(pkt: Packet, ctx: Context) -> bool:
                if pkt.fragoff or pkt.l4err is not None:
                    return full(pkt, ctx)
                if dp is not None and (dp[0] <= pkt.dport <= dp[1]) == dp[2]:
                    return False
                return ((pkt.flags & fmask) == fcmp) != finv
            return dport_flags
        return full


def _find_option(pkt: Packet, option: int, invert: bool) -> bool:
    """``tcp_find_option``: walk the options area by kind/length bytes."""
    b, o = pkt.buf, pkt.l4off
    doff = (b[o + 12] >> 4) * 4
    if doff < 20:
        raise HotDrop("tcp: data offset below 20")
    optlen = doff - 20
    if not optlen:
        return invert
    start = o + 20
    if len(b) < start + optlen:
        raise HotDrop("tcp: options cut short")
    i = 0
    while i < optlen:
        kind = b[start + i]
        if kind == option:
            return not invert
        if kind < 2:
            i += 1
        else:
            step = b[start + i + 1] if i + 1 < optlen else 0
            i += step or 1
    return invert


# ---------------------------------------------------------------------------------- udp
@dataclass(frozen=True, slots=True)
class UdpInfo:
    spts: tuple[int, int] = FULL
    dpts: tuple[int, int] = FULL
    sinv: bool = False
    dinv: bool = False


class Udp(MatchExt):
    name = "udp"
    proto = 17
    options = (
        Opt("source-port", "sport", invert=True), Opt("sport", "sport", invert=True),
        Opt("destination-port", "dport", invert=True), Opt("dport", "dport", invert=True),
    )

    def build(self, seen: Seen, rc: RuleCtx) -> UdpInfo:
        kw: dict[str, Any] = {}
        for g in seen.items:
            if g.opt.id == "sport":
                kw["spts"] = port_range(g.arg, "udp", "udp --sport")
                kw["sinv"] = g.inv
            else:
                kw["dpts"] = port_range(g.arg, "udp", "udp --dport")
                kw["dinv"] = g.inv
        return UdpInfo(**kw)

    def save(self, i: UdpInfo, family: int) -> str:
        return _ports_save("sport", i.spts, i.sinv) + _ports_save("dport", i.dpts, i.dinv)

    def show(self, i: UdpInfo, family: int) -> str:
        return " udp" + _ports_show("spt", i.spts, i.sinv) + _ports_show("dpt", i.dpts, i.dinv)

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: UdpInfo, env: Env) -> Pred:
        sp = _in(*i.spts, i.sinv)
        dp = _in(*i.dpts, i.dinv)

        def udp(pkt: Packet, ctx: Context) -> bool:
            if pkt.fragoff:
                return False
            if pkt.l4err is None:
                sport, dport = pkt.sport, pkt.dport
            else:
                if not l4.have(pkt, 8):
                    raise HotDrop("udp: header cut short")
                p = l4.ports(pkt)
                assert p is not None
                sport, dport = p
            if sp is not None and (sp[0] <= sport <= sp[1]) == sp[2]:
                return False
            if dp is not None and (dp[0] <= dport <= dp[1]) == dp[2]:
                return False
            return True
        return mark(udp, OP_PORTS, *i.spts, i.sinv, *i.dpts, i.dinv, 0, 0, False)


# ---------------------------------------------------------------------------- multiport
MULTI_PROTOS: Final = {6: "tcp", 17: "udp", 136: "udplite", 132: "sctp", 33: "dccp"}
XT_MULTI_PORTS: Final = 15


@dataclass(frozen=True, slots=True)
class MultiportInfo:
    which: str                                   # sports, dports, ports
    ports: tuple[tuple[int, int, bool], ...]     # (lo, hi, written as a range)
    invert: bool


def _check_proto(g: Given) -> str:
    if g.proto_inv:
        raise OptionError("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
    name = MULTI_PROTOS.get(g.proto)
    if name is None:
        if not g.proto:
            raise OptionError("multiport needs `-p tcp', `-p udp', `-p udplite', "
                              "`-p sctp' or `-p dccp'")
        raise OptionError("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
    return name


class Multiport(MatchExt):
    name = "multiport"
    _ANY: Final = ("sports", "dports", "ports")
    options = (
        Opt("source-ports", "sports", invert=True, excl=_ANY),
        Opt("sports", "sports", invert=True, excl=_ANY),
        Opt("destination-ports", "dports", invert=True, excl=_ANY),
        Opt("dports", "dports", invert=True, excl=_ANY),
        Opt("ports", "ports", invert=True, excl=_ANY),
    )

    def build(self, seen: Seen, rc: RuleCtx) -> MultiportInfo:
        if not seen:
            raise OptionError("multiport: no ports specified")
        g = seen.items[0]
        proto = _check_proto(g)
        items: list[tuple[int, int, bool]] = []
        slots = 0
        for word in g.arg.split(","):
            if slots >= XT_MULTI_PORTS:
                raise OptionError("multiport: too many ports specified")
            if ":" in word:
                if slots == XT_MULTI_PORTS - 1:
                    raise OptionError("multiport: too many ports specified")
                a, b = word.split(":", 1)
                lo = _port(a, proto)
                hi = _port(b, proto)
                if lo >= hi:
                    raise OptionError("multiport: invalid portrange specified")
                items.append((lo, hi, True))
                slots += 2
            else:
                p = _port(word, proto)
                items.append((p, p, False))
                slots += 1
        return MultiportInfo(g.opt.id, tuple(items), g.inv)

    def save(self, i: MultiportInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --{i.which} {_plist(i)}"

    def show(self, i: MultiportInfo, family: int) -> str:
        return f" multiport {i.which} {' !' if i.invert else ''}{_plist(i)}"

    def check(self, i: MultiportInfo, kc: Any) -> None:
        if kc.ip.proto not in MULTI_PROTOS or kc.ip.inv & 0x40:
            raise OptionError("multiport: only valid for TCP, UDP, UDP-Lite, SCTP and DCCP")

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: MultiportInfo, env: Env) -> Pred:
        ranges = tuple((lo, hi) for lo, hi, _ in i.ports)
        src = i.which in ("sports", "ports")
        dst = i.which in ("dports", "ports")
        inv = i.invert

        singles = frozenset(lo for lo, hi, rng in i.ports if not rng)
        spans = tuple((lo, hi) for lo, hi, rng in i.ports if rng)
        del ranges

        def multiport(pkt: Packet, ctx: Context) -> bool:
            if pkt.fragoff:
                return False
            if pkt.l4err is None:
                sport, dport = pkt.sport, pkt.dport
            else:
                p = l4.ports(pkt)
                if p is None:
                    raise HotDrop("multiport: header cut short")
                sport, dport = p
            if (dst and dport in singles) or (src and sport in singles):
                return not inv
            for lo, hi in spans:
                if (src and lo <= sport <= hi) or (dst and lo <= dport <= hi):
                    return not inv
            return inv
        return mark(multiport, OP_MULTIPORT, src, dst, tuple((lo, hi) for lo, hi, _ in i.ports),
                    inv)


def _port(text: str, proto: str) -> int:
    return port(text, proto, "multiport")


def _plist(i: MultiportInfo) -> str:
    return ",".join(f"{lo}:{hi}" if rng else f"{lo}" for lo, hi, rng in i.ports)


# ------------------------------------------------------------------------------ tcpmss
@dataclass(frozen=True, slots=True)
class TcpmssInfo:
    lo: int
    hi: int
    invert: bool


class Tcpmss(MatchExt):
    """libxt_tcpmss.c / xt_tcpmss.c: the MSS option's value (no option: the inverse)."""

    name = "tcpmss"
    proto = 6
    options = (Opt("mss", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> TcpmssInfo:
        lo, hi = uint_range(seen.arg("mss"), U16, "tcpmss --mss")
        return TcpmssInfo(lo, hi, seen.inv("mss"))

    def _r(self, i: TcpmssInfo) -> str:
        return f"{i.lo}" if i.lo == i.hi else f"{i.lo}:{i.hi}"

    def save(self, i: TcpmssInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --mss {self._r(i)}"

    def show(self, i: TcpmssInfo, family: int) -> str:
        return f" tcpmss match {'!' if i.invert else ''}{self._r(i)}"

    def compile(self, i: TcpmssInfo, env: Env) -> Pred:
        lo, hi, inv = i.lo, i.hi, i.invert

        def tcpmss(pkt: Packet, ctx: Context) -> bool:
            b, o = pkt.buf, pkt.l4off
            if len(b) - o < 20:
                raise HotDrop("tcpmss: header cut short")
            doff = (b[o + 12] >> 4) * 4
            if doff < 20:
                raise HotDrop("tcpmss: data offset below 20")
            optlen = doff - 20
            start = o + 20
            if optlen and len(b) < start + optlen:
                raise HotDrop("tcpmss: options cut short")
            k = 0
            while k < optlen:
                kind = b[start + k]
                if kind == 2 and optlen - k >= 4 and b[start + k + 1] == 4:
                    mss = b[start + k + 2] << 8 | b[start + k + 3]
                    return (lo <= mss <= hi) != inv
                if kind < 2:
                    k += 1
                else:
                    k += (b[start + k + 1] if k + 1 < optlen else 0) or 1
            return inv
        return tcpmss


TCP: Final = Tcp()
TCPMSS: Final = Tcpmss()
UDP: Final = Udp()
MULTIPORT: Final = Multiport()
