"""From a NAT target hit to a range: SNAT, DNAT, MASQUERADE, REDIRECT, NETMAP (sans-I/O).

Owns: turning a ``NatRequest`` (what the rule engine records when a NAT target fires) into
the ``NatRange`` and manip type ``setup_info`` binds with, including the addresses the
kernel picks itself: MASQUERADE's source (``inet_select_addr`` on the output interface
towards the next hop; IPv6: the output interface's address that suits the destination
best), REDIRECT's destination (the input interface's first address; 127.0.0.1 / ::1 for
locally generated packets), NETMAP's address (the packet's address with the prefix
replaced).
Must not know: the rule engine (only the ``NatRequest`` record), tuple selection, packet
bytes.
Follows net/netfilter/xt_nat.c (and iptables' libxt_NAT.c for the flags), xt_MASQUERADE.c
and nf_nat_masquerade.c, xt_REDIRECT.c and nf_nat_redirect.c, xt_NETMAP.c, and for the
address choices net/ipv4/devinet.c ``inet_select_addr`` and, approximated,
net/ipv6/addrconf.c ``ipv6_dev_get_saddr`` (RFC 6724: an address of the interface whose
scope fits the destination, longest matching prefix).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final

from .core import (NF_NAT_MANIP_DST, NF_NAT_MANIP_SRC, NF_NAT_RANGE_MAP_IPS,
                   NF_NAT_RANGE_PERSISTENT, NF_NAT_RANGE_PROTO_OFFSET,
                   NF_NAT_RANGE_PROTO_RANDOM, NF_NAT_RANGE_PROTO_RANDOM_FULLY,
                   NF_NAT_RANGE_PROTO_SPECIFIED, NatRange, hook2manip)

if TYPE_CHECKING:
    from ..host import HostModel
    from ..packet.packet import Packet
    from ..rules.result import NatRequest

FLAG_BITS: Final = {"random": NF_NAT_RANGE_PROTO_RANDOM,
                    "random-fully": NF_NAT_RANGE_PROTO_RANDOM_FULLY,
                    "persistent": NF_NAT_RANGE_PERSISTENT}

LOOPBACK4: Final = bytes((127, 0, 0, 1))
LOOPBACK6: Final = bytes(15) + b"\x01"
NF_INET_PRE_ROUTING: Final = 0
NF_INET_LOCAL_OUT: Final = 3


def base_range(req: NatRequest) -> NatRange:
    """The range as iptables hands it to the kernel (libxt_NAT / libxt_MASQUERADE)."""
    flags = 0
    for f in req.flags:
        flags |= FLAG_BITS.get(f, 0)
    rng = NatRange(flags)
    if req.ranges:
        lo_a, hi_a, lo_p, hi_p, base = req.ranges[0]
        if lo_a is not None:
            rng.flags |= NF_NAT_RANGE_MAP_IPS
            rng.min_addr = lo_a
            rng.max_addr = hi_a if hi_a is not None else lo_a
        if lo_p is not None:
            rng.flags |= NF_NAT_RANGE_PROTO_SPECIFIED
            rng.min_proto = lo_p
            rng.max_proto = hi_p if hi_p is not None else lo_p
            if base is not None:
                rng.flags |= NF_NAT_RANGE_PROTO_OFFSET
                rng.base_proto = base
    return rng


def _v4_primaries(addrs: list[ipaddress.IPv4Interface]) -> list[ipaddress.IPv4Interface]:
    """The device's primary addresses in order (an address in the subnet of an earlier
    one is a secondary), without host-scope (loopback) ones."""
    out: list[ipaddress.IPv4Interface] = []
    for a in addrs:
        if a.ip.is_loopback:
            continue
        if any(a.ip in p.network for p in out):
            continue
        out.append(a)
    return out


def next_hop(host: HostModel, dst: bytes) -> bytes:
    """``rt_nexthop``: the gateway of the route to ``dst``, or ``dst`` itself."""
    ip = ipaddress.ip_address(dst)
    for r in host.routes:
        if r.net.version == ip.version and ip in r.net:
            return r.via if r.via is not None else dst
    return dst


def select_addr_v4(host: HostModel, dev: str | None, nh: bytes) -> bytes | None:
    """``inet_select_addr(dev, nh, RT_SCOPE_UNIVERSE)``: the first primary address of the
    device whose subnet holds the next hop, else its first primary; a device without one
    borrows the first suitable address of another device."""
    nhip = ipaddress.IPv4Address(nh) if len(nh) == 4 else None
    if dev is not None:
        prims = _v4_primaries([a for a in host.ifaces.get(dev, [])
                               if isinstance(a, ipaddress.IPv4Interface)])
        for a in prims:
            if nhip is not None and nhip in a.network:
                return a.ip.packed
        if prims:
            return prims[0].ip.packed
    for name, addrs in host.ifaces.items():
        prims = _v4_primaries([a for a in addrs if isinstance(a, ipaddress.IPv4Interface)])
        if prims:
            return prims[0].ip.packed
    return None


def _v6_scope(ip: ipaddress.IPv6Address) -> int:
    """``ipv6_addr_src_scope`` ordering: link-local 2, site 5, global 14."""
    if ip.is_link_local or ip.is_loopback:
        return 2
    if ip.is_site_local:
        return 5
    return 14


def _common_prefix(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 128 - x.bit_length()


def select_addr_v6(host: HostModel, dev: str | None, dst: bytes) -> bytes | None:
    """``ipv6_dev_get_saddr`` (approximated): among the output interface's addresses (then
    every interface's), one whose scope is at least the destination's, the same scope
    first, then the longest prefix shared with the destination."""
    d = ipaddress.IPv6Address(dst)
    dscope = _v6_scope(d)

    def best(addrs: list[ipaddress.IPv6Interface]) -> bytes | None:
        cands = [a for a in addrs if _v6_scope(a.ip) >= dscope and not a.ip.is_loopback]
        if not cands:
            return None
        cands.sort(key=lambda a: (_v6_scope(a.ip) != dscope,
                                  -_common_prefix(a.ip.packed, dst)))
        return cands[0].ip.packed

    if dev is not None:
        got = best([a for a in host.ifaces.get(dev, [])
                    if isinstance(a, ipaddress.IPv6Interface)])
        if got is not None:
            return got
    every = [a for addrs in host.ifaces.values() for a in addrs
             if isinstance(a, ipaddress.IPv6Interface)]
    return best(every)


def redirect_addr(host: HostModel, hook: int, pkt: Packet) -> bytes | None:
    """``nf_nat_redirect_ipv4/ipv6``: loopback for locally generated packets, else the
    input interface's first address (IPv6: the first usable one for the destination's
    scope; the kernel's list puts wider scopes first and newer addresses before older)."""
    v6 = len(pkt.dst) == 16
    if hook == NF_INET_LOCAL_OUT:
        return LOOPBACK6 if v6 else LOOPBACK4
    addrs = host.ifaces.get(pkt.iface or "", [])
    if not v6:
        for a in addrs:
            if isinstance(a, ipaddress.IPv4Interface):
                return a.ip.packed
        return None
    d = ipaddress.IPv6Address(pkt.dst)
    v6s = [a for a in addrs if isinstance(a, ipaddress.IPv6Interface)]
    ordered = sorted(reversed(v6s), key=lambda a: -_v6_scope(a.ip))
    link = d.is_link_local
    for a in ordered:
        if link and not a.ip.is_link_local:
            continue
        return a.ip.packed
    return None


def netmap_addr(addr: bytes, net: bytes, plen: int) -> bytes:
    """``netmap_tg4/6``: the address with its first ``plen`` bits taken from ``net``."""
    bits = len(addr) * 8
    mask = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1) if plen else 0
    a = int.from_bytes(addr, "big")
    n = int.from_bytes(net, "big")
    return ((a & ~mask) | (n & mask)).to_bytes(len(addr), "big")


def target_range(req: NatRequest, hook: int, pkt: Packet, host: HostModel,
                 out_iface: str | None) -> tuple[NatRange, int] | None:
    """The range and manip type ``req`` binds with at ``hook``; None: the target drops
    the packet (MASQUERADE/REDIRECT without an address). A MASQUERADE for an entry from
    0.0.0.0 binds nothing (the caller then makes the null binding)."""
    kind = req.kind
    rng = base_range(req)
    if kind == "SNAT":
        return rng, NF_NAT_MANIP_SRC
    if kind == "DNAT":
        return rng, NF_NAT_MANIP_DST
    if kind == "MASQUERADE":
        if len(pkt.dst) == 16:
            src = select_addr_v6(host, out_iface, pkt.dst)
        else:
            src = select_addr_v4(host, out_iface, next_hop(host, pkt.dst))
        if src is None:
            return None                 # "%s ate my IP address"
        rng.flags |= NF_NAT_RANGE_MAP_IPS
        rng.min_addr = rng.max_addr = src
        return rng, NF_NAT_MANIP_SRC
    if kind == "REDIRECT":
        dst = redirect_addr(host, hook, pkt)
        if dst is None:
            return None
        rng.flags |= NF_NAT_RANGE_MAP_IPS
        rng.min_addr = rng.max_addr = dst
        return rng, NF_NAT_MANIP_DST
    if kind == "NETMAP":
        net = req.ranges[0][0] if req.ranges else None
        assert net is not None and req.prefix_len is not None
        manip = hook2manip(hook)
        addr = pkt.dst if manip == NF_NAT_MANIP_DST else pkt.src
        new = netmap_addr(addr, net, req.prefix_len)
        return NatRange(rng.flags | NF_NAT_RANGE_MAP_IPS, new, new), manip
    raise ValueError(f"unknown NAT target {kind}")
