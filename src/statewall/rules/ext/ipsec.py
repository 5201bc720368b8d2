"""IPsec header matches: esp and ah (SPI ranges; IPv6 ah also --ahlen/--ahres).

Owns: their options, save/listing text and tests. Follows iptables extensions/
libxt_esp.c, libipt_ah.c, libip6t_ah.c and net/netfilter/xt_esp.c, ipv4/netfilter/ipt_ah.c,
ipv6/netfilter/ip6t_ah.c (IPv4 needs ``-p esp``/``-p ah``; IPv6 ah finds the AH extension
header itself, anywhere in the chain; a header cut short hot-drops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..numbers import U32, uint, uint_range
from .base import ARG_NONE, Env, HotDrop, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

FULL: Final = (0, U32)


@dataclass(frozen=True, slots=True)
class SpiInfo:
    spis: tuple[int, int]
    invert: bool
    hdrlen: int = 0
    len_inv: bool = False
    res: bool = False


def _spi_save(opt: str, i: SpiInfo) -> str:
    if i.spis == FULL and not i.invert:
        return ""
    lo, hi = i.spis
    return f"{' !' if i.invert else ''} --{opt} {lo}" + (f":{hi}" if lo != hi else "")


def _spi_show(name: str, i: SpiInfo) -> str:
    lo, hi = i.spis
    if i.spis == FULL and not i.invert:
        return ""
    inv = "!" if i.invert else ""
    return f"{name}:{inv}{lo}" if lo == hi else f"{name}s:{inv}{lo}:{hi}"


class Esp(MatchExt):
    name = "esp"
    proto = 50
    options = (Opt("espspi", invert=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> SpiInfo:
        spis = uint_range(seen.arg("espspi"), U32, "esp --espspi") if "espspi" in seen \
            else FULL
        return SpiInfo(spis, seen.inv("espspi"))

    def save(self, i: SpiInfo, family: int) -> str:
        return _spi_save("espspi", i)

    def show(self, i: SpiInfo, family: int) -> str:
        return " esp" + (" " + _spi_show("spi", i) if _spi_show("spi", i) else "")

    def compile(self, i: SpiInfo, env: Env) -> Pred:
        lo, hi, inv = i.spis[0], i.spis[1], i.invert

        def esp(pkt: Packet, ctx: Context) -> bool:
            if pkt.fragoff:
                return False
            b, o = pkt.buf, pkt.l4off
            if len(b) - o < 8:
                raise HotDrop("esp: header cut short")
            spi = int.from_bytes(b[o:o + 4], "big")
            return (lo <= spi <= hi) != inv
        return esp


class Ah(MatchExt):
    name = "ah"
    family = 4
    proto = 51
    options: tuple[Opt, ...] = (Opt("ahspi", invert=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> SpiInfo:
        spis = uint_range(seen.arg("ahspi"), U32, "ah --ahspi") if "ahspi" in seen else FULL
        hdrlen = uint(seen.arg("ahlen"), 0, U32, "ah --ahlen") if "ahlen" in seen else 0
        return SpiInfo(spis, seen.inv("ahspi"), hdrlen, seen.inv("ahlen"), "ahres" in seen)

    def save(self, i: SpiInfo, family: int) -> str:
        s = _spi_save("ahspi", i)
        if i.hdrlen or i.len_inv:
            s += f"{' !' if i.len_inv else ''} --ahlen {i.hdrlen}"
        if i.res:
            s += " --ahres"
        return s

    def show(self, i: SpiInfo, family: int) -> str:
        s = " ah"
        spi = _spi_show("spi", i)
        if spi:
            s += " " + spi
        if i.hdrlen or i.len_inv:
            s += f"{'' if spi else ' '}length:{'!' if i.len_inv else ''}{i.hdrlen}"
        if s == " ah":
            s += " "                    # libipt_ah prints " ah " before the (empty) spis
        if i.res:
            s += " reserved"
        return s

    def compile(self, i: SpiInfo, env: Env) -> Pred:
        lo, hi, inv = i.spis[0], i.spis[1], i.invert
        v6 = env.family == 6
        hdrlen, len_inv, res = i.hdrlen, i.len_inv, i.res

        def ah(pkt: Packet, ctx: Context) -> bool:
            b = pkt.buf
            if v6:
                o = _find_ah6(b)
                if o < 0:
                    return False
                if len(b) - o < 12:
                    raise HotDrop("ah: header cut short")
                if not (lo <= int.from_bytes(b[o + 4:o + 8], "big") <= hi) != inv:
                    return False
                if hdrlen and ((b[o + 1] + 2) * 4 == hdrlen) == len_inv:
                    return False
                return not (res and (b[o + 2] or b[o + 3]))
            if pkt.fragoff:
                return False
            o = pkt.l4off
            if len(b) - o < 12:
                raise HotDrop("ah: header cut short")
            return (lo <= int.from_bytes(b[o + 4:o + 8], "big") <= hi) != inv
        return ah


class Ah6(Ah):
    family = 6
    proto = 0
    options = (Opt("ahspi", invert=True), Opt("ahlen", invert=True),
               Opt("ahres", arg=ARG_NONE))


def _find_ah6(b: bytes) -> int:
    """``ipv6_find_hdr(NEXTHDR_AUTH)``: the offset of the AH header or -1."""
    nxt, off = b[6], 40
    while nxt in (0, 43, 44, 51, 60):
        if nxt == 51:
            return off
        if len(b) < off + 8:
            return -1
        if nxt == 44:
            if (b[off + 2] << 8 | b[off + 3]) & 0xFFF8:
                return -1                        # a non-first fragment: no header here
            step = 8
        else:
            step = (b[off + 1] + 1) * 8
        nxt, off = b[off], off + step
    return -1


ESP: Final = Esp()
AH: Final = Ah()
AH6: Final = Ah6()
