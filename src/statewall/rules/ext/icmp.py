"""ICMP type matches: icmp (IPv4) and icmp6 (IPv6).

Owns: the type/code name tables, ``--icmp-type`` / ``--icmpv6-type`` parsing
(``type[/code[:code]]`` or a name, case-insensitive, unambiguous prefixes accepted) and
save text, the packet test. Follows iptables extensions/libipt_icmp.c, libip6t_icmp6.c and
net/ipv4/netfilter/ip_tables.c ``icmp_match``, net/ipv6/netfilter/ip6_tables.c
``icmp6_match`` (non-first fragments never match, a header cut short hot-drops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..errors import OptionError
from ..numbers import U8, uint
from .base import Env, HotDrop, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

# (name, type, code_min, code_max) - libipt_icmp.c icmp_codes
ICMP_NAMES: Final = (
    ("any", 0xFF, 0, 0xFF),
    ("echo-reply", 0, 0, 0xFF), ("pong", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF),
    ("network-unreachable", 3, 0, 0), ("host-unreachable", 3, 1, 1),
    ("protocol-unreachable", 3, 2, 2), ("port-unreachable", 3, 3, 3),
    ("fragmentation-needed", 3, 4, 4), ("source-route-failed", 3, 5, 5),
    ("network-unknown", 3, 6, 6), ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9), ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11), ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13), ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15),
    ("source-quench", 4, 0, 0xFF),
    ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0), ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2), ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 0xFF), ("ping", 8, 0, 0xFF),
    ("router-advertisement", 9, 0, 0xFF),
    ("router-solicitation", 10, 0, 0xFF),
    ("time-exceeded", 11, 0, 0xFF), ("ttl-exceeded", 11, 0, 0xFF),
    ("ttl-zero-during-transit", 11, 0, 0), ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xFF),
    ("ip-header-bad", 12, 0, 0), ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 0xFF),
    ("timestamp-reply", 14, 0, 0xFF),
    ("address-mask-request", 17, 0, 0xFF),
    ("address-mask-reply", 18, 0, 0xFF),
)

# libip6t_icmp6.c icmpv6_codes
ICMPV6_NAMES: Final = (
    ("destination-unreachable", 1, 0, 0xFF),
    ("no-route", 1, 0, 0), ("communication-prohibited", 1, 1, 1),
    ("beyond-scope", 1, 2, 2), ("address-unreachable", 1, 3, 3),
    ("port-unreachable", 1, 4, 4), ("failed-policy", 1, 5, 5), ("reject-route", 1, 6, 6),
    ("packet-too-big", 2, 0, 0xFF),
    ("time-exceeded", 3, 0, 0xFF), ("ttl-exceeded", 3, 0, 0xFF),
    ("ttl-zero-during-transit", 3, 0, 0), ("ttl-zero-during-reassembly", 3, 1, 1),
    ("parameter-problem", 4, 0, 0xFF),
    ("bad-header", 4, 0, 0), ("unknown-header-type", 4, 1, 1), ("unknown-option", 4, 2, 2),
    ("echo-request", 128, 0, 0xFF), ("ping", 128, 0, 0xFF),
    ("echo-reply", 129, 0, 0xFF), ("pong", 129, 0, 0xFF),
    ("mld-listener-query", 130, 0, 0xFF),
    ("mld-listener-report", 131, 0, 0xFF),
    ("mld-listener-done", 132, 0, 0xFF), ("mld-listener-reduction", 132, 0, 0xFF),
    ("router-solicitation", 133, 0, 0xFF),
    ("router-advertisement", 134, 0, 0xFF),
    ("neighbour-solicitation", 135, 0, 0xFF), ("neighbor-solicitation", 135, 0, 0xFF),
    ("neighbour-advertisement", 136, 0, 0xFF), ("neighbor-advertisement", 136, 0, 0xFF),
    ("redirect", 137, 0, 0xFF),
)


def parse_type(text: str, names: tuple[tuple[str, int, int, int], ...],
               what: str) -> tuple[int, int, int]:
    """A name (or an unambiguous prefix of one), or ``type[/code[:code]]``."""
    found = None
    for entry in names:
        if text and entry[0].lower().startswith(text.lower()):
            if entry[0].lower() == text.lower():
                found = entry
                break
            if found is not None:
                raise OptionError(f"{what}: ambiguous ICMP type `{text}': "
                                  f"`{found[0]}' or `{entry[0]}'?")
            found = entry
    if found is not None:
        return found[1], found[2], found[3]
    t, slash, code = text.partition("/")
    try:
        typ = uint(t, 0, U8, what)
    except OptionError:
        raise OptionError(f"{what}: invalid ICMP type `{t}'") from None
    if not slash:
        return typ, 0, 0xFF
    lo_s, colon, hi_s = code.partition(":")
    try:
        lo = uint(lo_s, 0, U8, what)
        hi = uint(hi_s, 0, U8, what) if colon else lo
    except OptionError:
        raise OptionError(f"{what}: invalid ICMP code `{code}'") from None
    if lo > hi:
        raise OptionError(f"{what}: invalid ICMP code range `{code}'")
    return typ, lo, hi


@dataclass(frozen=True, slots=True)
class IcmpInfo:
    type: int
    code_min: int
    code_max: int
    invert: bool


def _code_text(i: IcmpInfo) -> str:
    if i.code_min == 0 and i.code_max == 0xFF:
        return ""
    if i.code_min == i.code_max:
        return f"/{i.code_min}"
    return f"/{i.code_min}:{i.code_max}"


class Icmp(MatchExt):
    name = "icmp"
    family = 4
    proto = 1
    options = (Opt("icmp-type", "type", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> IcmpInfo:
        t, lo, hi = parse_type(seen.arg("type"), ICMP_NAMES, "icmp --icmp-type")
        return IcmpInfo(t, lo, hi, seen.inv("type"))

    def save(self, i: IcmpInfo, family: int) -> str:
        neg = " !" if i.invert else ""
        if i.type == 0xFF and i.code_min == 0 and i.code_max == 0xFF:
            return f"{neg} --icmp-type any"
        return f"{neg} --icmp-type {i.type}{_code_text(i)}"

    def show(self, i: IcmpInfo, family: int) -> str:
        return " icmp" + _show_type(i)

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: IcmpInfo, env: Env) -> Pred:
        return _icmp_pred(i, any_type=i.type == 0xFF)


class Icmp6(MatchExt):
    name = "icmp6"
    family = 6
    proto = 58
    options = (Opt("icmpv6-type", "type", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> IcmpInfo:
        t, lo, hi = parse_type(seen.arg("type"), ICMPV6_NAMES, "icmp6 --icmpv6-type")
        return IcmpInfo(t, lo, hi, seen.inv("type"))

    def save(self, i: IcmpInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --icmpv6-type {i.type}{_code_text(i)}"

    def show(self, i: IcmpInfo, family: int) -> str:
        return " ipv6-icmp" + _show_type(i)

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: IcmpInfo, env: Env) -> Pred:
        return _icmp_pred(i, any_type=False)


def _show_type(i: IcmpInfo) -> str:
    """``print_icmptype`` with -n: ``type T [code C | codes A-B]``, `` !`` when inverted."""
    s = f"{' !' if i.invert else ''}type {i.type}"
    if i.code_min == i.code_max:
        s += f" code {i.code_min}"
    elif i.code_min != 0 or i.code_max != 0xFF:
        s += f" codes {i.code_min}-{i.code_max}"
    return s


def _icmp_pred(i: IcmpInfo, any_type: bool) -> Pred:
    typ, lo, hi, inv = i.type, i.code_min, i.code_max, i.invert

    def icmp(pkt: Packet, ctx: Context) -> bool:
        if pkt.fragoff:
            return False
        if pkt.l4err is None:
            t, c = pkt.icmp_type, pkt.icmp_code
        else:
            b, o = pkt.buf, pkt.l4off
            if len(b) - o < 8:
                raise HotDrop("icmp: header cut short")
            t, c = b[o], b[o + 1]
        return (any_type or (t == typ and lo <= c <= hi)) != inv
    return icmp


ICMP: Final = Icmp()
ICMP6: Final = Icmp6()
