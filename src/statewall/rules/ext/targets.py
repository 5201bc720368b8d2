"""Non-NAT targets: REJECT, LOG, NFLOG, CT, NOTRACK, TRACE.

Owns: their options, save text, kernel checks (REJECT only from INPUT/FORWARD/OUTPUT of
the filter table and tcp-reset only for ``-p tcp``; CT/NOTRACK/TRACE only in raw) and
actions: REJECT drops and asks the caller for the reply (``RejectRecord``, built by
statewall.packet.reject), LOG/NFLOG emit records and continue, CT --notrack / NOTRACK mark
the packet untracked, other CT options leave a ``CtTemplate``, TRACE sets the trace bit.
``CT --timeout NAME`` is recorded on the template: the timeout policy (nfct timeout) is
the caller's to resolve, and it must refuse a name it does not have.
Follows iptables extensions/libipt_REJECT.c, libip6t_REJECT.c, libxt_LOG.c, libxt_NFLOG.c,
libxt_CT.c, libxt_NOTRACK.c, libxt_TRACE.c and the kernel's ipt_REJECT.c, ip6t_REJECT.c,
xt_LOG.c, xt_NFLOG.c, xt_CT.c, xt_TRACE.c.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from ..numbers import U16, U32, uint
from ..quote import save_string
from ..result import (NF_DROP, NF_QUEUE, XT_CONTINUE, CtTemplate, LogRecord, NflogRecord,
                      RejectRecord)
from .base import (ARG_NONE, H_FWD, H_IN, H_OUT, H_PRE, Env, KernelCtx, Opt, RuleCtx, Seen,
                   TargetExt, TargetFn)

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context
    from ..result import RunResult

# ------------------------------------------------------------------------------- REJECT
# (canonical name, alias) in the order libipt_REJECT.c / libip6t_REJECT.c search them
REJECT_V4: Final = (("icmp-net-unreachable", "net-unreach"),
                    ("icmp-host-unreachable", "host-unreach"),
                    ("icmp-proto-unreachable", "proto-unreach"),
                    ("icmp-port-unreachable", "port-unreach"),
                    ("icmp-net-prohibited", "net-prohib"),
                    ("icmp-host-prohibited", "host-prohib"),
                    ("tcp-reset", "tcp-rst"),
                    ("icmp-admin-prohibited", "admin-prohib"))
REJECT_V6: Final = (("icmp6-no-route", "no-route"),
                    ("icmp6-adm-prohibited", "adm-prohibited"),
                    ("icmp6-addr-unreachable", "addr-unreach"),
                    ("icmp6-port-unreachable", "port-unreach"),
                    ("tcp-reset", "tcp-reset"),
                    ("icmp6-policy-fail", "policy-fail"),
                    ("icmp6-reject-route", "reject-route"))


@dataclass(frozen=True, slots=True)
class RejectInfo:
    with_: str


class Reject(TargetExt):
    name = "REJECT"
    table = "filter"
    hooks = H_IN | H_FWD | H_OUT
    options = (Opt("reject-with"),)

    def build(self, seen: Seen, rc: RuleCtx) -> RejectInfo:
        names = REJECT_V4 if rc.family == 4 else REJECT_V6
        if "reject-with" not in seen:
            return RejectInfo("icmp-port-unreachable" if rc.family == 4
                              else "icmp6-port-unreachable")
        arg = seen.arg("reject-with")
        for name, alias in names:
            if arg and (name.startswith(arg.lower()) or alias.startswith(arg.lower())):
                return RejectInfo(name)
        raise OptionError(f"REJECT: unknown reject type \"{arg}\"")

    def save(self, i: RejectInfo, family: int) -> str:
        return f" --reject-with {i.with_}"

    def show(self, i: RejectInfo, family: int) -> str:
        return f" reject-with {i.with_}"

    def check(self, i: RejectInfo, kc: KernelCtx) -> None:
        if i.with_ == "tcp-reset" and (kc.ip.proto != 6 or kc.ip.inv & 0x40):
            raise OptionError("REJECT: tcp-reset is only valid with -p tcp")

    def compile(self, i: RejectInfo, env: Env) -> TargetFn:
        with_, table, chain, rulenum = i.with_, env.table, env.chain, env.rulenum

        def reject(pkt: Packet, ctx: Context, res: RunResult) -> int:
            res.emitted.append(RejectRecord(with_, table, chain, rulenum, ctx.hook))
            return NF_DROP
        return reject


# ---------------------------------------------------------------------------------- LOG
SYSLOG_LEVELS: Final = {"alert": 1, "crit": 2, "debug": 7, "emerg": 0, "error": 3,
                        "info": 6, "notice": 5, "panic": 0, "warning": 4}
LOG_FLAGS: Final = (("log-tcp-sequence", 0x01), ("log-tcp-options", 0x02),
                    ("log-ip-options", 0x04), ("log-uid", 0x08), ("log-macdecode", 0x20))


@dataclass(frozen=True, slots=True)
class LogInfo:
    level: int
    flags: int
    prefix: str


class Log(TargetExt):
    name = "LOG"
    options = (Opt("log-level"), Opt("log-prefix")) + tuple(
        Opt(n, arg=ARG_NONE) for n, _ in LOG_FLAGS)

    def build(self, seen: Seen, rc: RuleCtx) -> LogInfo:
        level = 4
        if "log-level" in seen:
            a = seen.arg("log-level")
            lv = SYSLOG_LEVELS.get(a.lower())
            if lv is None:
                lv = uint(a, 0, 7, "LOG --log-level") if a[:1].isdigit() else -1
            if lv < 0:
                raise OptionError(f'LOG: log level "{a}" unknown')
            level = lv
        prefix = seen.arg("log-prefix")
        if "log-prefix" in seen:
            if not prefix:
                raise OptionError("LOG: --log-prefix must not be empty")
            if "\n" in prefix:
                raise OptionError("LOG: newlines not allowed in --log-prefix")
        flags = 0
        for n, bit in LOG_FLAGS:
            if n in seen:
                flags |= bit
        return LogInfo(level, flags, prefix[:29])

    def save(self, i: LogInfo, family: int) -> str:
        s = " --log-prefix" + save_string(i.prefix) if i.prefix else ""
        if i.level != 4:
            s += f" --log-level {i.level}"
        for n, bit in LOG_FLAGS:
            if i.flags & bit:
                s += f" --{n}"
        return s

    def show(self, i: LogInfo, family: int) -> str:
        s = f" LOG flags {i.flags} level {i.level}"
        return s + (f' prefix "{i.prefix}"' if i.prefix else "")

    def compile(self, i: LogInfo, env: Env) -> TargetFn:
        prefix, level, flags = i.prefix, i.level, i.flags
        table, chain, rulenum = env.table, env.chain, env.rulenum

        def log(pkt: Packet, ctx: Context, res: RunResult) -> int:
            res.emitted.append(LogRecord(prefix, level, flags, table, chain, rulenum, ctx.hook))
            return XT_CONTINUE
        return log


# -------------------------------------------------------------------------------- NFLOG
@dataclass(frozen=True, slots=True)
class NflogInfo:
    group: int
    prefix: str
    len: int
    copy_len: bool        # --nflog-size (XT_NFLOG_F_COPY_LEN); else --nflog-range
    threshold: int


class Nflog(TargetExt):
    name = "NFLOG"
    options = (Opt("nflog-group"), Opt("nflog-prefix"),
               Opt("nflog-range", excl=("nflog-size",)),
               Opt("nflog-size", excl=("nflog-range",)), Opt("nflog-threshold"))

    def build(self, seen: Seen, rc: RuleCtx) -> NflogInfo:
        group = uint(seen.arg("nflog-group"), 0, U16, "NFLOG --nflog-group") \
            if "nflog-group" in seen else 0
        prefix = seen.arg("nflog-prefix")
        if "nflog-prefix" in seen:
            if not prefix:
                raise OptionError("NFLOG: --nflog-prefix must not be empty")
            if "\n" in prefix:
                raise OptionError("NFLOG: newlines not allowed in --nflog-prefix")
        n, copy = 0, False
        if "nflog-size" in seen:
            n, copy = uint(seen.arg("nflog-size"), 0, U32, "NFLOG --nflog-size"), True
        elif "nflog-range" in seen:
            n = uint(seen.arg("nflog-range"), 0, U32, "NFLOG --nflog-range")
        thr = uint(seen.arg("nflog-threshold"), 0, U16, "NFLOG --nflog-threshold") \
            if "nflog-threshold" in seen else 0
        return NflogInfo(group, prefix[:63], n, copy, thr)

    def _text(self, i: NflogInfo, pfx: str) -> str:
        s = f" {pfx}nflog-prefix" + save_string(i.prefix) if i.prefix else ""
        if i.group:
            s += f" {pfx}nflog-group {i.group}"
        if i.copy_len:
            s += f" {pfx}nflog-size {i.len}"
        elif i.len:
            s += f" {pfx}nflog-range {i.len}"
        if i.threshold:
            s += f" {pfx}nflog-threshold {i.threshold}"
        return s

    def save(self, i: NflogInfo, family: int) -> str:
        return self._text(i, "--")

    def show(self, i: NflogInfo, family: int) -> str:
        return self._text(i, "")

    def compile(self, i: NflogInfo, env: Env) -> TargetFn:
        group, prefix, thr = i.group, i.prefix, i.threshold
        size = i.len if i.copy_len else None
        table, chain, rulenum = env.table, env.chain, env.rulenum

        def nflog(pkt: Packet, ctx: Context, res: RunResult) -> int:
            res.emitted.append(NflogRecord(group, prefix, size, thr, table, chain, rulenum,
                                           ctx.hook))
            return XT_CONTINUE
        return nflog


# ------------------------------------------------------------------------------ NFQUEUE
@dataclass(frozen=True, slots=True)
class NfqueueInfo:
    num: int
    total: int
    bypass: bool
    fanout: bool


class Nfqueue(TargetExt):
    """libxt_NFQUEUE.c / xt_NFQUEUE.c: QUEUE to a queue number. With --queue-balance the
    kernel spreads flows by a seeded hash of the addresses; statewall uses a fixed hash of
    the address pair (the same flow always gets the same queue, as in the kernel)."""

    name = "NFQUEUE"
    options = (Opt("queue-num", excl=("queue-balance",)),
               Opt("queue-balance", excl=("queue-num",)),
               Opt("queue-bypass", arg=ARG_NONE), Opt("queue-cpu-fanout", arg=ARG_NONE))

    def build(self, seen: Seen, rc: RuleCtx) -> NfqueueInfo:
        num, total = 0, 1
        if "queue-num" in seen:
            num = uint(seen.arg("queue-num"), 0, U16, "NFQUEUE --queue-num")
        if "queue-balance" in seen:
            a = seen.arg("queue-balance")
            if ":" not in a:
                raise OptionError("NFQUEUE: --queue-balance needs a range (from:to)")
            lo_s, hi_s = a.split(":", 1)
            lo = uint(lo_s, 0, U16 - 1, "NFQUEUE --queue-balance") if lo_s else 0
            hi = uint(hi_s, 0, U16 - 1, "NFQUEUE --queue-balance") if hi_s else U16 - 1
            if lo >= hi:
                raise OptionError(f"NFQUEUE: bad range \"{a}\"")
            num, total = lo, hi - lo + 1
        return NfqueueInfo(num, total, "queue-bypass" in seen, "queue-cpu-fanout" in seen)

    def save(self, i: NfqueueInfo, family: int) -> str:
        s = f" --queue-balance {i.num}:{i.num + i.total - 1}" if i.total > 1 \
            else f" --queue-num {i.num}"
        return s + (" --queue-bypass" if i.bypass else "") + \
            (" --queue-cpu-fanout" if i.fanout else "")

    def show(self, i: NfqueueInfo, family: int) -> str:
        s = f" NFQUEUE balance {i.num}:{i.num + i.total - 1}" if i.total > 1 \
            else f" NFQUEUE num {i.num}"
        return s + (" bypass" if i.bypass else "") + (" cpu-fanout" if i.fanout else "")

    def compile(self, i: NfqueueInfo, env: Env) -> TargetFn:
        num, total, bypass = i.num, i.total, i.bypass

        def nfqueue(pkt: Packet, ctx: Context, res: RunResult) -> int:
            q = num
            if total > 1:
                h = int.from_bytes(pkt.src, "big") ^ int.from_bytes(pkt.dst, "big")
                q = num + (h * 0x9E3779B1 & 0xFFFFFFFF) * total // 0x100000000
            res.queue_num = q
            res.queue_bypass = bypass
            return NF_QUEUE
        return nfqueue


# ------------------------------------------------------------------------ CT, NOTRACK
CT_EVENTS: Final = (("new", 0), ("related", 1), ("destroy", 2), ("reply", 3),
                    ("assured", 4), ("protoinfo", 5), ("helper", 6), ("mark", 7),
                    ("natseqinfo", 8), ("secmark", 9))
EXP_EVENTS: Final = (("new", 0),)
# conntrack helpers statewall has, and the protocol each needs in the rule
CT_HELPERS: Final = {"ftp": 6, "tftp": 17}


def _events(text: str, table: tuple[tuple[str, int], ...], what: str) -> int:
    mask = 0
    for word in text.split(","):
        for name, bit in table:
            if name == word:
                mask |= 1 << bit
                break
        else:
            raise OptionError(f'CT: unknown event type "{word}" for {what}')
    return mask


def _events_text(mask: int, table: tuple[tuple[str, int], ...]) -> str:
    return ",".join(n for n, b in table if mask & (1 << b))


@dataclass(frozen=True, slots=True)
class CtInfo:
    notrack: bool = False
    helper: str = ""
    timeout: str = ""
    ctevents: int = 0
    expevents: int = 0
    zone: int = 0
    zone_dir: str = ""      # "", "orig", "reply"
    alias: bool = False     # -j NOTRACK


class Ct(TargetExt):
    name = "CT"
    table = "raw"
    hooks = H_PRE | H_OUT
    options: tuple[Opt, ...] = (Opt("notrack", arg=ARG_NONE), Opt("ctevents"), Opt("expevents"),
               Opt("helper"), Opt("timeout"),
               Opt("zone", "zone"), Opt("zone-orig", "zone"), Opt("zone-reply", "zone"))

    def build(self, seen: Seen, rc: RuleCtx) -> CtInfo:
        kw: dict[str, object] = {}
        for g in seen.items:
            n = g.opt.name
            if n == "notrack":
                kw["notrack"] = True
            elif n == "ctevents":
                kw["ctevents"] = _events(g.arg, CT_EVENTS, "--ctevents")
            elif n == "expevents":
                kw["expevents"] = _events(g.arg, EXP_EVENTS, "--expevents")
            elif n == "helper":
                kw["helper"] = g.arg[:15]
            elif n == "timeout":
                if not g.arg:
                    raise OptionError("CT: --timeout needs a timeout policy name")
                kw["timeout"] = g.arg[:31]
            else:
                if g.arg == "mark":
                    raise OptionError(f"CT: --{n} mark is not supported by statewall")
                kw["zone"] = uint(g.arg, 0, U16, f"CT --{n}")
                kw["zone_dir"] = n[5:]
        return CtInfo(**kw)  # type: ignore[arg-type]

    def save(self, i: CtInfo, family: int) -> str:
        if i.alias:
            return ""
        s = " --notrack" if i.notrack else ""
        if i.helper:
            s += f" --helper {i.helper}"
        if i.timeout:
            s += f" --timeout {i.timeout}"
        if i.ctevents:
            s += f" --ctevents {_events_text(i.ctevents, CT_EVENTS)}"
        if i.expevents:
            s += f" --expevents {_events_text(i.expevents, EXP_EVENTS)}"
        if i.zone:
            s += f" --zone{'-' + i.zone_dir if i.zone_dir else ''} {i.zone}"
        return s

    def show(self, i: CtInfo, family: int) -> str:
        if i.alias:
            return " NOTRACK"
        if i.notrack:
            return " CT notrack"
        s = " CT"
        if i.helper:
            s += f" helper {i.helper}"
        if i.timeout:
            s += f" timeout {i.timeout}"
        if i.ctevents:
            s += f" ctevents {_events_text(i.ctevents, CT_EVENTS)}"
        if i.expevents:
            s += f" expevents {_events_text(i.expevents, EXP_EVENTS)}"
        if i.zone:
            s += f" zone{'-' + i.zone_dir if i.zone_dir else ''} {i.zone}"
        return s

    def check(self, i: CtInfo, kc: KernelCtx) -> None:
        if i.helper:
            need = CT_HELPERS.get(i.helper)
            if need is None:
                raise OptionError(f"CT: no conntrack helper \"{i.helper}\" in statewall "
                                  f"(it has {', '.join(CT_HELPERS)})")
            if kc.ip.proto != need or kc.ip.inv & 0x40:
                raise OptionError(f"CT: helper {i.helper} needs -p "
                                  f"{'tcp' if need == 6 else 'udp'} (without !)")

    def compile(self, i: CtInfo, env: Env) -> TargetFn:
        if i.notrack or i.alias:
            def notrack(pkt: Packet, ctx: Context, res: RunResult) -> int:
                if pkt.ct is None and not pkt.untracked and res.ct_template is None:
                    pkt.untracked = True
                    t = res.ct_template = CtTemplate()
                    t.notrack = True
                return XT_CONTINUE
            return notrack
        info = i

        def ct(pkt: Packet, ctx: Context, res: RunResult) -> int:
            if pkt.ct is None and not pkt.untracked and res.ct_template is None:
                t = res.ct_template = CtTemplate()
                t.zone = info.zone
                t.zone_dir = info.zone_dir or "both"
                t.helper = info.helper or None
                t.timeout = info.timeout or None
                t.ctevents = info.ctevents or None
                t.expevents = info.expevents or None
            return XT_CONTINUE
        return ct


class Notrack(Ct):
    name = "NOTRACK"
    list_name = "CT"                 # an alias of CT --notrack in the kernel
    options = ()

    def build(self, seen: Seen, rc: RuleCtx) -> CtInfo:
        return CtInfo(notrack=True, alias=True)


# -------------------------------------------------------------------------------- TRACE
@dataclass(frozen=True, slots=True)
class TraceInfo:
    pass


class Trace(TargetExt):
    name = "TRACE"
    table = "raw"

    def build(self, seen: Seen, rc: RuleCtx) -> TraceInfo:
        return TraceInfo()

    def save(self, i: TraceInfo, family: int) -> str:
        return ""

    def show(self, i: TraceInfo, family: int) -> str:
        return ""

    def compile(self, i: TraceInfo, env: Env) -> TargetFn:
        def trace(pkt: Packet, ctx: Context, res: RunResult) -> int:
            ctx.nf_trace = True
            return XT_CONTINUE
        return trace


REJECT: Final = Reject()
LOG: Final = Log()
NFLOG: Final = Nflog()
NFQUEUE: Final = Nfqueue()
CT: Final = Ct()
NOTRACK: Final = Notrack()
TRACE: Final = Trace()
