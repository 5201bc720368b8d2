"""The time match (rules/ext/daytime.py, xt_time): the kernel's test on a wall-clock second,
the option parser's dates and errors, and the clock a firewall gives it. The save and -L
texts were compared with iptables-legacy 1.8.9 for the same rules (identical, including its
default ``--datestop 2038-01-19T03:14:07`` and "11st"), and corpus/rules_time holds the
kernel's answers for twelve rules at the moment it was recorded (statewall agrees)."""

from __future__ import annotations

import calendar

import pytest
from scapy.layers.inet import IP, UDP
from scapy.packet import raw

from statewall.conntrack.sysctl import Settings
from statewall.firewall import Firewall
from statewall.packet.decode import decode_ip
from statewall.rules.errors import ConfigError
from statewall.rules.ext.daytime import (ALL_MONTHDAYS, TimeInfo, matches, parse_date,
                                         parse_daytime)
from statewall.rules.parse import load
from statewall.rules.save import save


def at(text: str) -> int:
    """UNIX seconds of ``YYYY-MM-DD hh:mm:ss`` UTC."""
    d, t = text.split()
    return calendar.timegm((*map(int, d.split("-")), *map(int, t.split(":")), 0, 0, 0))


def test_dates_times_and_days() -> None:
    # 2026-11-27 is a Friday (weekday 5)
    fri = at("2026-11-27 13:30:00")
    assert matches(TimeInfo(), fri)
    assert not matches(TimeInfo(date_stop=parse_date("2020-01-01")), fri)
    assert matches(TimeInfo(date_start=parse_date("2026-11-27T13:30")), fri)
    assert not matches(TimeInfo(date_start=parse_date("2026-11-27T13:30:01")), fri)
    assert matches(TimeInfo(weekdays=1 << 5), fri) and not matches(TimeInfo(weekdays=1 << 4), fri)
    assert matches(TimeInfo(weekdays=1 << 7), at("2026-11-29 00:00:00"))     # Sunday is 7
    assert matches(TimeInfo(monthdays=1 << 27), fri)
    assert not matches(TimeInfo(monthdays=ALL_MONTHDAYS ^ (1 << 27)), fri)
    day = TimeInfo(daytime_start=parse_daytime("06:00"), daytime_stop=parse_daytime("18:00"))
    assert matches(day, fri) and not matches(day, at("2026-11-27 18:00:01"))
    assert matches(day, at("2026-11-27 18:00:00"))                           # inclusive


def test_ranges_past_midnight_and_contiguous() -> None:
    night = dict(daytime_start=parse_daytime("23:00"), daytime_stop=parse_daytime("01:00"))
    mon = 1 << 1
    # Monday 23:30 and Tuesday 00:30: without --contiguous the weekday is the packet's own
    assert matches(TimeInfo(**night, weekdays=mon), at("2026-11-23 23:30:00"))
    assert not matches(TimeInfo(**night, weekdays=mon), at("2026-11-24 00:30:00"))
    # --contiguous: Tuesday 00:30 still belongs to Monday's range
    assert matches(TimeInfo(**night, weekdays=mon, contiguous=True), at("2026-11-24 00:30:00"))
    assert not matches(TimeInfo(**night), at("2026-11-24 12:00:00"))
    same = TimeInfo(daytime_start=parse_daytime("05:00"), daytime_stop=parse_daytime("05:00"))
    assert matches(same, at("2026-11-24 12:00:00"))                          # the whole day


@pytest.mark.parametrize("rule, why", [
    ("--timestart 24:00", 'invalid time "24:00" specified'),
    ("--weekdays 0", "No, the week does NOT begin with Sunday."),
    ("--weekdays Xy", "Xy is not a valid day specifier"),
    ("--monthdays 32", "32 is not a valid day for --monthdays"),
    ("--datestart 1969", 'Invalid date "1969" specified'),
    ("--datestart 2039", 'Invalid date "2039" specified'),
    ("--datestart 2020-13", 'Invalid date "2020-13" specified'),
    ("--timestart 01:00 --timestop 02:00 --contiguous", "--contiguous only makes sense"),
    ("--utc --kerneltz", "cannot be used together"),
])
def test_option_errors(rule: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(f"*filter\n-A FORWARD -m time {rule}\nCOMMIT\n", "t.rules", 4)
    assert why in e.value.message and e.value.line == 2


def test_weekday_prefixes_and_inversion_save_as_iptables() -> None:
    rs = load("*filter\n-A FORWARD -m time ! --weekdays Sa,Su ! --monthdays 31\nCOMMIT\n",
              "t", 4)
    assert ("-A FORWARD -m time --monthdays 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,"
            "20,21,22,23,24,25,26,27,28,29,30 --weekdays Mon,Tue,Wed,Thu,Fri --datestop "
            "2038-01-19T03:14:07") in save(rs)


def test_firewall_clock_is_wall_time() -> None:
    """A replay's ``now`` is the capture's UNIX time; a live run passes the monotonic clock
    and sets ``wall_offset``."""
    rules = load("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m time --timestart 06:00 "
                 "--timestop 18:00 -j ACCEPT\nCOMMIT\n", "t", 4)
    data = raw(IP(src="198.51.100.2", dst="203.0.113.2") / UDP(sport=1, dport=2))
    fw = Firewall(Settings(), rules4=rules)
    assert fw.process(decode_ip(data), float(at("2026-11-27 12:00:00"))).verdict == "ACCEPT"
    assert fw.process(decode_ip(data), float(at("2026-11-27 20:00:00"))).verdict == "DROP"
    live = Firewall(Settings(), rules4=rules)
    live.wall_offset = at("2026-11-27 12:00:00") - 1000.0
    assert live.process(decode_ip(data), 1000.0).verdict == "ACCEPT"
    live.wall_offset += 8 * 3600
    assert live.process(decode_ip(data), 1000.5).verdict == "DROP"
