"""``ipset save`` / ``ipset restore`` text into a ``Registry`` (sans-I/O).

Owns: the ``create NAME TYPE [options]`` and ``add NAME ELEMENT [options]`` lines (and their
restore aliases ``-N`` / ``-A``), element syntax per type (addresses, ``ADDR/PLEN``,
``A-B`` ranges split as ipset splits them, ``[PROTO:]PORT`` with port ranges, ICMP
``TYPE/CODE`` or names), and the limits the kernel enforces (``maxelem``, bitmap ranges, the
family). A line that cannot be honoured raises ``ConfigError`` with the file and line.
Follows ipset 7's lib/parse.c and the save format it prints.
"""

from __future__ import annotations

import ipaddress
import itertools
import shlex
from typing import Any, Final

from ..rules.errors import ConfigError
from .sets import (IPPROTO_ICMP, IPPROTO_ICMPV6, TYPES, IpSet, Registry, SetError, masked,
                   network)

NAME_MAX: Final = 31                    # IPSET_MAXNAMELEN - 1
RANGE_MAX: Final = 65536                # elements one add may expand to
_PROTOS: Final = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1,
                  "icmpv6": 58, "ipv6-icmp": 58}
# ipset's ICMP names (lib/icmp.c): name -> (type, code)
ICMP_NAMES: Final = {
    "echo-reply": (0, 0), "pong": (0, 0), "network-unreachable": (3, 0),
    "host-unreachable": (3, 1), "protocol-unreachable": (3, 2), "port-unreachable": (3, 3),
    "fragmentation-needed": (3, 4), "source-route-failed": (3, 5),
    "network-unknown": (3, 6), "host-unknown": (3, 7), "network-prohibited": (3, 9),
    "host-prohibited": (3, 10), "TOS-network-unreachable": (3, 11),
    "TOS-host-unreachable": (3, 12), "communication-prohibited": (3, 13),
    "host-precedence-violation": (3, 14), "precedence-cutoff": (3, 15),
    "source-quench": (4, 0), "network-redirect": (5, 0), "host-redirect": (5, 1),
    "TOS-network-redirect": (5, 2), "TOS-host-redirect": (5, 3), "echo-request": (8, 0),
    "ping": (8, 0), "router-advertisement": (9, 0), "router-solicitation": (10, 0),
    "ttl-zero-during-transit": (11, 0), "ttl-zero-during-reassembly": (11, 1),
    "ip-header-bad": (12, 0), "required-option-missing": (12, 1),
    "timestamp-request": (13, 0), "timestamp-reply": (14, 0),
    "address-mask-request": (17, 0), "address-mask-reply": (18, 0),
}
ICMPV6_NAMES: Final = {
    "no-route": (1, 0), "communication-prohibited": (1, 1), "address-unreachable": (1, 3),
    "port-unreachable": (1, 4), "packet-too-big": (2, 0), "ttl-zero-during-transit": (3, 0),
    "ttl-zero-during-reassembly": (3, 1), "bad-header": (4, 0),
    "unknown-header-type": (4, 1), "unknown-option": (4, 2), "echo-request": (128, 0),
    "ping": (128, 0), "echo-reply": (129, 0), "pong": (129, 0),
}
_FLAGS: Final = frozenset({"counters", "comment", "skbinfo", "forceadd", "nomatch"})
_VALUED: Final = frozenset({"family", "hashsize", "maxelem", "bucketsize", "initval", "timeout",
                            "netmask", "range", "size", "markmask", "packets", "bytes",
                            "skbmark", "skbprio", "skbqueue"})


def load(text: str, file: str = "<ipset>", reg: Registry | None = None) -> Registry:
    """Every set of an ``ipset save`` text (added to ``reg`` when given)."""
    reg = reg if reg is not None else Registry()
    for lineno, line in enumerate(text.splitlines(), 1):
        words = line.strip()
        if not words or words.startswith("#"):
            continue
        try:
            _line(reg, shlex.split(words))
        except (SetError, ValueError) as e:
            raise ConfigError(file, lineno, str(e)) from None
    return reg


def _options(words: list[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w in _FLAGS and (w != "comment" or i + 1 >= len(words) or words[i + 1] in
                             _FLAGS | _VALUED):
            opts[w] = ""
            i += 1
        elif w in _VALUED or w == "comment":
            if i + 1 >= len(words):
                raise SetError(f"Syntax error: option {w!r} needs a value")
            opts[w] = words[i + 1]
            i += 2
        else:
            raise SetError(f"Syntax error: unknown option {w!r}")
    return opts


def _line(reg: Registry, words: list[str]) -> None:
    cmd = words[0]
    if cmd in ("create", "-N", "n") and len(words) >= 3:
        _create(reg, words[1], words[2], _options(words[3:]))
    elif cmd in ("add", "-A", "a") and len(words) >= 3:
        s = reg.sets.get(words[1])
        if s is None:
            raise SetError(f"The set with the given name does not exist: {words[1]}")
        _add(reg, s, words[2], _options(words[3:]))
    else:
        raise SetError(f"Syntax error: statewall reads 'create' and 'add' lines "
                       f"(ipset save), not {' '.join(words[:2])!r}")


def _number(text: str, what: str, hi: int = 2**32 - 1) -> int:
    try:
        n = int(text, 0)
    except ValueError:
        raise SetError(f"Syntax error: {what} {text!r} is not a number") from None
    if not 0 <= n <= hi:
        raise SetError(f"Syntax error: {what} {text!r} is out of range")
    return n


def _create(reg: Registry, name: str, typ: str, o: dict[str, str]) -> None:
    if len(name) > NAME_MAX:
        raise SetError(f"Syntax error: setname '{name}' is longer than {NAME_MAX} characters")
    if name in reg.sets:
        raise SetError("Set cannot be created: set with the same name already exists")
    if typ not in TYPES:
        raise SetError(f"Syntax error: set type {typ!r} is not supported by statewall "
                       f"({', '.join(TYPES)})")
    fam = {"inet": 4, "inet6": 6}.get(o.get("family", "inet"))
    if fam is None:
        raise SetError(f"Syntax error: unknown family {o['family']!r}")
    s = IpSet(name, typ, 0 if typ in ("bitmap:port", "list:set") else fam,
              options={k: v for k, v in o.items()})
    if "timeout" in o:
        s.timeout = _number(o["timeout"], "timeout", 2147483)
    if "maxelem" in o:
        s.maxelem = _number(o["maxelem"], "maxelem")
    if "netmask" in o:
        if typ not in ("hash:ip", "bitmap:ip"):
            raise SetError(f"Syntax error: netmask is for hash:ip and bitmap:ip, not {typ}")
        s.netmask = _number(o["netmask"], "netmask", 32 if fam == 4 else 128)
    if typ == "bitmap:ip":
        if "range" not in o or fam != 4:
            raise SetError("Syntax error: bitmap:ip needs an IPv4 range (range A-B or A/P)")
        lo, hi = _span(o["range"], 4)
        s.first, s.last = lo, hi
    elif typ == "bitmap:port":
        if "range" not in o:
            raise SetError("Syntax error: bitmap:port needs a range (range FROM-TO)")
        a, _, b = o["range"].partition("-")
        s.first, s.last = _number(a, "port", 65535), _number(b or a, "port", 65535)
        if s.first > s.last:
            s.first, s.last = s.last, s.first
    reg.sets[name] = s


def _span(text: str, fam: int) -> tuple[int, int]:
    """``A-B`` or ``A/P`` as integers."""
    if "-" in text:
        a, b = text.split("-", 1)
        lo, hi = (int(ipaddress.ip_address(x)) for x in (a, b))
        if ipaddress.ip_address(a).version != fam or lo > hi:
            raise SetError(f"Syntax error: bad range {text!r}")
        return lo, hi
    net = ipaddress.ip_network(text, strict=False)
    return int(net.network_address), int(net.broadcast_address)


def _addrs(text: str, fam: int, kind: str) -> list[Any]:
    """The addresses (ip) or (address, prefix) pairs (net) one element word stands for."""
    if "-" in text and kind == "net":
        a, b = text.split("-", 1)
        try:
            nets = ipaddress.summarize_address_range(ipaddress.ip_address(a),
                                                     ipaddress.ip_address(b))
            out = [(n.network_address.packed, n.prefixlen) for n in nets]
        except (ValueError, TypeError):
            raise SetError(f"Syntax error: bad range {text!r}") from None
        return out
    if kind == "net":
        return [network(text, fam, "IP/CIDR")]
    if "-" in text or "/" in text:
        try:
            lo, hi = _span(text, fam)
        except ValueError:
            raise SetError(f"Syntax error: bad range {text!r}") from None
        if hi - lo >= RANGE_MAX:
            raise SetError(f"Syntax error: range {text!r} is too big")
        size = 4 if fam == 4 else 16
        return [n.to_bytes(size, "big") for n in range(lo, hi + 1)]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise SetError(f"Syntax error: cannot parse {text!r} as an IP address") from None
    if ip.version != fam:
        raise SetError(f"Syntax error: {text!r} is not an IPv{fam} address")
    return [ip.packed]


def _ports(text: str, fam: int) -> list[tuple[int, int]]:
    """``[PROTO:]PORT[-PORT]`` (tcp when no protocol; ICMP: ``TYPE/CODE`` or a name)."""
    proto_s, sep, port_s = text.rpartition(":")
    if not sep:
        proto_s, port_s = "tcp", text
    proto = _PROTOS.get(proto_s.lower())
    if proto is None:
        proto = _number(proto_s, "protocol", 255)
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        names = ICMP_NAMES if proto == IPPROTO_ICMP else ICMPV6_NAMES
        if port_s in names:
            t, c = names[port_s]
        else:
            t_s, _, c_s = port_s.partition("/")
            t, c = _number(t_s, "ICMP type", 255), _number(c_s or "0", "ICMP code", 255)
        return [(proto, t << 8 | c)]
    a, _, b = port_s.partition("-")
    lo, hi = _number(a, "port", 65535), _number(b or a, "port", 65535)
    if lo > hi:
        lo, hi = hi, lo
    return [(proto, p) for p in range(lo, hi + 1)]


def _add(reg: Registry, s: IpSet, text: str, o: dict[str, str]) -> None:
    if s.type == "list:set":
        if text not in reg.sets or text == s.name:
            raise SetError(f"Set to be added/deleted/tested as element does not exist: {text}")
        if text not in s.members:
            s.members.append(text)
        return
    words = text.split(",")
    if len(words) != len(s.dims):
        raise SetError(f"Syntax error: {s.type} elements have {len(s.dims)} parts: {text!r}")
    fam = s.family or 4
    choices: list[list[Any]] = []
    for kind, w in zip(s.dims, words):
        if kind in ("ip", "net"):
            choices.append(_addrs(w, fam, kind))
        elif kind == "bport":
            lo_s, _, hi_s = w.partition("-")
            lo, hi = _number(lo_s, "port", 65535), _number(hi_s or lo_s, "port", 65535)
            choices.append(list(range(min(lo, hi), max(lo, hi) + 1)))
        else:
            choices.append(_ports(w, fam))
    timeout = None
    if "timeout" in o:
        if s.timeout is None:
            raise SetError("Syntax error: the set was created without timeout support")
        timeout = _number(o["timeout"], "timeout", 2147483)
    nomatch = "nomatch" in o
    if nomatch and "net" not in s.dims:
        raise SetError(f"Syntax error: nomatch is only for net types, not {s.type}")
    count = 1
    for c in choices:
        count *= len(c)
    if count > RANGE_MAX:
        raise SetError(f"Syntax error: {text!r} stands for too many elements")
    for key in itertools.product(*choices):
        if s.type in ("bitmap:ip", "bitmap:port"):
            v = int.from_bytes(key[0], "big") if s.type == "bitmap:ip" else key[0]
            if not s.first <= v <= s.last:
                raise SetError("Element is out of the range of the set")
        if s.netmask is not None and s.dims[0] == "ip":
            key = (masked(key[0], s.netmask), *key[1:])
        if not s.put(key, timeout, None, True, nomatch):
            raise SetError("Hash is full, cannot add more elements")

