"""The ``time`` match: dates, times of day, weekdays and days of the month (xt_time).

Owns: the options (``--datestart`` / ``--datestop`` in ISO 8601, ``--timestart`` /
``--timestop``, ``[!] --weekdays``, ``[!] --monthdays``, ``--contiguous``, ``--kerneltz``
and its old name ``--localtz``, ``--utc``), the save and ``-L`` texts as iptables 1.8.9
prints them (its default ``--datestop 2038-01-19T03:14:07`` in save, the "11st" of ``-L``),
the checks, and the test: the packet's wall-clock second (``ktime_get_real_seconds``: the
capture's timestamp in a replay, the clock in a live run), the date range, the time of day
(a range that wraps past midnight, ``--contiguous`` counting its early part to the day
before), then weekday and day of the month. Follows iptables extensions/libxt_time.c and
the kernel's net/netfilter/xt_time.c. ``--kerneltz`` takes the kernel's timezone as UTC
(``sys_tz`` is unset on most machines: the kernel then does the same). Depends on the
clock: never flow-stable.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from .base import ARG_NONE, Env, KernelCtx, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

WEEK_DAYS: Final = (None, "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_WEEKDAYS: Final = 0xFE              # XT_TIME_ALL_WEEKDAYS: bits 1..7
ALL_MONTHDAYS: Final = 0xFFFFFFFE       # XT_TIME_ALL_MONTHDAYS: bits 1..31
MAX_DAYTIME: Final = 24 * 3600 - 1
INT_MAX: Final = 2**31 - 1              # the default --datestop
DAY: Final = 86400


@dataclass(frozen=True, slots=True)
class TimeInfo:
    date_start: int = 0
    date_stop: int = INT_MAX
    daytime_start: int = 0
    daytime_stop: int = MAX_DAYTIME
    weekdays: int = ALL_WEEKDAYS
    monthdays: int = ALL_MONTHDAYS
    kerneltz: bool = False
    contiguous: bool = False


def parse_date(s: str) -> int:
    """``YYYY[-MM[-DD[Thh[:mm[:ss]]]]]`` (UTC) in seconds since the epoch; fields left out
    are the start of the period (mktime's normalisation of a 0 month or day included)."""
    bad = OptionError(f'Invalid date "{s}" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]')
    vals = [1970, 1, 1, 0, 0, 0]
    limits = (2038, 12, 31, 23, 59, 59)
    seps = "--T::"
    rest = s
    for k in range(6):
        n = _digits(rest)
        num = int(rest[:n]) if n else 0      # (strtoul of nothing is 0)
        rest = rest[n:]
        if num > limits[k] or (k == 0 and num < 1970):
            raise bad
        vals[k] = num
        if not rest:
            break
        if k == 5 or rest[0] != seps[k]:
            raise bad
        rest = rest[1:]
    y, mo, d, h, mi, sec = vals
    if mo == 0:
        y, mo = y - 1, 12
    t = calendar.timegm((y, mo, 1, 0, 0, 0, 0, 0, 0)) + (d - 1) * DAY + h * 3600 + mi * 60 + sec
    if t < 0:
        raise bad
    return t


def _digits(s: str) -> int:
    n = 0
    while n < len(s) and s[n].isdigit():
        n += 1
    return n


def parse_daytime(s: str) -> int:
    """``hh:mm[:ss]`` in seconds after midnight."""
    bad = OptionError(f'invalid time "{s}" specified, should be hh:mm[:ss] format and within '
                      "the boundaries")
    fields = s.split(":")
    if len(fields) not in (2, 3) or not fields[0] or _digits(s.replace(":", "")) != \
            len(s) - len(fields) + 1:
        raise bad
    h, m, sec = [int(f) if f else 0 for f in fields] + [0] * (3 - len(fields))
    if h > 23 or m > 59 or sec > 59:
        raise bad
    return h * 3600 + m * 60 + sec


def parse_weekdays(arg: str) -> int:
    mask = 0
    for word in arg.split(","):
        if not word:
            break
        word = word[:3]                 # (a 4-byte buffer: three characters)
        if word.isdigit():
            i = int(word)
            if i == 0:
                raise OptionError("No, the week does NOT begin with Sunday.")
            mask |= 1 << i
            continue
        hit = [i for i, name in enumerate(WEEK_DAYS) if name and name[:2] == word[:2]]
        if not hit or len(word) < 2:
            raise OptionError(f"{word} is not a valid day specifier")
        for i in hit:
            mask |= 1 << i
    return mask & 0xFFFFFFFF


def parse_monthdays(arg: str) -> int:
    mask = 0
    for word in arg.split(","):
        if not word:
            break
        word = word[:2]                 # (a 3-byte buffer)
        try:
            i = int(word, 0)
        except ValueError:
            raise OptionError(f"{word} is not a valid day for --monthdays") from None
        if not 0 <= i <= 31:
            raise OptionError(f"{word} is not a valid day for --monthdays")
        mask |= 1 << i
    return mask


def _hms(t: int) -> str:
    return f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number since 1970-01-01 (the proleptic Gregorian
    calendar; what gmtime gives, without a clock)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _date(t: int, iso: bool) -> str:
    y, mo, d = civil(t // DAY)
    return f"{y:04d}-{mo:02d}-{d:02d}{'T' if iso else ' '}{_hms(t % DAY)}"


def _weekday_list(mask: int) -> str:
    return ",".join(WEEK_DAYS[i] or "" for i in range(1, 8) if mask & (1 << i))


def _monthday_list(mask: int, human: bool) -> str:
    out = []
    for i in range(1, 32):
        if mask & (1 << i):
            suffix = {1: "st", 2: "nd", 3: "rd"}.get(i % 10, "th") if human else ""
            out.append(f"{i}{suffix}")
    return ",".join(out)


class Time(MatchExt):
    name = "time"
    options = (Opt("datestart"), Opt("datestop"), Opt("timestart"), Opt("timestop"),
               Opt("contiguous", arg=ARG_NONE), Opt("weekdays", invert=True),
               Opt("monthdays", invert=True),
               Opt("localtz", arg=ARG_NONE, excl=("utc",)),
               Opt("utc", arg=ARG_NONE, excl=("localtz", "kerneltz")),
               Opt("kerneltz", arg=ARG_NONE, excl=("utc",)))

    def build(self, seen: Seen, rc: RuleCtx) -> TimeInfo:
        kw: dict[str, object] = {}
        for g in seen.items:
            key = g.opt.name
            if key == "datestart":
                kw["date_start"] = parse_date(g.arg)
            elif key == "datestop":
                kw["date_stop"] = parse_date(g.arg)
            elif key == "timestart":
                kw["daytime_start"] = parse_daytime(g.arg)
            elif key == "timestop":
                kw["daytime_stop"] = parse_daytime(g.arg)
            elif key == "contiguous":
                kw["contiguous"] = True
            elif key in ("localtz", "kerneltz"):
                kw["kerneltz"] = True
            elif key == "weekdays":
                m = parse_weekdays(g.arg)
                kw["weekdays"] = m ^ ALL_WEEKDAYS if g.inv else m
            elif key == "monthdays":
                m = parse_monthdays(g.arg)
                kw["monthdays"] = m ^ ALL_MONTHDAYS if g.inv else m
        info = TimeInfo(**kw)  # type: ignore[arg-type]
        if info.contiguous and info.daytime_start < info.daytime_stop:
            raise OptionError("time: --contiguous only makes sense when stoptime is smaller "
                              "than starttime")
        return info

    def save(self, i: TimeInfo, family: int) -> str:
        s = ""
        if i.daytime_start != 0 or i.daytime_stop != MAX_DAYTIME:
            s += f" --timestart {_hms(i.daytime_start)} --timestop {_hms(i.daytime_stop)}"
        if i.monthdays != ALL_MONTHDAYS:
            s += f" --monthdays {_monthday_list(i.monthdays, False)}"
        if i.weekdays != ALL_WEEKDAYS:
            s += f" --weekdays {_weekday_list(i.weekdays)}"
        if i.date_start != 0:
            s += f" --datestart {_date(i.date_start, True)}"
        if i.date_stop != 0:           # (1.8.9 prints the INT_MAX default too)
            s += f" --datestop {_date(i.date_stop, True)}"
        if i.kerneltz:
            s += " --kerneltz"
        return s + (" --contiguous" if i.contiguous else "")

    def show(self, i: TimeInfo, family: int) -> str:
        s = " TIME"
        if i.daytime_start != 0 or i.daytime_stop != MAX_DAYTIME:
            s += f" from {_hms(i.daytime_start)} to {_hms(i.daytime_stop)}"
        if i.weekdays != ALL_WEEKDAYS:
            s += f" on {_weekday_list(i.weekdays)}"
        if i.monthdays != ALL_MONTHDAYS:
            s += f" on {_monthday_list(i.monthdays, True)}"
        if i.date_start != 0:
            s += f" starting from {_date(i.date_start, False)}"
        if i.date_stop != INT_MAX:
            s += f" until date {_date(i.date_stop, False)}"
        if not i.kerneltz:
            s += " UTC"
        return s + (" contiguous" if i.contiguous else "")

    def check(self, i: TimeInfo, kc: KernelCtx) -> None:
        if i.daytime_start > MAX_DAYTIME or i.daytime_stop > MAX_DAYTIME:
            raise OptionError("time: start or stop time greater than 23:59:59 (Numerical "
                              "argument out of domain)")

    def compile(self, i: TimeInfo, env: Env) -> Pred:
        def time_match(pkt: Packet, ctx: Context) -> bool:
            return matches(i, int((ctx.now + ctx.wall_offset) // 1))
        return time_match


def matches(i: TimeInfo, stamp: int) -> bool:
    """xt_time's ``time_mt`` for the wall-clock second ``stamp`` (UTC)."""
    if stamp < i.date_start or stamp > i.date_stop:
        return False
    t = stamp % DAY
    if i.daytime_start < i.daytime_stop:
        if t < i.daytime_start or t > i.daytime_stop:
            return False
    else:
        if i.daytime_start > t > i.daytime_stop:
            return False
        if i.contiguous and t <= i.daytime_stop:
            stamp -= DAY                # the early part belongs to the day before
    days = stamp // DAY
    weekday = (4 + days - 1) % 7 + 1    # 1970-01-01 was a Thursday; Sunday is 7
    if not i.weekdays & (1 << weekday):
        return False
    if i.monthdays != ALL_MONTHDAYS:
        if not i.monthdays & (1 << civil(days)[2]):
            return False
    return True


TIME: Final = Time()
