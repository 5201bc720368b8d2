"""The conntrack-tools command line (``conntrack`` 1.4.7), parsed into a ``Command``.

Owns: the option table (short and long names, which take an argument), value parsing
(addresses, CIDR and masks, ports, protocol numbers and names, TCP state names, ``IPS_*``
status names, mark[/mask], zones, NAT ``addr[:port]`` / ``[addr6]:port``), and the checks
conntrack makes before talking to the kernel (one command, families agree, NAT options not
combined with --any-nat, what -I needs). Pure: no sockets, no table.
Must not know: how a command is executed (``ops``), where the table lives.
Follows conntrack-tools src/conntrack.c (parse_parameter, opts, commands_v_options).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Final

from ..conntrack.conn import IPS
from ..conntrack.proto.registry import PROTO_NAMES


class ParamError(Exception):
    """A parameter problem: conntrack's ``exit_error(PARAMETER_PROBLEM, ...)`` (exit 2)."""

    def text(self) -> str:
        """What conntrack writes to stderr for it: the message and the help hint."""
        return (f"conntrack v1.4.7 (conntrack-tools): {self}\n"
                "Try `conntrack -h' or 'conntrack --help' for more information.\n")


EXIT_PARAM: Final = 2
EXIT_FAIL: Final = 1

# command letter -> command name
COMMANDS: Final[dict[str, str]] = {
    "-L": "list", "--dump": "list", "-G": "get", "--get": "get", "-D": "delete",
    "--delete": "delete", "-I": "create", "--create": "create", "-U": "update",
    "--update": "update", "-E": "event", "--event": "event", "-F": "flush",
    "--flush": "flush", "-C": "count", "--count": "count", "-S": "stats", "--stats": "stats",
    "-A": "add", "--add": "add", "-R": "load", "--load-file": "load", "-V": "version",
    "--version": "version", "-h": "help", "--help": "help",
}
# commands that take an optional table name (conntrack, expect, dying, unconfirmed)
_TABLE_CMDS: Final = frozenset({"list", "get", "delete", "create", "flush", "event", "count",
                                "stats"})
TABLES: Final = ("conntrack", "expect", "expectation", "dying", "unconfirmed")

# option -> canonical name; all take one argument except the NAT ones (optional) and -z
OPTIONS: Final[dict[str, str]] = {
    "-s": "src", "--src": "src", "--orig-src": "src",
    "-d": "dst", "--dst": "dst", "--orig-dst": "dst",
    "-r": "rsrc", "--reply-src": "rsrc", "-q": "rdst", "--reply-dst": "rdst",
    "-p": "proto", "--protonum": "proto", "-t": "timeout", "--timeout": "timeout",
    "-u": "status", "--status": "status", "-m": "mark", "--mark": "mark",
    "-c": "secmark", "--secmark": "secmark", "-e": "event_mask", "--event-mask": "event_mask",
    "-o": "output", "--output": "output", "-b": "buffer", "--buffer-size": "buffer",
    "-w": "zone", "--zone": "zone", "--orig-zone": "orig_zone", "--reply-zone": "reply_zone",
    "--tuple-src": "tuple_src", "--tuple-dst": "tuple_dst",
    "--mask-src": "mask_src", "--mask-dst": "mask_dst", "-i": "id", "--id": "id",
    "-f": "family", "--family": "family", "-l": "label", "--label": "label",
    "--label-add": "label_add", "--label-del": "label_del",
    "--sport": "sport", "--orig-port-src": "sport", "--dport": "dport",
    "--orig-port-dst": "dport", "--reply-port-src": "rsport", "--reply-port-dst": "rdport",
    "--state": "state", "--icmp-type": "icmp_type", "--icmp-code": "icmp_code",
    "--icmp-id": "icmp_id", "--icmpv6-type": "icmp_type", "--icmpv6-code": "icmp_code",
    "--icmpv6-id": "icmp_id", "--mask-port-src": "mask_sport", "--mask-port-dst": "mask_dport",
    "-n": "src_nat", "--src-nat": "src_nat", "-g": "dst_nat", "--dst-nat": "dst_nat",
    "-j": "any_nat", "--any-nat": "any_nat", "-z": "zero", "--zero": "zero",
    "--tuple-port-src": "tuple_sport", "--tuple-port-dst": "tuple_dport",
    "--rule": "rule",            # statewall: the rule that accepted the first packet
    "--helper": "helper",        # statewall: the entry's helper (helper= in the listing)
}
_OPTIONAL_ARG: Final = frozenset({"src_nat", "dst_nat", "any_nat"})
_NO_ARG: Final = frozenset({"zero"})

# conntrack-tools' TCP state names (LISTEN is its name for state 9, the kernel's SYN_SENT2)
TCP_STATES: Final[dict[str, int]] = {
    "NONE": 0, "SYN_SENT": 1, "SYN_RECV": 2, "ESTABLISHED": 3, "FIN_WAIT": 4,
    "CLOSE_WAIT": 5, "LAST_ACK": 6, "TIME_WAIT": 7, "CLOSE": 8, "LISTEN": 9, "SYN_SENT2": 9,
}
# -u names conntrack accepts (UNSET means none)
STATUS_NAMES: Final[dict[str, int]] = {
    "EXPECTED": int(IPS.EXPECTED), "SEEN_REPLY": int(IPS.SEEN_REPLY),
    "ASSURED": int(IPS.ASSURED), "FIXED_TIMEOUT": int(IPS.FIXED_TIMEOUT), "UNSET": 0,
    "CONFIRMED": int(IPS.CONFIRMED), "SRC_NAT": int(IPS.SRC_NAT), "DST_NAT": int(IPS.DST_NAT),
    "SEQ_ADJUST": int(IPS.SEQ_ADJUST), "DYING": int(IPS.DYING), "OFFLOAD": int(IPS.OFFLOAD),
    "HW_OFFLOAD": int(IPS.HW_OFFLOAD), "TEMPLATE": int(IPS.TEMPLATE),
}
_PROTO_BY_NAME: Final = {v: k for k, v in PROTO_NAMES.items()}
PORT_PROTOS: Final = frozenset({6, 17, 33, 132, 136})
ICMP_PROTOS: Final = frozenset({1, 58})
OUTPUTS: Final = frozenset({"extended", "xml", "timestamp", "id", "ktimestamp", "labels",
                            "userspace", "save", "json"})


@dataclass
class Addr:
    """An address with its prefix mask (full length unless a CIDR or --mask-* says)."""

    addr: bytes
    mask: bytes


@dataclass
class Nat:
    addr: bytes | None
    port: int | None


@dataclass
class Command:
    cmd: str
    table: str = "conntrack"
    family: int = 0                          # 2 / 10, 0 = any
    opts: dict[str, str] = field(default_factory=dict)
    src: Addr | None = None
    dst: Addr | None = None
    rsrc: Addr | None = None
    rdst: Addr | None = None
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    rsport: int | None = None
    rdport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    state: int | None = None
    status: int | None = None
    timeout: int | None = None
    mark: int | None = None
    mark_mask: int = 0xFFFFFFFF
    zone: int | None = None
    orig_zone: int | None = None
    reply_zone: int | None = None
    src_nat: Nat | None = None
    dst_nat: Nat | None = None
    any_nat: Nat | None = None
    output: frozenset[str] = frozenset()
    load_file: str | None = None
    rule: str | None = None                  # statewall's --rule filter/FORWARD#3
    helper: str | None = None                # statewall's --helper ftp


def _num(text: str, what: str, hi: int) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise ParamError(f"invalid {what} `{text}'") from None
    if not 0 <= v <= hi:
        raise ParamError(f"invalid {what} `{text}'")
    return v


def _family_of(b: bytes) -> int:
    return 2 if len(b) == 4 else 10


def parse_addr(text: str) -> Addr:
    """``1.2.3.4``, ``1.2.3.0/24``, ``2001:db8::1``, ``::/64`` (no brackets)."""
    a, _, plen = text.partition("/")
    try:
        ip = ipaddress.ip_address(a)
    except ValueError:
        raise ParamError(f"Invalid IP address `{text}'") from None
    bits = ip.max_prefixlen
    n = bits if not plen else _num(plen, "netmask", bits)
    m = ((1 << bits) - 1) ^ ((1 << (bits - n)) - 1)
    return Addr(ip.packed, m.to_bytes(bits // 8, "big"))


def parse_proto(text: str) -> int:
    if text.isdigit():
        v = int(text)
        if v > 255:
            raise ParamError(f"`{text}' unsupported protocol")
        return v
    known = _PROTO_BY_NAME.get(text)
    if known is not None:
        return known
    try:
        return socket.getprotobyname(text)
    except OSError:
        raise ParamError(f"`{text}' unsupported protocol") from None


def parse_nat(text: str) -> Nat:
    """``addr``, ``addr:port``, ``[addr6]:port``; brackets only with a port."""
    port: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ParamError(f"invalid NAT address `{text}'")
        port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host = text
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ParamError(f"Invalid IP address `{text}'") from None
    p = None
    if port is not None:
        if not port.isdigit():
            raise ParamError(f"invalid port `{text}'")
        p = _num(port, "port", 65535)
    return Nat(ip.packed, p)


def _status(text: str) -> int:
    v = 0
    for name in text.split(","):
        bit = STATUS_NAMES.get(name.strip().upper())
        if bit is None:
            raise ParamError(f"Bad parameter `{name}'")
        v |= bit
    return v


def tokens(line: str) -> list[str]:
    """Split a ``-R`` / suite line the way conntrack's stdin mode does (on blanks)."""
    return line.split()


def parse(argv: list[str]) -> Command:
    """argv (without the program name) -> Command; ParamError when conntrack would exit 2."""
    cmd: str | None = None
    c = Command("list")
    seen: dict[str, str] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if "=" in a and a.startswith("--"):
            a, val0 = a.split("=", 1)
            inline: str | None = val0
        else:
            inline = None
        if a in COMMANDS:
            if cmd is not None:
                raise ParamError("Invalid parameters: only one command is allowed")
            cmd = COMMANDS[a]
            if cmd in _TABLE_CMDS and i < len(argv) and not argv[i].startswith("-"):
                t = argv[i]
                if t not in TABLES:
                    raise ParamError(f"Bad table `{t}'")
                c.table = "expect" if t == "expectation" else t
                i += 1
            elif cmd == "load":
                if i >= len(argv):
                    raise ParamError("-R needs a file name (or -)")
                c.load_file = argv[i]
                i += 1
            continue
        name = OPTIONS.get(a)
        if name is None:
            if not a.startswith("-"):
                continue                       # stray words are ignored, as getopt leaves them
            raise ParamError(f"unknown option `{a}'")
        if name in seen and name not in ("output",):
            raise ParamError(f"Option `{a}' given more than once")
        if name in _NO_ARG:
            seen[name] = ""
            continue
        if inline is not None:
            val: str | None = inline
        elif name in _OPTIONAL_ARG:
            val = None
            if i < len(argv) and not argv[i].startswith("-"):
                val = argv[i]
                i += 1
        else:
            if i >= len(argv):
                raise ParamError(f"option `{a}' requires an argument")
            val = argv[i]
            i += 1
        seen[name] = val if val is not None else ""
        _apply(c, name, val)
    if cmd is None:
        raise ParamError("no command specified")
    c.cmd = cmd
    c.opts = seen
    _check(c)
    return c


def _apply(c: Command, name: str, val: str | None) -> None:
    v = val or ""
    if name in ("src", "dst", "rsrc", "rdst"):
        setattr(c, name, parse_addr(v))
    elif name in ("mask_src", "mask_dst"):
        m = parse_addr(v)
        target = c.src if name == "mask_src" else c.dst
        if target is None:
            raise ParamError(f"--{name.replace('_', '-')} needs an address to mask")
        if len(m.addr) != len(target.addr):
            raise ParamError("address family mismatch")
        target.mask = m.addr
    elif name == "proto":
        c.proto = parse_proto(v)
    elif name in ("sport", "dport", "rsport", "rdport"):
        setattr(c, name, _num(v, "port", 65535))
    elif name in ("icmp_type", "icmp_code"):
        setattr(c, name, _num(v, name.replace("_", " "), 255))
    elif name == "icmp_id":
        c.icmp_id = _num(v, "icmp id", 65535)
    elif name == "state":
        st = TCP_STATES.get(v.upper())
        if st is None:
            raise ParamError(f"unknown state `{v}'")
        c.state = st
    elif name == "status":
        c.status = _status(v)
    elif name == "timeout":
        c.timeout = _num(v, "timeout", 0xFFFFFFFF)
    elif name == "mark":
        val_s, sl, mask_s = v.partition("/")
        c.mark = _num(val_s, "mark", 0xFFFFFFFF)
        if sl:
            c.mark_mask = _num(mask_s, "mark mask", 0xFFFFFFFF)
    elif name in ("zone", "orig_zone", "reply_zone"):
        setattr(c, name, _num(v, "zone", 65535))
    elif name in ("src_nat", "dst_nat", "any_nat"):
        setattr(c, name, parse_nat(v) if val else Nat(None, None))
    elif name == "family":
        fam = {"ipv4": 2, "ipv6": 10}.get(v)
        if fam is None:
            raise ParamError(f"`{v}' unsupported protocol")
        c.family = fam
    elif name == "rule":
        if not v or len(v) > 256:
            raise ParamError(f"invalid rule `{v}' (table/CHAIN#N or table/CHAIN policy)")
        c.rule = v
    elif name == "helper":
        if not v or len(v) > 16 or not v.replace("-", "").replace("_", "").isalnum():
            raise ParamError(f"invalid helper name `{v}'")
        c.helper = v
    elif name == "output":
        outs = frozenset(v.split(","))
        if not outs <= OUTPUTS:
            raise ParamError(f"Bad output format `{v}'")
        c.output = c.output | outs


def _check(c: Command) -> None:
    fams = {_family_of(a.addr) for a in (c.src, c.dst, c.rsrc, c.rdst) if a is not None}
    for n in (c.src_nat, c.dst_nat, c.any_nat):
        if n is not None and n.addr is not None:
            fams.add(_family_of(n.addr))
    if c.family:
        fams.add(c.family)
    if len(fams) > 1:
        raise ParamError("mismatched address family")
    if fams:
        c.family = fams.pop()
    if c.any_nat is not None and (c.src_nat is not None or c.dst_nat is not None):
        raise ParamError("Illegal option combination: --any-nat with --src-nat/--dst-nat")
    if "zero" in c.opts:
        # -z only dumps the whole table (ctnetlink's GET_CTRZERO): the output form and the
        # family may be chosen, nothing that filters
        if c.cmd != "list" or c.table != "conntrack":
            raise ParamError("Illegal option `--zero' with this command")
        if set(c.opts) - {"zero", "output", "family"}:
            raise ParamError("Can't use -z with filtering parameters")
    if c.cmd in ("create", "add"):
        if (c.src is None or c.dst is None) and (c.rsrc is None or c.rdst is None):
            raise ParamError("missing required source and destination addresses")
        if c.proto is None:
            raise ParamError("missing required protocol")
        if c.timeout is None:
            raise ParamError("missing required timeout")
        if c.proto in PORT_PROTOS:
            if (c.sport is None or c.dport is None) and (c.rsport is None or c.rdport is None):
                raise ParamError("missing required source and destination ports")
        if c.proto in ICMP_PROTOS:
            if c.icmp_type is None or c.icmp_code is None or c.icmp_id is None:
                raise ParamError("missing required ICMP type, code and id")
    if c.state is not None and c.proto not in (None, 6):
        raise ParamError("--state is only for TCP")
    if c.cmd == "get":
        if (c.src is None or c.dst is None) and (c.rsrc is None or c.rdst is None):
            raise ParamError("-G needs a complete tuple")
    if c.cmd == "load" and c.load_file is None:
        raise ParamError("-R needs a file")
