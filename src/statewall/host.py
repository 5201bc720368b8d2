"""The firewall host: its interfaces and their addresses (sans-I/O).

Owns: ``--iface NAME=ADDR/PLEN[,ADDR/PLEN...]`` parsing and the "is this address mine"
question that decides whether a packet is locally generated (OUTPUT) or arriving
(PREROUTING). Routing (issue 3) will grow here. Must not know: packets beyond addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

Iface = tuple[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]


def parse_iface(text: str) -> Iface:
    """``eth0=198.51.100.1/24,2001:db8:1::1/64`` -> (name, addresses)."""
    if "=" not in text:
        raise ValueError(f"--iface {text!r}: expected NAME=ADDR/PLEN[,ADDR/PLEN...]")
    name, spec = text.split("=", 1)
    name = name.strip()
    if not name or len(name) > 15 or "/" in name or " " in name:
        raise ValueError(f"--iface {text!r}: bad interface name {name!r}")
    addrs: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            addrs.append(ipaddress.ip_interface(part))
        except ValueError:
            raise ValueError(f"--iface {text!r}: bad address {part!r}") from None
    return name, addrs


class HostModel:
    __slots__ = ("ifaces", "local")

    def __init__(self, ifaces: Iterable[Iface] = ()) -> None:
        self.ifaces = list(ifaces)
        self.local: set[bytes] = set()
        for _, addrs in self.ifaces:
            for a in addrs:
                self.local.add(a.ip.packed)

    def is_local(self, addr: bytes) -> bool:
        return addr in self.local
