"""IP header field matches: tos, dscp, ecn.

Owns: their options (TOS names, DSCP classes), save/listing text and tests on
``pkt.tos`` (IPv4 TOS / IPv6 traffic class) and the TCP ECE/CWR bits. Follows iptables
extensions/libxt_tos.c, libxt_dscp.c, libxt_ecn.c and net/netfilter/xt_dscp.c
(``tos_mt``, ``dscp_mt``), xt_ecn.c (ECE/CWR need ``-p tcp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from ..numbers import U8, try_uint, uint, value_mask
from .base import ARG_NONE, Env, KernelCtx, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

TOS_NAMES: Final = (("Minimize-Delay", 0x10), ("Maximize-Throughput", 0x08),
                    ("Maximize-Reliability", 0x04), ("Minimize-Cost", 0x02),
                    ("Normal-Service", 0x00))
DSCP_CLASSES: Final = {"CS0": 0x00, "CS1": 0x08, "CS2": 0x10, "CS3": 0x18, "CS4": 0x20,
                       "CS5": 0x28, "CS6": 0x30, "CS7": 0x38, "BE": 0x00, "AF11": 0x0a,
                       "AF12": 0x0c, "AF13": 0x0e, "AF21": 0x12, "AF22": 0x14, "AF23": 0x16,
                       "AF31": 0x1a, "AF32": 0x1c, "AF33": 0x1e, "AF41": 0x22, "AF42": 0x24,
                       "AF43": 0x26, "EF": 0x2e}


@dataclass(frozen=True, slots=True)
class TosInfo:
    value: int
    mask: int
    invert: bool


class Tos(MatchExt):
    name = "tos"
    options = (Opt("tos", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> TosInfo:
        a = seen.arg("tos")
        if try_uint(a.split("/")[0], 0, U8) is None:
            for n, v in TOS_NAMES:
                if n.lower() == a.lower():
                    return TosInfo(v, 0x3F, seen.inv("tos"))
            raise OptionError(f'tos: bad value for "--tos": "{a}"')
        v, m = value_mask(a, "tos --tos", 8)
        return TosInfo(v, m, seen.inv("tos"))

    def save(self, i: TosInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --tos 0x{i.value:02x}/0x{i.mask:02x}"

    def show(self, i: TosInfo, family: int) -> str:
        return f" tos match{'!' if i.invert else ''}0x{i.value:02x}/0x{i.mask:02x}"

    def compile(self, i: TosInfo, env: Env) -> Pred:
        v, m, inv = i.value, i.mask, i.invert
        return lambda pkt, ctx: ((pkt.tos & m) == v) != inv


@dataclass(frozen=True, slots=True)
class DscpInfo:
    dscp: int
    invert: bool


class Dscp(MatchExt):
    name = "dscp"
    options = (Opt("dscp", invert=True, excl=("dscp-class",)),
               Opt("dscp-class", invert=True, excl=("dscp",)))

    def build(self, seen: Seen, rc: RuleCtx) -> DscpInfo:
        if "dscp" in seen:
            return DscpInfo(uint(seen.arg("dscp"), 0, 0x3F, "dscp --dscp"), seen.inv("dscp"))
        if "dscp-class" in seen:
            c = seen.arg("dscp-class")
            v = DSCP_CLASSES.get(c.upper())
            if v is None:
                raise OptionError(f"dscp: invalid DSCP class `{c}'")
            return DscpInfo(v, seen.inv("dscp-class"))
        raise OptionError("dscp: --dscp or --dscp-class is required")

    def save(self, i: DscpInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --dscp 0x{i.dscp:02x}"

    def show(self, i: DscpInfo, family: int) -> str:
        return f" DSCP match {'!' if i.invert else ''}0x{i.dscp:02x}"

    def compile(self, i: DscpInfo, env: Env) -> Pred:
        d, inv = i.dscp, i.invert
        return lambda pkt, ctx: ((pkt.tos >> 2) == d) != inv


@dataclass(frozen=True, slots=True)
class EcnInfo:
    ece: bool | None        # None: not tested; else "must be set" unless inverted
    ece_inv: bool
    cwr: bool | None
    cwr_inv: bool
    ect: int | None
    ect_inv: bool


class Ecn(MatchExt):
    name = "ecn"
    options = (Opt("ecn-tcp-cwr", arg=ARG_NONE, invert=True),
               Opt("ecn-tcp-ece", arg=ARG_NONE, invert=True),
               Opt("ecn-ip-ect", invert=True))

    def build(self, seen: Seen, rc: RuleCtx) -> EcnInfo:
        if not seen:
            raise OptionError("ecn: at least one of --ecn-tcp-cwr, --ecn-tcp-ece, "
                              "--ecn-ip-ect is required")
        ect = uint(seen.arg("ecn-ip-ect"), 0, 3, "ecn --ecn-ip-ect") \
            if "ecn-ip-ect" in seen else None
        return EcnInfo(True if "ecn-tcp-ece" in seen else None, seen.inv("ecn-tcp-ece"),
                       True if "ecn-tcp-cwr" in seen else None, seen.inv("ecn-tcp-cwr"),
                       ect, seen.inv("ecn-ip-ect"))

    def save(self, i: EcnInfo, family: int) -> str:
        s = ""
        if i.ece:
            s += f"{' !' if i.ece_inv else ''} --ecn-tcp-ece"
        if i.cwr:
            s += f"{' !' if i.cwr_inv else ''} --ecn-tcp-cwr"
        if i.ect is not None:
            s += f"{' !' if i.ect_inv else ''} --ecn-ip-ect {i.ect}"
        return s

    def show(self, i: EcnInfo, family: int) -> str:
        s = " ECN match"
        if i.ece:
            s += f" {'!' if i.ece_inv else ''}ECE"
        if i.cwr:
            s += f" {'!' if i.cwr_inv else ''}CWR"
        if i.ect is not None:
            s += f" {'!' if i.ect_inv else ''}ECT={i.ect}"
        return s

    def check(self, i: EcnInfo, kc: KernelCtx) -> None:
        if (i.ece or i.cwr) and (kc.ip.proto != 6 or kc.ip.inv & 0x40):
            raise OptionError("ecn: --ecn-tcp-ece/--ecn-tcp-cwr need -p tcp (without !)")

    def compile(self, i: EcnInfo, env: Env) -> Pred:
        ect, ect_inv = i.ect, i.ect_inv
        tests: list[tuple[int, bool]] = []
        if i.ece:
            tests.append((0x40, i.ece_inv))
        if i.cwr:
            tests.append((0x80, i.cwr_inv))

        def ecn(pkt: Packet, ctx: Context) -> bool:
            if ect is not None and ((pkt.tos & 3) == ect) == ect_inv:
                return False
            if tests:
                at = pkt.l4off + 13
                if len(pkt.buf) - pkt.l4off < 20:
                    return False
                flags = pkt.buf[at]
                for bit, inv in tests:
                    if bool(flags & bit) == inv:
                        return False
            return True
        return ecn


TOS: Final = Tos()
DSCP: Final = Dscp()
ECN: Final = Ecn()
