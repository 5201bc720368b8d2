"""IP sets (the kernel's ``ip_set``), sans-I/O: what ``-m set`` tests and ``-j SET`` changes.

Owns: the set types statewall models, their elements and how a packet is turned into an
element (``ip_set_get_ip4_port`` and friends: the source or destination address, port
and protocol per dimension, as the match's ``src,dst`` flags say), the test with
``nomatch`` elements and the most specific network first (``mtype_test_cidrs``), adding and
deleting (``--exist``, per-element timeouts, ``maxelem``), expiry on the caller's clock.
Follows net/netfilter/ipset/ (ip_set_core.c ``ip_set_test``, ip_set_hash_gen.h,
ip_set_bitmap_*.c, ip_set_list_set.c).

Types: hash:ip (with ``netmask``), hash:net, hash:ip,port, hash:net,port, hash:ip,port,ip,
hash:ip,port,net, hash:net,net, hash:net,port,net, bitmap:ip, bitmap:port, list:set.
Element counters and comments are accepted and kept, not counted (``--packets-*`` /
``--bytes-*`` matches are refused by the rule parser).

Time: timeouts loaded from a file (``ipset save`` prints what is left) count from the first
moment a set is used (``Registry.clock``); elements added by ``SET`` count from the packet.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any, Final, Iterator

IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_ICMP: Final = 1
IPPROTO_ICMPV6: Final = 58
PORT_PROTOS: Final = frozenset({6, 17, 132, 136})          # tcp, udp, sctp, udplite
MAX_DIM: Final = 6                                          # IPSET_DIM_MAX

# type name -> dimensions: ip (an address), net (address/prefix), port (protocol and port),
# bport (a port of bitmap:port, any protocol that has ports)
TYPES: Final[dict[str, tuple[str, ...]]] = {
    "hash:ip": ("ip",), "hash:net": ("net",), "hash:ip,port": ("ip", "port"),
    "hash:net,port": ("net", "port"), "hash:ip,port,ip": ("ip", "port", "ip"),
    "hash:ip,port,net": ("ip", "port", "net"), "hash:net,net": ("net", "net"),
    "hash:net,port,net": ("net", "port", "net"), "bitmap:ip": ("ip",),
    "bitmap:port": ("bport",), "list:set": (),
}
NOMATCH_TYPES: Final = frozenset(t for t, d in TYPES.items() if "net" in d)


class SetError(Exception):
    """An element or option the kernel would refuse (ipset's wording)."""


@dataclass(slots=True)
class Elem:
    expires: float | None          # absolute time; None: permanent
    nomatch: bool = False
    rel: float | None = None       # a loaded timeout not yet placed on the clock


@dataclass
class IpSet:
    """One set. ``family`` 4, 6 or 0 (bitmap:port, list:set: any)."""

    name: str
    type: str
    family: int = 4
    timeout: int | None = None        # the set's default timeout (None: no timeout support)
    maxelem: int = 65536
    netmask: int | None = None        # hash:ip netmask / bitmap:ip netmask
    first: int = 0                    # bitmap ranges
    last: int = 0
    options: dict[str, str] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)      # list:set, in order
    elems: dict[tuple[Any, ...], Elem] = field(default_factory=dict)
    cidrs: list[list[int]] = field(default_factory=list)  # per dim: prefix lengths, longest first

    @property
    def dims(self) -> tuple[str, ...]:
        return TYPES[self.type]

    def __post_init__(self) -> None:
        self.cidrs = [[] for _ in self.dims]

    # -- elements --------------------------------------------------------------------------
    def put(self, key: tuple[Any, ...], timeout: float | None, now: float | None,
            exist: bool, nomatch: bool = False) -> bool:
        """Add (or, with ``exist``, refresh) one element; False when it exists or the set
        is full. ``timeout`` None: the set's default; ``now`` None: count from the first
        use (a loaded file)."""
        # (a set created without timeout support ignores SET --timeout, as the kernel does)
        t = None if self.timeout is None else self.timeout if timeout is None else timeout
        old = self.elems.get(key)
        if old is not None and not exist and not _dead(old, now):
            return False
        if old is None and len(self.elems) >= self.maxelem:
            if now is not None:             # full: expired elements go first (mtype_expire)
                for k in [k for k, e in self.elems.items() if _dead(e, now)]:
                    del self.elems[k]
            if len(self.elems) >= self.maxelem:
                return False
        if not t:
            e = Elem(None, nomatch)
        elif now is None:
            e = Elem(None, nomatch, float(t))
        else:
            e = Elem(now + t, nomatch)
        self.elems[key] = e
        for d, kind in enumerate(self.dims):
            if kind == "net":
                plen = key[d][1]
                if plen not in self.cidrs[d]:
                    self.cidrs[d].append(plen)
                    self.cidrs[d].sort(reverse=True)
        return True

    def drop(self, key: tuple[Any, ...]) -> bool:
        return self.elems.pop(key, None) is not None

    def place(self, now: float) -> None:
        """Start the clock of loaded timeouts."""
        for e in self.elems.values():
            if e.rel is not None:
                e.expires, e.rel = now + e.rel, None

    # -- a packet's element --------------------------------------------------------------
    def lookup(self, parts: list[Any], now: float) -> int:
        """1: an element matches; -1: the most specific one is ``nomatch``; 0: none.
        ``parts`` per dimension: an address (ip/net) or (proto, port)."""
        for key in self._candidates(parts):
            e = self.elems.get(key)
            if e is not None:
                if _dead(e, now):
                    del self.elems[key]
                    continue
                return -1 if e.nomatch else 1
        return 0

    def _candidates(self, parts: list[Any]) -> Iterator[tuple[Any, ...]]:
        dims = self.dims
        choices: list[list[Any]] = []
        for d, kind in enumerate(dims):
            p = parts[d]
            if kind == "net":
                choices.append([(masked(p, plen), plen) for plen in self.cidrs[d]])
            elif kind == "ip" and self.netmask is not None:
                choices.append([masked(p, self.netmask)])
            else:
                choices.append([p])
        # the kernel's order: the first dimension's longest prefix first
        yield from itertools.product(*choices)


def _dead(e: Elem, now: float | None) -> bool:
    return e.expires is not None and now is not None and now >= e.expires


def masked(addr: bytes, plen: int) -> bytes:
    n = int.from_bytes(addr, "big")
    bits = len(addr) * 8
    mask = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1) if plen else 0
    return (n & mask).to_bytes(len(addr), "big")


def network(text: str, family: int, what: str) -> tuple[bytes, int]:
    """``ADDR[/PLEN]`` (host bits cleared, as the kernel stores it)."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise SetError(f"Syntax error: cannot parse {text!r} as a(n) {what}") from None
    if net.version != family:
        raise SetError(f"Syntax error: {text!r} is not an IPv{family} address")
    if net.prefixlen == 0:
        raise SetError("The value of the CIDR parameter of the IP address is invalid")
    return net.network_address.packed, net.prefixlen


# -- a packet as an element (ip_set_get_ip4_port / ip_set_get_ip6_port) --------------------
def port_of(pkt: Any, src: bool) -> tuple[int, int] | None:
    """(protocol, port) of the packet for a port dimension; None when a non-first fragment
    of a protocol with ports hides it (the kernel does not match then)."""
    proto = pkt.proto
    if proto <= 0:
        return None
    fragment = pkt.fragoff != 0
    if proto in PORT_PROTOS or proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if fragment or pkt.l4err is not None:
            return None
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            return proto, (pkt.icmp_type << 8) | pkt.icmp_code
        return proto, (pkt.sport if src else pkt.dport)
    return proto, 0                     # protocols without ports match with port 0


def parts_of(s: IpSet, pkt: Any, flags: tuple[bool, ...]) -> list[Any] | None:
    """The element the packet is for ``s`` (flags: per dimension, True = src)."""
    out: list[Any] = []
    for d, kind in enumerate(s.dims):
        src = flags[d]
        if kind in ("ip", "net"):
            out.append(pkt.src if src else pkt.dst)
        else:
            p = port_of(pkt, src)
            if p is None:
                return None
            out.append(p[1] if kind == "bport" else p)
    return out


def _family_ok(s: IpSet, pkt: Any) -> bool:
    return not s.family or s.family == (6 if pkt.l3num == 10 else 4)


def matches(reg: Registry, s: IpSet, pkt: Any, flags: tuple[bool, ...], return_nomatch: bool,
         now: float) -> bool:
    """``ip_set_test``: does the packet's element belong to the set? (``--return-nomatch``
    swaps a match and a ``nomatch`` element, for the types that have them.)"""
    if not _family_ok(s, pkt) or len(flags) < len(s.dims):
        return False
    reg.clock(now)
    if s.type == "list:set":
        return any(matches(reg, reg.sets[m], pkt, flags, return_nomatch, now)
                   for m in s.members if m in reg.sets)
    parts = parts_of(s, pkt, flags)
    if parts is None or not _in_range(s, parts):
        return False
    ret = s.lookup(parts, now)
    if return_nomatch and s.type in NOMATCH_TYPES:
        ret = -ret
    return ret > 0


def _in_range(s: IpSet, parts: list[Any]) -> bool:
    if s.type == "bitmap:ip":
        return s.first <= int.from_bytes(parts[0], "big") <= s.last
    if s.type == "bitmap:port":
        port: int = parts[0]
        return s.first <= port <= s.last
    return True


def change(reg: Registry, s: IpSet, pkt: Any, flags: tuple[bool, ...], add: bool,
           timeout: int | None, exist: bool, now: float) -> bool:
    """``ip_set_add`` / ``ip_set_del`` of the packet's element (the SET target). A net
    dimension takes the set's most specific prefix, or a host prefix when it has none
    (``INIT_CIDR``). False: nothing changed (exists, full, out of range, not there)."""
    if not _family_ok(s, pkt) or len(flags) < len(s.dims):
        return False
    reg.clock(now)
    if s.type == "list:set":
        return any(change(reg, reg.sets[m], pkt, flags, add, timeout, exist, now)
                   for m in s.members if m in reg.sets)
    parts = parts_of(s, pkt, flags)
    if parts is None or not _in_range(s, parts):
        return False
    key: list[Any] = []
    for d, kind in enumerate(s.dims):
        p = parts[d]
        if kind == "net":
            plen = s.cidrs[d][0] if s.cidrs[d] else len(p) * 8
            key.append((masked(p, plen), plen))
        elif kind == "ip" and s.netmask is not None:
            key.append(masked(p, s.netmask))
        else:
            key.append(p)
    if add:
        return s.put(tuple(key), timeout, now, exist)
    return s.drop(tuple(key))


class Registry:
    """The sets by name (one per firewall: the kernel's per-namespace ipset list)."""

    def __init__(self) -> None:
        self.sets: dict[str, IpSet] = {}
        self.started = False

    def __contains__(self, name: object) -> bool:
        return name in self.sets

    def clock(self, now: float) -> None:
        if not self.started:
            self.started = True
            for s in self.sets.values():
                s.place(now)
