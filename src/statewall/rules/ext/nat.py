"""NAT targets: SNAT, DNAT, MASQUERADE, REDIRECT, NETMAP (parsed now, acted on by the NAT
stage).

Owns: ``--to-source`` / ``--to-destination`` (``[addr[-addr]][:port[-port[/base]]]``,
IPv6 addresses in brackets when a port follows), ``--to-ports``, ``--to``, the flags
(--random, --random-fully, --persistent), save text and kernel checks (nat table; SNAT
from POSTROUTING/INPUT, DNAT and REDIRECT from PREROUTING/OUTPUT, MASQUERADE from
POSTROUTING; a port needs -p tcp/udp/sctp/dccp/udplite). Each hit records a
``NatRequest`` on the result and returns ACCEPT, as nf_nat_setup_info does. Follows
iptables extensions/libxt_NAT.c, libxt_MASQUERADE.c, libxt_REDIRECT.c, libxt_NETMAP.c
and the kernel's xt_nat.c, xt_MASQUERADE.c, xt_REDIRECT.c, xt_NETMAP.c.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..addr import apply_mask, mask_plen, ntop, parse_addr, parse_mask
from ..errors import OptionError
from ..numbers import U16, port, try_uint
from ..result import NF_ACCEPT, NatRequest
from .base import (ARG_NONE, H_IN, H_OUT, H_POST, H_PRE, Env, Opt, RuleCtx, Seen, TargetExt,
                   TargetFn)

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context
    from ..result import RunResult

PORT_PROTOS: Final = frozenset((6, 17, 33, 132, 136))
_FLAGS: Final = ("random", "random-fully", "persistent")


@dataclass(frozen=True, slots=True)
class NatRange:
    min_addr: bytes | None
    max_addr: bytes | None
    min_port: int | None
    max_port: int | None
    base_port: int | None


def _one_port(text: str, what: str) -> int:
    p = port(text, None, what)
    return p


def _ports(text: str, what: str, allow_base: bool) -> tuple[int, int, int | None]:
    """``port``, ``port-port`` (numbers only), ``port-port/base``; a lone port may be a
    service name."""
    base: int | None = None
    if "/" in text:
        if not allow_base:
            raise OptionError(f"{what}: no base port allowed in `{text}'")
        text, b = text.split("/", 1)
        base = _one_port(b, what)
        if base == 0:
            raise OptionError(f"{what}: base port must not be 0")
    n = try_uint(text, 0, U16)
    if n is not None or "-" not in text:
        lo = n if n is not None else _one_port(text, what)
        if lo is None:
            raise OptionError(f"{what}: invalid port `{text}'")
        if base is not None:
            raise OptionError(f"{what}: a base port needs a port range")
        return lo, lo, None
    a, b2 = text.split("-", 1)
    lo2 = try_uint(a, 0, U16)
    hi = try_uint(b2, 0, U16)
    if lo2 is None or hi is None:
        if n is None and try_uint(text, 0, U16) is None:
            svc = _service_or_none(text)
            if svc is not None:
                return svc, svc, None
        raise OptionError(f"{what}: invalid port range `{text}'")
    if lo2 > hi:
        raise OptionError(f"{what}: invalid port range `{text}' (min > max)")
    return lo2, hi, base


def _service_or_none(text: str) -> int | None:
    try:
        return port(text, None, "")
    except OptionError:
        return None


def parse_nat_range(text: str, family: int, what: str, allow_base: bool) -> NatRange:
    addr_part, port_part = text, ""
    if family == 6:
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise OptionError(f"{what}: missing ']' in `{text}'")
            addr_part = text[1:end]
            rest = text[end + 1:]
            if rest:
                if not rest.startswith(":"):
                    raise OptionError(f"{what}: bad address `{text}'")
                port_part = rest[1:] or "\0"
        elif text.startswith(":") and text.count(":") == 1:
            addr_part, port_part = "", text[1:]
    else:
        if ":" in text:
            addr_part, port_part = text.split(":", 1)
            port_part = port_part or "\0"
    lo_a = hi_a = None
    if addr_part:
        lo_s, sep, hi_s = addr_part.partition("-")
        lo_a = parse_addr(lo_s, family, what)
        hi_a = parse_addr(hi_s, family, what) if sep else lo_a
        if hi_a < lo_a:
            raise OptionError(f"{what}: bad address range `{addr_part}'")
    if port_part:
        if port_part == "\0":
            raise OptionError(f"{what}: missing port after ':' in `{text}'")
        lo_p, hi_p, base = _ports(port_part, what, allow_base)
        return NatRange(lo_a, hi_a, lo_p, hi_p, base)
    return NatRange(lo_a, hi_a, None, None, None)


def nat_range_text(r: NatRange, family: int) -> str:
    s = ""
    if r.min_addr is not None and r.max_addr is not None:
        s = ntop(r.min_addr)
        if r.max_addr != r.min_addr:
            s += "-" + ntop(r.max_addr)
    if r.min_port is not None:
        if family == 6 and s:
            s = f"[{s}]"
        s += f":{r.min_port}"
        if r.max_port != r.min_port:
            s += f"-{r.max_port}"
        if r.base_port is not None:
            s += f"/{r.base_port}"
    return s


@dataclass(frozen=True, slots=True)
class NatInfo:
    range: NatRange | None
    flags: tuple[str, ...]


def _flag_opts() -> tuple[Opt, ...]:
    return tuple(Opt(f, arg=ARG_NONE) for f in _FLAGS)


def _flags(seen: Seen, allowed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in allowed if f in seen)


def _flags_text(flags: tuple[str, ...]) -> str:
    return "".join(f" --{f}" for f in flags)


def _need_port_proto(r: NatRange | None, rc: RuleCtx, name: str) -> None:
    if r is not None and r.min_port is not None and \
            (rc.proto not in PORT_PROTOS or rc.invproto):
        raise OptionError(f"{name}: need TCP, UDP, SCTP or DCCP with port specification")


class _Nat(TargetExt):
    table = "nat"
    kind = ""
    terminal = True

    def compile(self, i: NatInfo, env: Env) -> TargetFn:
        r = i.range
        ranges = ((r.min_addr, r.max_addr, r.min_port, r.max_port, r.base_port),) if r else ()
        flags = frozenset(i.flags)
        kind, table, chain, rulenum = self.kind, env.table, env.chain, env.rulenum

        def nat(pkt: Packet, ctx: Context, res: RunResult) -> int:
            res.nat = NatRequest(kind, ranges, flags, table, chain, rulenum)
            return NF_ACCEPT
        return nat


class Snat(_Nat):
    name = kind = "SNAT"
    hooks = H_POST | H_IN
    opt = "to-source"
    base = False
    options = (Opt("to-source", "to", mand=True),) + _flag_opts()

    def build(self, seen: Seen, rc: RuleCtx) -> NatInfo:
        r = parse_nat_range(seen.arg("to"), rc.family, f"{self.name} --{self.opt}", self.base)
        _need_port_proto(r, rc, self.name)
        return NatInfo(r, _flags(seen, _FLAGS))

    def save(self, i: NatInfo, family: int) -> str:
        assert i.range is not None
        return f" --{self.opt} {nat_range_text(i.range, family)}" + _flags_text(i.flags)

    def show(self, i: NatInfo, family: int) -> str:
        assert i.range is not None
        return f" to:{nat_range_text(i.range, family)}" + "".join(f" {f}" for f in i.flags)


class Dnat(Snat):
    name = kind = "DNAT"
    hooks = H_PRE | H_OUT
    opt = "to-destination"
    base = True
    options = (Opt("to-destination", "to", mand=True),) + _flag_opts()


class Masquerade(_Nat):
    name = kind = "MASQUERADE"
    hooks = H_POST
    options: tuple[Opt, ...] = (Opt("to-ports"), Opt("random", arg=ARG_NONE),
                                Opt("random-fully", arg=ARG_NONE))

    def build(self, seen: Seen, rc: RuleCtx) -> NatInfo:
        r = None
        if "to-ports" in seen:
            lo, hi, _ = _ports(seen.arg("to-ports"), f"{self.name} --to-ports", False)
            r = NatRange(None, None, lo, hi, None)
            _need_port_proto(r, rc, self.name)
        return NatInfo(r, _flags(seen, ("random", "random-fully")))

    def save(self, i: NatInfo, family: int) -> str:
        s = ""
        if i.range is not None and i.range.min_port is not None:
            s = f" --to-ports {i.range.min_port}"
            if i.range.max_port != i.range.min_port:
                s += f"-{i.range.max_port}"
        return s + _flags_text(i.flags)

    def show(self, i: NatInfo, family: int) -> str:
        s = ""
        if i.range is not None and i.range.min_port is not None:
            s = f" masq ports: {i.range.min_port}"
            if i.range.max_port != i.range.min_port:
                s += f"-{i.range.max_port}"
        return s + "".join(f" {f}" for f in i.flags)


class Redirect(Masquerade):
    name = kind = "REDIRECT"
    hooks = H_PRE | H_OUT
    options = (Opt("to-ports"), Opt("random", arg=ARG_NONE))

    def show(self, i: NatInfo, family: int) -> str:
        s = ""
        if i.range is not None and i.range.min_port is not None:
            s = f" redir ports {i.range.min_port}"
            if i.range.max_port != i.range.min_port:
                s += f"-{i.range.max_port}"
        return s + "".join(f" {f}" for f in i.flags)


@dataclass(frozen=True, slots=True)
class NetmapInfo:
    addr: bytes
    plen: int


class Netmap(TargetExt):
    name = "NETMAP"
    table = "nat"
    hooks = H_PRE | H_POST | H_OUT | H_IN
    options = (Opt("to", mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> NetmapInfo:
        a, _, m = seen.arg("to").partition("/")
        addr = parse_addr(a, rc.family, "NETMAP --to")
        mask = parse_mask(m if "/" in seen.arg("to") else None, rc.family, "NETMAP --to")
        n = mask_plen(mask)
        if n < 0:
            raise OptionError("NETMAP: the netmask must be contiguous")
        return NetmapInfo(apply_mask(addr, mask), n)

    def save(self, i: NetmapInfo, family: int) -> str:
        return f" --to {ntop(i.addr)}/{i.plen}"

    def show(self, i: NetmapInfo, family: int) -> str:
        return f" to:{ntop(i.addr)}/{i.plen}"

    def compile(self, i: NetmapInfo, env: Env) -> TargetFn:
        ranges = ((i.addr, i.addr, None, None, None),)
        prefix = i.plen
        table, chain, rulenum = env.table, env.chain, env.rulenum

        def netmap(pkt: Packet, ctx: Context, res: RunResult) -> int:
            res.nat = NatRequest("NETMAP", ranges, frozenset(), table, chain, rulenum, prefix)
            return NF_ACCEPT
        return netmap


SNAT: Final = Snat()
DNAT: Final = Dnat()
MASQUERADE: Final = Masquerade()
REDIRECT: Final = Redirect()
NETMAP: Final = Netmap()
