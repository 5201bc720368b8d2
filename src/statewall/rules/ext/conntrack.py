"""Connection-tracking matches: state, conntrack, helper, connbytes.

Owns: their options (state/status names accepted case-insensitively by prefix, as
libxtables' ``strncasecmp`` does), iptables-save text and packet tests against
``pkt.ct`` / ``pkt.ctinfo``. Follows iptables extensions/libxt_conntrack.c (which also
implements ``-m state``), libxt_helper.c, libxt_connbytes.c and net/netfilter/
xt_conntrack.c (``conntrack_mt``: note a packet without an entry matches whenever the
rule has a state test, whatever else it asks), xt_helper.c, xt_connbytes.c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..native import OP_STATE, mark
from ...conntrack.helpers import helper_match
from ..addr import numeric_mask_suffix, ntop, parse_host_mask
from ..errors import OptionError
from ..netdb import proto_number
from ..numbers import U8, U32, U64, port_range, try_uint, uint_range
from ..quote import save_string
from .base import Env, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

# xt_conntrack.h state bits (XT_CONNTRACK_STATE_BIT(ctinfo) = 1 << (ctinfo % 3 + 1))
ST_INVALID: Final = 1 << 0
ST_ESTABLISHED: Final = 1 << 1
ST_RELATED: Final = 1 << 2
ST_NEW: Final = 1 << 3
ST_SNAT: Final = 1 << 6
ST_DNAT: Final = 1 << 7
ST_UNTRACKED: Final = 1 << 8
# parse order (first prefix match wins) and save order
STATE_PARSE: Final = (("INVALID", ST_INVALID), ("NEW", ST_NEW), ("ESTABLISHED", ST_ESTABLISHED),
                      ("RELATED", ST_RELATED), ("UNTRACKED", ST_UNTRACKED))
CTSTATE_PARSE: Final = STATE_PARSE + (("SNAT", ST_SNAT), ("DNAT", ST_DNAT))
STATE_SAVE: Final = (("INVALID", ST_INVALID), ("NEW", ST_NEW), ("RELATED", ST_RELATED),
                     ("ESTABLISHED", ST_ESTABLISHED), ("UNTRACKED", ST_UNTRACKED),
                     ("SNAT", ST_SNAT), ("DNAT", ST_DNAT))
# ctinfo (0..4) -> state bit
CTINFO_BIT: Final = (ST_ESTABLISHED, ST_RELATED, ST_NEW, ST_ESTABLISHED, ST_RELATED)
IP_CT_UNTRACKED: Final = 7

STATUS_PARSE: Final = (("NONE", 0), ("EXPECTED", 1), ("SEEN_REPLY", 2), ("ASSURED", 4),
                       ("CONFIRMED", 8))
IPS_SRC_NAT: Final = 1 << 4
IPS_DST_NAT: Final = 1 << 5


def _names(text: str, table: tuple[tuple[str, int], ...], what: str) -> int:
    """A comma list of names, each an (unambiguous or first) case-insensitive prefix."""
    mask = 0
    for word in text.split(","):
        if not word:
            raise OptionError(f'{what}: bad value "{text}"')
        for name, bit in table:
            if name.lower().startswith(word.lower()):
                mask |= bit
                break
        else:
            raise OptionError(f'{what}: bad value "{word}"')
    return mask


def _states_text(mask: int) -> str:
    return ",".join(name for name, bit in STATE_SAVE if mask & bit)


def _packet_statebit(pkt: Packet) -> int:
    ct = pkt.ct
    if ct is not None:
        bit = CTINFO_BIT[pkt.ctinfo]
        st = ct.status
        if st & IPS_SRC_NAT:
            bit |= ST_SNAT
        if st & IPS_DST_NAT:
            bit |= ST_DNAT
        return bit
    return ST_UNTRACKED if pkt.ctinfo == IP_CT_UNTRACKED else ST_INVALID


# --------------------------------------------------------------------------------- state
@dataclass(frozen=True, slots=True)
class StateInfo:
    mask: int
    invert: bool


class State(MatchExt):
    name = "state"
    options = (Opt("state", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> StateInfo:
        return StateInfo(_names(seen.arg("state"), STATE_PARSE, "state --state"),
                         seen.inv("state"))

    def save(self, i: StateInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --state {_states_text(i.mask)}"

    def show(self, i: StateInfo, family: int) -> str:
        return f" state {'!' if i.invert else ''}{_states_text(i.mask)}"

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: StateInfo, env: Env) -> Pred:
        return state_pred(i.mask, i.invert)


def state_pred(mask: int, inv: bool) -> Pred:
    """The state test shared by -m state and a state-only -m conntrack."""
    bits = CTINFO_BIT
    if not mask & (ST_SNAT | ST_DNAT):
        if not inv:
            def state(pkt: Packet, ctx: Context) -> bool:
                if pkt.ct is not None:
                    return mask & bits[pkt.ctinfo] != 0
                return mask & (ST_UNTRACKED if pkt.ctinfo == IP_CT_UNTRACKED
                               else ST_INVALID) != 0
            return mark(state, OP_STATE, mask, inv)

    def state_nat(pkt: Packet, ctx: Context) -> bool:
        return (mask & _packet_statebit(pkt) != 0) != inv
    return mark(state_nat, OP_STATE, mask, inv)


# ----------------------------------------------------------------------------- conntrack
@dataclass(frozen=True, slots=True)
class ConntrackInfo:
    state: int | None = None
    state_inv: bool = False
    proto: int | None = None
    proto_inv: bool = False
    origsrc: tuple[bytes, bytes] | None = None
    origsrc_inv: bool = False
    origdst: tuple[bytes, bytes] | None = None
    origdst_inv: bool = False
    replsrc: tuple[bytes, bytes] | None = None
    replsrc_inv: bool = False
    repldst: tuple[bytes, bytes] | None = None
    repldst_inv: bool = False
    origsrcport: tuple[int, int] | None = None
    origsrcport_inv: bool = False
    origdstport: tuple[int, int] | None = None
    origdstport_inv: bool = False
    replsrcport: tuple[int, int] | None = None
    replsrcport_inv: bool = False
    repldstport: tuple[int, int] | None = None
    repldstport_inv: bool = False
    status: int | None = None
    status_inv: bool = False
    expire: tuple[int, int] | None = None
    expire_inv: bool = False
    dir_reply: bool | None = None


_ADDRS: Final = ("origsrc", "origdst", "replsrc", "repldst")
_PORTS: Final = ("origsrcport", "origdstport", "replsrcport", "repldstport")


class Conntrack(MatchExt):
    name = "conntrack"
    options = tuple(Opt(f"ct{n}", n, invert=True)
                    for n in ("state", "proto", *_ADDRS, "status", "expire", *_PORTS)) \
        + (Opt("ctdir", "dir"),)

    def build(self, seen: Seen, rc: RuleCtx) -> ConntrackInfo:
        if not seen:
            raise OptionError("conntrack: at least one option is required")
        kw: dict[str, Any] = {}
        for g in seen.items:
            k, a = g.opt.id, g.arg
            if k == "dir":
                if a.lower() == "original":
                    kw["dir_reply"] = False
                elif a.lower() == "reply":
                    kw["dir_reply"] = True
                else:
                    raise OptionError(f'conntrack: bad value for "--ctdir": "{a}"')
                continue
            kw[k + "_inv"] = g.inv
            if k == "state":
                kw[k] = _names(a, CTSTATE_PARSE, "conntrack --ctstate")
            elif k == "status":
                kw[k] = _names(a, STATUS_PARSE, "conntrack --ctstatus")
            elif k == "proto":
                p = try_uint(a, 0, U8)
                if p is None:
                    p = proto_number(a.lower())
                if p is None:
                    raise OptionError(f'conntrack: unknown protocol "{a}" specified')
                if p == 0:
                    raise OptionError("conntrack: rule would never match protocol")
                kw[k] = p
            elif k in _ADDRS:
                kw[k] = parse_host_mask(a, rc.family, f"conntrack --ct{k}")
            elif k in _PORTS:
                kw[k] = port_range(a, None, f"conntrack --ct{k}")
            elif k == "expire":
                kw[k] = uint_range(a, U32, "conntrack --ctexpire")
        return ConntrackInfo(**kw)

    def save(self, i: ConntrackInfo, family: int) -> str:
        return self._dump(i, "--")

    def show(self, i: ConntrackInfo, family: int) -> str:
        return self._dump(i, "")

    def _dump(self, i: ConntrackInfo, pfx: str) -> str:
        out = []

        def neg(flag: bool) -> str:
            return " !" if flag else ""
        if i.state is not None:
            out.append(f"{neg(i.state_inv)} {pfx}ctstate {_states_text(i.state)}")
        if i.proto is not None:
            out.append(f"{neg(i.proto_inv)} {pfx}ctproto {i.proto}")
        for k in _ADDRS:
            v = getattr(i, k)
            if v is not None:
                out.append(f"{neg(getattr(i, k + '_inv'))} {pfx}ct{k} "
                           f"{ntop(v[0])}{numeric_mask_suffix(v[1])}")
        for k in _PORTS:
            v = getattr(i, k)
            if v is not None:
                p = f"{v[0]}" if v[0] == v[1] else f"{v[0]}:{v[1]}"
                out.append(f"{neg(getattr(i, k + '_inv'))} {pfx}ct{k} {p}")
        if i.status is not None:
            names = ",".join(n for n, b in STATUS_PARSE[1:] if i.status & b) or "NONE"
            out.append(f"{neg(i.status_inv)} {pfx}ctstatus {names}")
        if i.expire is not None:
            e = f"{i.expire[0]}" if i.expire[0] == i.expire[1] else f"{i.expire[0]}:{i.expire[1]}"
            out.append(f"{neg(i.expire_inv)} {pfx}ctexpire {e}")
        if i.dir_reply is not None:
            out.append(f" {pfx}ctdir {'REPLY' if i.dir_reply else 'ORIGINAL'}")
        return "".join(out)

    def flow_stable(self, info: Any) -> bool:
        return info.status is None and info.expire is None   # both change with time

    def compile(self, i: ConntrackInfo, env: Env) -> Pred:
        state, state_inv = i.state, i.state_inv
        if state is not None and i == ConntrackInfo(state=state, state_inv=state_inv):
            return state_pred(state, state_inv)
        tests: list[Any] = []
        if i.dir_reply is not None:
            want = i.dir_reply
            tests.append(lambda pkt, ct, now: (pkt.ctinfo >= 3) == want)
        for n, (k, idx) in enumerate(zip(_ADDRS, ((0, 0), (0, 1), (1, 0), (1, 1)))):
            v = getattr(i, k)
            if v is not None:
                tests.append(_addr_test(v[0], v[1], idx, getattr(i, k + "_inv")))
        if i.proto is not None:
            proto, pinv = i.proto, i.proto_inv
            tests.append(lambda pkt, ct, now: (ct.proto == proto) != pinv)
        for k, idx in zip(_PORTS, ((0, 3), (0, 4), (1, 3), (1, 4))):
            v = getattr(i, k)
            if v is not None:
                tests.append(_port_test(v[0], v[1], idx, getattr(i, k + "_inv")))
        if i.status is not None:
            status_mask, sinv = i.status, i.status_inv
            tests.append(lambda pkt, ct, now: (ct.status & status_mask != 0) != sinv)
        if i.expire is not None:
            lo, hi, einv = i.expire[0], i.expire[1], i.expire_inv
            tests.append(lambda pkt, ct, now:
                         (lo <= math.floor(max(ct.timeout - now, 0.0)) <= hi) != einv)
        checks = tuple(tests)
        has_state = state is not None
        st_mask = state or 0

        def conntrack(pkt: Packet, ctx: Context) -> bool:
            if has_state and (st_mask & _packet_statebit(pkt) != 0) == state_inv:
                return False
            ct = pkt.ct
            if ct is None:
                return has_state
            now = ctx.now
            for t in checks:
                if not t(pkt, ct, now):
                    return False
            return True
        return conntrack


def _addr_test(addr: bytes, mask: bytes, idx: tuple[int, int], inv: bool) -> Any:
    want = bytes(a & m for a, m in zip(addr, mask))
    m = int.from_bytes(mask, "big")
    w = int.from_bytes(want, "big")
    d, field = idx

    def test(pkt: Packet, ct: Any, now: float) -> bool:
        t = ct.reply if d else ct.orig
        a = t[field]
        if len(a) != len(addr):
            return inv
        return bool(((int.from_bytes(a, "big") & m) == w) != inv)
    return test


def _port_test(lo: int, hi: int, idx: tuple[int, int], inv: bool) -> Any:
    d, field = idx

    def test(pkt: Packet, ct: Any, now: float) -> bool:
        t = ct.reply if d else ct.orig
        return bool((lo <= t[field] <= hi) != inv)
    return test


# -------------------------------------------------------------------------------- helper
@dataclass(frozen=True, slots=True)
class HelperInfo:
    name: str
    invert: bool


class Helper(MatchExt):
    name = "helper"
    options = (Opt("helper", invert=True, mand=True),)

    def build(self, seen: Seen, rc: RuleCtx) -> HelperInfo:
        return HelperInfo(seen.arg("helper")[:29], seen.inv("helper"))

    def save(self, i: HelperInfo, family: int) -> str:
        return f"{' !' if i.invert else ''} --helper{save_string(i.name)}"

    def show(self, i: HelperInfo, family: int) -> str:
        return f" helper match {'! ' if i.invert else ''}\"{i.name}\""

    def flow_stable(self, info: Any) -> bool:
        return True

    def compile(self, i: HelperInfo, env: Env) -> Pred:
        want, inv = i.name, i.invert

        def helper(pkt: Packet, ctx: Context) -> bool:
            return helper_match(pkt.ct, want) != inv
        return helper


# ----------------------------------------------------------------------------- connbytes
CB_MODES: Final = ("packets", "bytes", "avgpkt")
CB_DIRS: Final = ("original", "reply", "both")


@dataclass(frozen=True, slots=True)
class ConnbytesInfo:
    lo: int          # "from"; lo > hi means inverted (the kernel's encoding)
    hi: int
    mode: str
    dir: str


class Connbytes(MatchExt):
    name = "connbytes"
    options = (Opt("connbytes", invert=True, mand=True), Opt("connbytes-dir", mand=True),
               Opt("connbytes-mode", mand=True))

    def build(self, seen: Seen, rc: RuleCtx) -> ConnbytesInfo:
        lo, hi = uint_range(seen.arg("connbytes"), U64, "connbytes --connbytes")
        if ":" not in seen.arg("connbytes"):
            hi = U64
        if seen.inv("connbytes"):
            lo, hi = hi, lo
        mode = seen.arg("connbytes-mode")
        if mode not in CB_MODES:
            raise OptionError(f'connbytes: bad value for "--connbytes-mode": "{mode}"')
        d = seen.arg("connbytes-dir")
        if d not in CB_DIRS:
            raise OptionError(f'connbytes: bad value for "--connbytes-dir": "{d}"')
        return ConnbytesInfo(lo, hi, mode, d)

    def save(self, i: ConnbytesInfo, family: int) -> str:
        if i.lo > i.hi:
            s = f" ! --connbytes {i.hi}" + (f":{i.lo}" if i.lo != U64 else "")
        else:
            s = f" --connbytes {i.lo}" + (f":{i.hi}" if i.hi != U64 else "")
        return s + f" --connbytes-mode {i.mode} --connbytes-dir {i.dir}"

    def show(self, i: ConnbytesInfo, family: int) -> str:
        if i.lo > i.hi:
            s = f" ! connbytes {i.hi}" + (f":{i.lo}" if i.lo != U64 else "")
        else:
            s = f" connbytes {i.lo}" + (f":{i.hi}" if i.hi != U64 else "")
        return s + f" connbytes mode {i.mode} connbytes direction {i.dir}"

    def compile(self, i: ConnbytesInfo, env: Env) -> Pred:
        lo, hi = i.lo, i.hi
        mode = CB_MODES.index(i.mode)
        d = CB_DIRS.index(i.dir)

        def connbytes(pkt: Packet, ctx: Context) -> bool:
            ct = pkt.ct
            if ct is None:
                return False
            a = ct.acct      # [orig pkts, orig bytes, reply pkts, reply bytes]
            if d == 0:
                p, b = a[0], a[1]
            elif d == 1:
                p, b = a[2], a[3]
            else:
                p, b = a[0] + a[2], a[1] + a[3]
            if mode == 0:
                what = p
            elif mode == 1:
                what = b
            else:
                what = b // p if p else 0
            if hi >= lo:
                return bool(lo <= what <= hi)
            return bool(what < hi or what > lo)
        return connbytes


STATE: Final = State()
CONNTRACK: Final = Conntrack()
HELPER: Final = Helper()
CONNBYTES: Final = Connbytes()
