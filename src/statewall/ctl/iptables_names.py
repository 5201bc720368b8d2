"""``iptables -L`` without -n: the names some extensions print instead of numbers.

Owns: ``print_port`` (a service name from /etc/services for the rule's protocol, as
``getservbyport``), ``print_icmptype`` (the first ICMP / ICMPv6 name of iptables' table
for the exact type and code range), the LOG target's level and flag names
(libxt_LOG.c ``LOG_print`` without -n). Every other extension prints the same text with
and without -n (statewall's ``show``). Must not know: the listing layout.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from typing import Any, Final

from ..rules.ext.icmp import ICMP_NAMES, ICMPV6_NAMES
from ..rules.ext.ipheader import TOS_NAMES
from ..rules.netdb import proto_name

# libxt_LOG.c (LOG_print): level names; flag bits -> words
_LEVELS: Final = {0: "emerg", 1: "alert", 2: "crit", 3: "err", 4: "warn", 5: "notice",
                  6: "info", 7: "debug"}
_LOG_FLAGS: Final = ((0x01, "tcp-sequence"), (0x02, "tcp-options"), (0x04, "ip-options"),
                     (0x08, "uid"), (0x20, "macdecode"))
_FULL: Final = (0, 0xFFFF)
_TCP_FLAGS: Final = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08),
                     ("ACK", 0x10), ("URG", 0x20))


@lru_cache(maxsize=4096)
def port(n: int, proto: str) -> str:
    try:
        return socket.getservbyport(n, proto)
    except (OSError, OverflowError):
        return str(n)


def _ports(what: str, rng: tuple[int, int], inv: bool, proto: str | None) -> str:
    """``print_ports``; ``proto`` None: numbers (the -n text)."""
    if tuple(rng) == _FULL and not inv:
        return ""
    neg = "!" if inv else ""

    def p(n: int) -> str:
        return str(n) if proto is None else port(n, proto)
    if rng[0] == rng[1]:
        return f" {what}:{neg}{p(rng[0])}"
    return f" {what}s:{neg}{p(rng[0])}:{p(rng[1])}"


def _icmp(label: str, info: Any, table: tuple[tuple[str, int, int, int], ...]) -> str | None:
    for name, typ, lo, hi in table:
        if (typ, lo, hi) == (info.type, info.code_min, info.code_max):
            return f" {label} {'!' if info.invert else ''}{name}"
    return None


def _read(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [ln.split("#", 1)[0].split() for ln in f]
    except OSError:
        return []


@lru_cache(maxsize=1)
def _local_names() -> tuple[dict[bytes, str], dict[bytes, str]]:
    """/etc/hosts (address -> its first name, the first line wins) and /etc/networks
    (IPv4 network number -> name), read once."""
    hosts: dict[bytes, str] = {}
    for words in _read("/etc/hosts"):
        if len(words) < 2:
            continue
        for fam in (socket.AF_INET, socket.AF_INET6):
            try:
                hosts.setdefault(socket.inet_pton(fam, words[0]), words[1])
                break
            except OSError:
                continue
    nets: dict[bytes, str] = {}
    for words in _read("/etc/networks"):
        if len(words) >= 2:
            parts = words[1].split(".")
            parts += ["0"] * (4 - len(parts))
            try:
                nets.setdefault(bytes(int(x) for x in parts[:4]), words[0])
            except ValueError:
                continue
    return hosts, nets


def address(a: bytes) -> str | None:
    """``xtables_ipaddr_to_anyname`` / ``xtables_ip6addr_to_anyname`` from the local files
    only (a host name, then for IPv4 a network name); None: print the number."""
    hosts, nets = _local_names()
    return hosts.get(a) or (nets.get(a) if len(a) == 4 else None)


def tcp_flags(flags: int) -> str:
    """``print_tcpf``: FIN,SYN,... in bit order, NONE for none."""
    names = [n for n, bit in _TCP_FLAGS if flags & bit]
    return ",".join(names) if names else "NONE"


def match(name: str, info: Any, numeric: str, proto: int) -> str:
    """The match's text without -n (``numeric``: its -n text, returned when no name
    applies)."""
    if name in ("tcp", "udp"):
        head = f" {name}" + _ports("spt", info.spts, info.sinv, None) + \
            _ports("dpt", info.dpts, info.dinv, None)
        named = f" {name}" + _ports("spt", info.spts, info.sinv, name) + \
            _ports("dpt", info.dpts, info.dinv, name)
        if not numeric.startswith(head):
            return numeric
        rest = numeric[len(head):]
        if name == "tcp" and (info.flg_mask or info.finv):
            cut = rest.find(" flags:")
            rest = rest[:cut] + f" flags:{'!' if info.finv else ''}" + \
                f"{tcp_flags(info.flg_mask)}/{tcp_flags(info.flg_cmp)}"
        return named + rest
    if name == "tos":
        for tname, value in TOS_NAMES:
            if info.mask == 0x3F and info.value == value:
                return f" tos match{'!' if info.invert else ''} {tname}"
        return numeric
    if name == "multiport":
        pname = proto_name(proto) or ""
        if pname not in ("tcp", "udp"):
            return numeric
        items = ",".join(f"{port(lo, pname)}:{port(hi, pname)}" if rng else port(lo, pname)
                         for lo, hi, rng in info.ports)
        return f" multiport {info.which} {' !' if info.invert else ''}{items}"
    if name == "icmp":
        return _icmp("icmp", info, ICMP_NAMES) or numeric
    if name == "icmp6":
        return _icmp("ipv6-icmp", info, ICMPV6_NAMES) or numeric
    return numeric


def target(name: str, info: Any, numeric: str) -> str:
    if name != "LOG":
        return numeric
    level = _LEVELS.get(info.level)
    s = " LOG " + (f"level {level}" if level else f"UNKNOWN level {info.level}")
    for bit, word in _LOG_FLAGS:
        if info.flags & bit:
            s += f" {word}"
    if info.flags & ~0x2F:
        s += " unknown-flags"
    return s + (f' prefix "{info.prefix}"' if info.prefix else "")
