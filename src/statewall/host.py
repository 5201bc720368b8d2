"""The firewall host: its interfaces, addresses and routes (sans-I/O).

Owns: ``--iface NAME=ADDR/PLEN[,ADDR/PLEN...]``, ``--route PREFIX [via GW] dev IF`` and
``--default-route IF`` parsing; the routing decision (local delivery or forward, and the
output interface, by longest prefix match as the kernel's FIB does); the address type of an
address as ``-m addrtype`` sees it (``inet_addr_type``: LOCAL, BROADCAST, MULTICAST, UNICAST,
UNSPEC...). Must not know: packets beyond addresses, rules, conntrack.

Connected subnets give routes automatically (the kernel adds them with the address). The
local table holds every interface address, its subnet's broadcast address (IPv4), the
loopback networks and the multicast groups every host joins (all-hosts; IPv6 all-nodes,
all-routers and the solicited-node groups of its addresses). Other multicast is neither
delivered nor forwarded (a host forwards multicast only with a multicast routing daemon,
which statewall does not model).
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Final, Iterable, NamedTuple

IfAddr = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Iface = tuple[str, list[IfAddr]]

LOCAL = "LOCAL"
BROADCAST = "BROADCAST"
MULTICAST = "MULTICAST"
UNICAST = "UNICAST"
UNSPEC = "UNSPEC"
UNREACHABLE = "UNREACHABLE"


_JOINED_V4 = frozenset({bytes([224, 0, 0, 1])})               # all-hosts
_JOINED_V6 = frozenset({bytes.fromhex("ff010000000000000000000000000001"),
                        bytes.fromhex("ff020000000000000000000000000001"),
                        bytes.fromhex("ff020000000000000000000000000002"),
                        bytes.fromhex("ff010000000000000000000000000002")})
_SOLICITED = bytes.fromhex("ff0200000000000000000001ff")
_V6_LOOPBACK = b"\x00" * 15 + b"\x01"


class Route(NamedTuple):
    net: Net
    via: bytes | None
    dev: str


def _check_name(name: str, what: str) -> str:
    name = name.strip()
    if not name or len(name) > 15 or "/" in name or " " in name:
        raise ValueError(f"{what}: bad interface name {name!r}")
    return name


def parse_iface(text: str) -> Iface:
    """``eth0=198.51.100.1/24,2001:db8:1::1/64`` -> (name, addresses)."""
    if "=" not in text:
        raise ValueError(f"--iface {text!r}: expected NAME=ADDR/PLEN[,ADDR/PLEN...]")
    name, spec = text.split("=", 1)
    name = _check_name(name, f"--iface {text!r}")
    addrs: list[IfAddr] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            addrs.append(ipaddress.ip_interface(part))
        except ValueError:
            raise ValueError(f"--iface {text!r}: bad address {part!r}") from None
    return name, addrs


def parse_route(text: str) -> Route:
    """``203.0.113.0/24 via 198.51.100.254 dev eth0``, ``default dev eth1``."""
    words = text.split()
    if not words:
        raise ValueError("--route: empty")
    try:
        net: Net = (ipaddress.ip_network("0.0.0.0/0") if words[0] == "default"
                    else ipaddress.ip_network(words[0], strict=False))
    except ValueError:
        raise ValueError(f"--route {text!r}: bad prefix {words[0]!r}") from None
    via: bytes | None = None
    dev: str | None = None
    i = 1
    while i < len(words):
        key = words[i]
        if i + 1 >= len(words):
            raise ValueError(f"--route {text!r}: {key!r} needs a value")
        val = words[i + 1]
        if key == "via":
            try:
                via = ipaddress.ip_address(val).packed
            except ValueError:
                raise ValueError(f"--route {text!r}: bad gateway {val!r}") from None
        elif key == "dev":
            dev = _check_name(val, f"--route {text!r}")
        else:
            raise ValueError(f"--route {text!r}: unknown keyword {key!r} (via, dev)")
        i += 2
    if dev is None:
        raise ValueError(f"--route {text!r}: 'dev IF' is required")
    return Route(net, via, dev)


_GENERATIONS: Final = itertools.count(1)


class HostModel:
    """Interfaces, addresses and a routing table; answers the questions the path asks."""

    __slots__ = ("ifaces", "local", "broadcast", "routes", "_cache", "_arrivals", "first_addr",
                 "gen")

    def __init__(self, ifaces: Iterable[Iface] = (), routes: Iterable[Route] = (),
                 default_dev: str | None = None) -> None:
        self.ifaces: dict[str, list[IfAddr]] = {}
        self.local: set[bytes] = set()
        self.broadcast: set[bytes] = set()
        self.first_addr: dict[tuple[str, int], bytes] = {}
        rts: list[Route] = []
        for name, addrs in ifaces:
            self.ifaces.setdefault(name, []).extend(addrs)
            for a in addrs:
                self.local.add(a.ip.packed)
                self.first_addr.setdefault((name, a.version), a.ip.packed)
                if a.version == 4 and a.network.prefixlen < 31:
                    self.broadcast.add(a.network.broadcast_address.packed)
                rts.append(Route(a.network, None, name))
        for r in routes:
            if r.dev not in self.ifaces:
                self.ifaces[r.dev] = []
            rts.append(r)
        if default_dev is not None:
            self.ifaces.setdefault(default_dev, [])
            rts.append(Route(ipaddress.ip_network("0.0.0.0/0"), None, default_dev))
            rts.append(Route(ipaddress.ip_network("::/0"), None, default_dev))
        # longest prefix first; the first route added wins between equal prefixes
        self.routes = sorted(rts, key=lambda r: -r.net.prefixlen)
        self._cache: dict[bytes, str | None] = {}
        self._arrivals: dict[bytes, tuple[bool, bool, str | None]] = {}
        self.gen = next(_GENERATIONS)   # changes whenever addresses or routes are re-read

    def routes_changed(self) -> None:
        """``routes`` was edited in place: forget the cached answers, and let records made
        with the old ones (the flow cache's, keyed by ``gen``) go stale."""
        self._cache.clear()
        self._arrivals.clear()
        self.gen = next(_GENERATIONS)

    def is_local(self, addr: bytes) -> bool:
        return addr in self.local

    def addr_type(self, addr: bytes) -> str:
        """``inet_addr_type`` / ``ipv6_addr_type`` as ``-m addrtype`` names them."""
        if addr in self.local:
            return LOCAL
        ip = ipaddress.ip_address(addr)
        if ip.is_unspecified:
            return UNSPEC
        if ip.is_multicast:
            return MULTICAST
        if ip.version == 4 and (addr in self.broadcast or addr == b"\xff\xff\xff\xff"):
            return BROADCAST
        if ip.is_loopback:
            return LOCAL
        if self.route(addr) is None:
            return UNREACHABLE
        return UNICAST

    def delivers_locally(self, dst: bytes) -> bool:
        """Would ``ip_route_input`` hand this destination to the local stack (INPUT)?"""
        if dst in self.local or dst in self.broadcast:
            return True
        first = dst[0]
        if len(dst) == 4:
            return first == 127 or first >= 240 or dst in _JOINED_V4
        return dst == _V6_LOOPBACK or self._joined_v6(dst)

    def drops_multicast(self, dst: bytes) -> bool:
        """A multicast destination the host has not joined: not delivered, and not
        forwarded without a multicast routing daemon (statewall models none)."""
        if len(dst) == 4:
            return 224 <= dst[0] < 240 and dst not in _JOINED_V4
        return dst[0] == 0xFF and not self._joined_v6(dst)

    def _joined_v6(self, dst: bytes) -> bool:
        """All-nodes, all-routers (a forwarding host joins it) and the solicited-node
        groups of the host's own addresses."""
        if dst in _JOINED_V6:
            return True
        if dst[:13] == _SOLICITED:
            tail = dst[13:]
            return any(len(a) == 16 and a[13:] == tail for a in self.local)
        return False

    def arrival(self, dst: bytes) -> tuple[bool, bool, str | None]:
        """For a packet that arrived for ``dst``: (delivered locally, an unjoined multicast
        group, the output interface or None), as ``delivers_locally`` / ``drops_multicast``
        / ``route`` answer; cached like ``route`` (the host changes only by __init__)."""
        got = self._arrivals.get(dst)
        if got is None:
            local = self.delivers_locally(dst)
            got = (local, not local and self.drops_multicast(dst),
                   None if local else self.route(dst))
            if len(self._arrivals) < 65536:
                self._arrivals[dst] = got
        return got

    def route(self, dst: bytes) -> str | None:
        """Output interface for a forwarded/locally sent packet, or None (no route)."""
        cache = self._cache
        if dst in cache:
            return cache[dst]
        ip = ipaddress.ip_address(dst)
        dev: str | None = None
        for r in self.routes:
            if r.net.version == ip.version and ip in r.net:
                dev = r.dev
                break
        if len(cache) < 65536:
            cache[dst] = dev
        return dev

    def source_for(self, dev: str | None, version: int) -> bytes | None:
        """The address the host would send from on ``dev`` (first address of the family)."""
        if dev is None:
            return None
        return self.first_addr.get((dev, version))
