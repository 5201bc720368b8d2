"""Rate limits: the limit and hashlimit matches, with the kernel's integer token buckets.

Owns: rate parsing and printing (``N/sec|min|hour|day``, hashlimit's ``Nb/s|kb/s|mb/s``
byte rates and bursts), the kernel's overflow checks, and the buckets themselves in
jiffies (HZ below) with the kernel's unsigned wrap-arounds. Follows iptables
extensions/libxt_limit.c, libxt_hashlimit.c and net/netfilter/xt_limit.c, xt_hashlimit.c
(revision 3). Hashlimit tables are shared by name and family, with the configuration of
the first rule that created them, as the kernel's ``htable_find_get`` does; they keep at
most ``--hashlimit-htable-max`` entries (8 x the size, 8192 buckets by default: a host
with more than 1 GiB of memory) and a full table hot-drops the packet.

Differences: the kernel starts a limit's bucket (full) when the rule is loaded, statewall
at the first packet it sees - the same thing, as the bucket cannot grow past full; the
hashlimit garbage collector runs every gc interval counted from the table's first packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from ..numbers import U32, U64, strtoul, uint
from .base import ARG_NONE, Env, HotDrop, KernelCtx, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

HZ: Final = 250      # CONFIG_HZ of the reference kernel (Debian/Ubuntu default)


def _pow2_below(x: int) -> int:
    """The kernel's POW2_BELOW32/64: the largest power of two <= x."""
    return 1 << (x.bit_length() - 1)


def jiffies(now: float) -> int:
    return int(now * HZ)


def msecs_to_jiffies(ms: int) -> int:
    return -(-ms * HZ // 1000)


def _atoll(text: str) -> int:
    """C ``atoll``: leading blanks, optional sign, digits; 0 when none."""
    s = text.lstrip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    n = 0
    while n < len(s) and s[n].isdigit():
        n += 1
    return sign * int(s[:n]) if n else 0


_UNITS: Final = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))


def _rate_mult(text: str) -> int | None:
    """The ``/unit`` suffix: a case-insensitive prefix of second/minute/hour/day."""
    if "/" not in text:
        return 1
    unit = text.split("/", 1)[1]
    if not unit:
        return None
    for name, mult in _UNITS:
        if name.startswith(unit.lower()):
            return mult
    return None


def print_rate(period: int, scale: int) -> tuple[str, int]:
    """libxt_{limit,hashlimit} ``print_rate``: the largest unit that divides evenly enough;
    returns the text and the unit in milliseconds (hashlimit's default expire)."""
    rates = (("day", scale * 86400), ("hour", scale * 3600), ("min", scale * 60),
             ("sec", scale))
    if period == 0:
        return "inf", 0
    i = 1
    while i < len(rates):
        mult = rates[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = rates[i - 1]
    return f"{mult // period}/{name}", mult // scale * 1000


# --------------------------------------------------------------------------------- limit
XT_LIMIT_SCALE: Final = 10000
LIMIT_CPJ: Final = _pow2_below(U32 // (HZ * 86400))


def limit_user2credits(user: int) -> int:
    user &= U32
    if user > U32 // (HZ * LIMIT_CPJ):
        return ((user // XT_LIMIT_SCALE) * HZ * LIMIT_CPJ) & U32
    return ((user * HZ * LIMIT_CPJ) & U32) // XT_LIMIT_SCALE


@dataclass(frozen=True, slots=True)
class LimitInfo:
    avg: int        # XT_LIMIT_SCALE * seconds per packet
    burst: int


class Limit(MatchExt):
    name = "limit"
    options = (Opt("limit"), Opt("limit-burst"))

    def build(self, seen: Seen, rc: RuleCtx) -> LimitInfo:
        avg = XT_LIMIT_SCALE * 3600 // 3
        if "limit" in seen:
            text = seen.arg("limit")
            mult = _rate_mult(text)
            r = _atoll(text) & U32
            if mult is None or r == 0:
                raise OptionError(f'limit: bad rate "{text}"')
            avg = XT_LIMIT_SCALE * mult // r
            if avg == 0:
                raise OptionError(f'limit: rate too fast "{text}"')
        burst = uint(seen.arg("limit-burst"), 0, 10000, "limit --limit-burst") \
            if "limit-burst" in seen else 5
        return LimitInfo(avg, burst)

    def save(self, i: LimitInfo, family: int) -> str:
        s = f" --limit {print_rate(i.avg, XT_LIMIT_SCALE)[0]}"
        return s + (f" --limit-burst {i.burst}" if i.burst != 5 else "")

    def show(self, i: LimitInfo, family: int) -> str:
        return f" limit: avg {print_rate(i.avg, XT_LIMIT_SCALE)[0]} burst {i.burst}"

    def check(self, i: LimitInfo, kc: KernelCtx) -> None:
        if i.burst == 0 or \
                limit_user2credits(i.avg * i.burst) < limit_user2credits(i.avg):
            raise OptionError(f"limit: overflow, try lower: {i.avg}/{i.burst}")

    def compile(self, i: LimitInfo, env: Env) -> Pred:
        cap = limit_user2credits(i.avg * i.burst)
        cost = limit_user2credits(i.avg)
        st = [0, cap, -1]       # prev jiffies, credit, initialised

        def limit(pkt: Packet, ctx: Context) -> bool:
            now = int(ctx.now * HZ)
            if st[2] < 0:
                st[0], st[2] = now, 0
            credit = st[1]
            if credit < cost and st[0] == now:
                return False
            inc = ((now - st[0]) * LIMIT_CPJ) & U32
            st[0] = now
            credit = (credit + inc) & U32
            if credit > cap:
                credit = cap
            if credit >= cost:
                st[1] = credit - cost
                return True
            st[1] = credit
            return False
        return limit


# ----------------------------------------------------------------------------- hashlimit
HL_SCALE: Final = 1000000                      # XT_HASHLIMIT_SCALE_v2
HL_CPJ: Final = _pow2_below(U64 // (HZ * 86400))
HL_CPJ_BYTES: Final = _pow2_below(U32 // HZ)
HL_BYTE_SHIFT: Final = 4
HL_BURST_MAX: Final = 1000000
HL_MAX_SIZE: Final = 1048576
HL_DEFAULT_SIZE: Final = 8192
M_SIP: Final = 1
M_DIP: Final = 2
M_SPT: Final = 4
M_DPT: Final = 8
M_INVERT: Final = 0x10
M_BYTES: Final = 0x20
M_RATE_MATCH: Final = 0x40
_MODE_NAMES: Final = (("srcip", M_SIP), ("srcport", M_SPT), ("dstip", M_DIP),
                      ("dstport", M_DPT))


def hl_user2credits(user: int) -> int:
    return ((user & U64) * (HZ * HL_CPJ // HL_SCALE)) & U64


def hl_user2credits_byte(user: int) -> int:
    return ((user & U32) * HZ * HL_CPJ_BYTES) >> 32 & U32


def _cost_to_bytes(cost: int) -> int:
    r = U32 // cost if cost else U32
    return (r - 1) << HL_BYTE_SHIFT


def _bytes_to_cost(b: int) -> int:
    r = (b >> HL_BYTE_SHIFT) & U32
    return U32 // (r + 1)


_FACTOR: Final = {"m": 1024 * 1024, "k": 1024}


@dataclass(frozen=True, slots=True)
class HashlimitInfo:
    name: str
    mode: int
    avg: int
    burst: int
    size: int
    max: int
    gc_interval: int
    expire: int
    interval: int
    srcmask: int
    dstmask: int


class Hashlimit(MatchExt):
    name = "hashlimit"
    options = (
        Opt("hashlimit-upto", "upto", invert=True, excl=("above",)),
        Opt("hashlimit-above", "above", invert=True, excl=("upto",)),
        Opt("hashlimit", "upto", invert=True, excl=("above",)),
        Opt("hashlimit-srcmask", "srcmask"), Opt("hashlimit-dstmask", "dstmask"),
        Opt("hashlimit-burst", "burst"), Opt("hashlimit-htable-size", "size"),
        Opt("hashlimit-htable-max", "max"), Opt("hashlimit-htable-gcinterval", "gc"),
        Opt("hashlimit-htable-expire", "expire"), Opt("hashlimit-mode", "mode"),
        Opt("hashlimit-name", "name", mand=True),
        Opt("hashlimit-rate-match", "ratematch", arg=ARG_NONE),
        Opt("hashlimit-rate-interval", "interval"),
    )

    def build(self, seen: Seen, rc: RuleCtx) -> HashlimitInfo:
        if "upto" not in seen and "above" not in seen:
            raise OptionError("hashlimit: you have to specify --hashlimit")
        plen = 32 if rc.family == 4 else 128
        mode, avg, mult, burst, interval = 0, 0, 1, 5, 0
        cfg_name = ""
        srcmask = dstmask = plen
        cfg = {"size": 0, "max": 0, "gc": 1000, "expire": -1}
        for g in seen.items:
            k, a = g.opt.id, g.arg
            if k in ("upto", "above"):
                if (k == "upto") == g.inv:
                    mode |= M_INVERT
                b = _parse_bytes(a)
                if b is not None:
                    mode |= M_BYTES
                    avg, mult = b, 15
                else:
                    mult_ = _rate_mult(a)
                    r = _atoll(a)
                    if mult_ is None or r <= 0:
                        raise OptionError(f'hashlimit: bad value for "--hashlimit-{k}": "{a}"')
                    mult = mult_
                    avg = HL_SCALE * mult // r
                    if avg == 0:
                        raise OptionError(f'hashlimit: rate too fast "{a}"')
            elif k == "burst":
                burst = _parse_burst(a)
            elif k == "mode":
                for word in a.replace("|", ",").split(","):
                    if not word:
                        continue
                    bit = dict(_MODE_NAMES).get(word)
                    if bit is None:
                        raise OptionError(f'hashlimit: bad value for "--hashlimit-mode": "{a}"')
                    mode |= bit
            elif k in ("srcmask", "dstmask"):
                v = uint(a, 0, plen, f"hashlimit --{g.opt.name}")
                if k == "srcmask":
                    srcmask = v
                else:
                    dstmask = v
            elif k == "name":
                if not a:
                    raise OptionError("hashlimit: --hashlimit-name must not be empty")
                cfg_name = a[:254]
            elif k == "ratematch":
                mode |= M_RATE_MATCH
            elif k == "interval":
                interval = _atoll(a)
                if interval <= 0:
                    raise OptionError(f'hashlimit: bad value for "--hashlimit-rate-interval": "{a}"')
            else:
                cfg[k] = uint(a, 0, U32, f"hashlimit --{g.opt.name}")
        expire = cfg["expire"] if cfg["expire"] >= 0 else mult * 1000
        if mode & M_BYTES:
            if "burst" in seen:
                unit = _cost_to_bytes(avg)
                if burst < unit:
                    raise OptionError(f"hashlimit: burst cannot be smaller than {unit}b")
                burst = -(-burst // unit)
                if cfg["expire"] < 0:
                    expire = 60 * 1000
            else:
                burst = 0
        elif burst > HL_BURST_MAX:
            raise OptionError(f"hashlimit: bad value for option \"--hashlimit-burst\", or out "
                              f"of range (1-{HL_BURST_MAX})")
        if mode & M_RATE_MATCH:
            if not mode & M_BYTES:
                avg //= mult
            if interval == 0:
                interval = 1 if mode & M_BYTES else mult
        return HashlimitInfo(cfg_name, mode, avg, burst, cfg["size"], cfg["max"], cfg["gc"],
                             expire, interval, srcmask, dstmask)

    def _text(self, i: HashlimitInfo, family: int, pfx: str) -> str:
        plen = 32 if family == 4 else 128
        out = []
        if i.mode & M_BYTES:
            rate, burst_text, quantum = _print_bytes(i.avg, i.burst, pfx)
            out.append(f" {rate}" + (f" {burst_text}" if burst_text else ""))
        else:
            # the listing shows the rate over the rate-match interval, the save text not
            period = i.avg * i.interval if (not pfx and i.interval) else i.avg
            rate, quantum = print_rate(period, HL_SCALE)
            out.append(f" {rate} {pfx}burst {i.burst}")
        if i.mode & (M_SIP | M_DIP | M_SPT | M_DPT):
            sep = "," if pfx else "-"
            out.append(f" {pfx}mode " + sep.join(n for n, b in _MODE_NAMES if i.mode & b))
        if pfx:
            out.append(f" --hashlimit-name {i.name}")
        if i.size:
            out.append(f" {pfx}htable-size {i.size}")
        if i.max:
            out.append(f" {pfx}htable-max {i.max}")
        if i.gc_interval != 1000:
            out.append(f" {pfx}htable-gcinterval {i.gc_interval}")
        if i.expire != quantum:
            out.append(f" {pfx}htable-expire {i.expire}")
        if i.srcmask != plen:
            out.append(f" {pfx}srcmask {i.srcmask}")
        if i.dstmask != plen:
            out.append(f" {pfx}dstmask {i.dstmask}")
        if i.mode & M_RATE_MATCH:
            out.append(f" {pfx}rate-match")
            if i.interval != 1:
                out.append(f" {pfx}rate-interval {i.interval}")
        return "".join(out)

    def save(self, i: HashlimitInfo, family: int) -> str:
        head = " --hashlimit-above" if i.mode & M_INVERT else " --hashlimit-upto"
        return head + self._text(i, family, "--hashlimit-")

    def show(self, i: HashlimitInfo, family: int) -> str:
        head = " limit: above" if i.mode & M_INVERT else " limit: up to"
        return head + self._text(i, family, "")

    def check(self, i: HashlimitInfo, kc: KernelCtx) -> None:
        if i.gc_interval == 0 or i.expire == 0:
            raise OptionError("hashlimit: gc interval and expire must not be 0")
        plen = 32 if kc.family == 4 else 128
        if i.srcmask > plen or i.dstmask > plen:
            raise OptionError(f"hashlimit: masks are at most {plen} bits")
        if i.name in (".", "..") or "/" in i.name:
            raise OptionError(f"hashlimit: bad name '{i.name}'")
        if i.mode & M_RATE_MATCH:
            if i.avg == 0 or i.avg > U32 or i.interval == 0:
                raise OptionError("hashlimit: invalid rate")
        elif i.mode & M_BYTES:
            if hl_user2credits_byte(i.avg) == 0:
                raise OptionError(f"hashlimit: overflow, rate too high: {i.avg}")
        elif i.burst == 0 or hl_user2credits(i.avg * i.burst) < hl_user2credits(i.avg):
            raise OptionError(f"hashlimit: overflow, try lower: {i.avg}/{i.burst}")

    def compile(self, i: HashlimitInfo, env: Env) -> Pred:
        key = f"hashlimit/{env.family}/{i.name}"
        table = env.shared.get(key)
        if table is None:
            table = env.shared[key] = _HTable(i, env.family)
        return table.pred(i.mode)


def _parse_bytes(text: str) -> int | None:
    at = text.find("b/s")
    if at <= 0:
        return None
    r = _atoll(text)
    if r <= 0:
        return None
    tmp = r * _FACTOR.get(text[at - 1], 1)
    if tmp > U64:
        raise OptionError(f'hashlimit: rate value too large "{tmp}"')
    cost = _bytes_to_cost(tmp)
    if cost == 0:
        raise OptionError(f'hashlimit: rate too high "{text}"')
    return cost


def _parse_burst(text: str) -> int:
    r = strtoul(text, 0)
    if r is None or r[0] < 1 or (r[1] == "" and r[0] > HL_BURST_MAX):
        raise OptionError('hashlimit: bad value for option "--hashlimit-burst", or out of '
                          f"range (1-{HL_BURST_MAX})")
    v = r[0] * _FACTOR.get(r[1][:1], 1)
    if v > U64:
        raise OptionError(f'hashlimit: value "{text}" too large')
    return v


def _print_bytes(avg: int, burst: int, pfx: str) -> tuple[str, str, int]:
    units = (("m", 1024 * 1024), ("k", 1024), ("", 1))
    r = _cost_to_bytes(avg)
    i = 0
    while i < 2:
        thresh = units[i][1]
        if r >= thresh and _bytes_to_cost(r & ~(thresh - 1)) == avg:
            break
        i += 1
    rate = f"{r // units[i][1]}{units[i][0]}b/s"
    if burst == 0:
        return rate, "", 15 * 1000
    r *= burst
    i = 0
    while i < 2 and r < units[i][1]:
        i += 1
    return rate, f"{pfx}burst {r // units[i][1]}{units[i][0]}b", 60 * 1000


_PORT_OFFSET: Final = {6: 0, 17: 0, 33: 0, 50: 0, 132: 0, 136: 0, 51: 4}


class _HTable:
    """One named hashlimit table (``struct xt_hashlimit_htable``)."""

    __slots__ = ("cfg", "family", "entries", "next_gc", "max", "plen")

    def __init__(self, cfg: HashlimitInfo, family: int) -> None:
        self.cfg = cfg
        self.family = family
        size = min(cfg.size or HL_DEFAULT_SIZE, HL_MAX_SIZE)
        mx = min(cfg.max, HL_MAX_SIZE) if cfg.max else 8 * size
        self.max = max(mx, size)
        self.entries: dict[tuple[int, int, int, int], list[int]] = {}
        self.next_gc = -1
        self.plen = 32 if family == 4 else 128

    def _key(self, pkt: Packet) -> tuple[int, int, int, int]:
        cfg, mode, plen = self.cfg, self.cfg.mode, self.plen
        src = dst = sp = dp = 0
        if mode & M_DIP:
            dst = int.from_bytes(pkt.dst, "big") >> (plen - cfg.dstmask) \
                if cfg.dstmask else 0
        if mode & M_SIP:
            src = int.from_bytes(pkt.src, "big") >> (plen - cfg.srcmask) \
                if cfg.srcmask else 0
        if mode & (M_SPT | M_DPT):
            off = _PORT_OFFSET.get(pkt.proto)
            if off is not None:
                at = pkt.l4off + off
                b = pkt.buf
                if len(b) < at + 4:
                    raise HotDrop("hashlimit: ports cut short")
                if mode & M_SPT:
                    sp = b[at] << 8 | b[at + 1]
                if mode & M_DPT:
                    dp = b[at + 2] << 8 | b[at + 3]
        return src, dst, sp, dp

    def _gc(self, now: int) -> None:
        interval = max(msecs_to_jiffies(self.cfg.gc_interval), 1)
        if self.next_gc < 0:
            self.next_gc = now + interval
            return
        if now < self.next_gc:
            return
        at = self.next_gc + (now - self.next_gc) // interval * interval
        for k in [k for k, e in self.entries.items() if at >= e[0]]:
            del self.entries[k]
        self.next_gc = at + interval

    def pred(self, rule_mode: int) -> Pred:
        cfg = self.cfg
        inv = bool(rule_mode & M_INVERT)
        rate_match = bool(rule_mode & M_RATE_MATCH)
        rule_bytes = bool(rule_mode & M_BYTES)
        expire = msecs_to_jiffies(cfg.expire)
        table_bytes = bool(cfg.mode & M_BYTES)
        table_rate = bool(cfg.mode & M_RATE_MATCH)
        cap_bytes = HL_CPJ_BYTES * HZ

        def hashlimit(pkt: Packet, ctx: Context) -> bool:
            now = int(ctx.now * HZ)
            self._gc(now)
            key = self._key(pkt)
            e = self.entries.get(key)
            if e is None:
                if len(self.entries) >= self.max:
                    raise HotDrop(f"hashlimit: max count of {self.max} reached")
                # [expires, prev, credit/current_rate, cap/rate, cost/burst, prev_window]
                e = [now + expire, now, 0, 0, 0, 0]
                if table_rate:
                    if table_bytes:
                        rate = _cost_to_bytes(cfg.avg & U32)
                        e[3] = rate
                        e[4] = cfg.burst * rate if cfg.burst else rate
                    else:
                        rate = HL_SCALE // cfg.avg if cfg.avg else 0
                        e[3] = rate
                        e[4] = cfg.burst + rate
                elif table_bytes:
                    e[2] = cap_bytes
                    e[4] = hl_user2credits_byte(cfg.avg)
                    e[3] = cfg.burst
                else:
                    e[2] = e[3] = hl_user2credits(cfg.avg * cfg.burst)
                    e[4] = hl_user2credits(cfg.avg)
                self.entries[key] = e
            else:
                e[0] = now + expire
                _recalc(e, now, table_rate, table_bytes, cfg.interval)
            if rate_match:
                e[2] += len(pkt.buf) if rule_bytes else 1
                if not e[5] and e[2] <= e[4]:
                    return not inv
                return inv
            if rule_bytes:
                cost = ((len(pkt.buf) >> HL_BYTE_SHIFT) + 1) * e[4]
                if cost > cap_bytes:
                    cost = cap_bytes
                if e[2] < cost and e[3]:
                    e[3] -= 1
                    e[2] = cap_bytes
                cost &= U32
            else:
                cost = e[4]
            if e[2] >= cost:
                e[2] -= cost
                return not inv
            return inv
        return hashlimit


def _recalc(e: list[int], now: int, rate_match: bool, is_bytes: bool, interval: int) -> None:
    """``rateinfo_recalc``."""
    delta = now - e[1]
    if delta == 0:
        return
    if rate_match:
        iv = interval * HZ
        if delta < iv:
            return
        e[1] = now
        e[5] = 1 if e[2] * iv > delta * e[3] else 0
        e[2] = 0
        return
    e[1] = now
    if is_bytes:
        old = e[2]
        e[2] = (e[2] + HL_CPJ_BYTES * delta) & U64
        cap = HL_CPJ_BYTES * HZ
        if old >= e[2]:
            e[2] = cap
            return
    else:
        e[2] = (e[2] + delta * HL_CPJ) & U64
        cap = e[3]
    if e[2] > cap:
        e[2] = cap


LIMIT: Final = Limit()
HASHLIMIT: Final = Hashlimit()
