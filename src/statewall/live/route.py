"""The kernel's routing, asked over rtnetlink: interfaces, addresses, route lookups.

Owns: ``Rtnl`` (dump links and addresses; ``RTM_GETROUTE`` for one packet's input route,
exactly what ``ip route get DST from SRC iif DEV mark M`` asks, so rp_filter, policy
routing by mark, local/broadcast/multicast types all come from the kernel's FIB), a
listener for rtnetlink change notifications, and ``KernelHost``: a ``HostModel`` whose
routing questions are answered by the kernel for the packet being decided, with a cache
flushed whenever a route, address, link or rule changes.
Must not know: rules, conntrack, NFQUEUE. I/O code (netlink sockets).

Why ask at all: the queue sits at PREROUTING (raw priority), before the kernel routes the
packet, so statewall must know where the kernel is going to send it (INPUT or FORWARD, and
the output device) to run the right chains. The answer is the kernel's own, looked up once
per (input device, source, destination, mark, tos) and cached; the kernel then routes the
accepted packet the same way. For locally generated packets (OUTPUT) the kernel has routed
already and NFQUEUE tells the output device, so nothing is asked.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from typing import Final

from ..conntrack.proto.base import NF_INET_LOCAL_OUT
from ..host import HostModel, IfAddr

NETLINK_ROUTE: Final = 0
NLM_F_REQUEST: Final = 0x1
NLM_F_ROOT: Final = 0x100
NLM_F_MATCH: Final = 0x200
NLM_F_DUMP: Final = NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3

RTM_NEWLINK: Final = 16
RTM_GETLINK: Final = 18
RTM_NEWADDR: Final = 20
RTM_GETADDR: Final = 22
RTM_NEWROUTE: Final = 24
RTM_GETROUTE: Final = 26

IFLA_IFNAME: Final = 3
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
RTA_DST: Final = 1
RTA_SRC: Final = 2
RTA_IIF: Final = 3
RTA_OIF: Final = 4
RTA_MARK: Final = 16

# route types (enum rtn_type)
RTN_UNICAST: Final = 1
RTN_LOCAL: Final = 2
RTN_BROADCAST: Final = 3
RTN_MULTICAST: Final = 5
RTN_ERROR: Final = -1      # statewall's: the lookup failed (no route, rp_filter...)

# multicast groups (legacy bitmask: group n is bit n-1)
RTMGRP_LINK: Final = 0x1
RTMGRP_IPV4_IFADDR: Final = 0x10
RTMGRP_IPV4_ROUTE: Final = 0x40
RTMGRP_IPV4_RULE: Final = 0x80
RTMGRP_IPV6_IFADDR: Final = 0x100
RTMGRP_IPV6_ROUTE: Final = 0x400
RTMGRP_IPV6_RULE: Final = 1 << 18      # RTNLGRP_IPV6_RULE = 19
_GROUPS: Final = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE
                  | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE | RTMGRP_IPV6_RULE)

_NLMSGHDR: Final = struct.Struct("=IHHII")
_RTMSG: Final = struct.Struct("=BBBBBBBBI")
_IFINFO: Final = struct.Struct("=BxHiII")
_IFADDR: Final = struct.Struct("=BBBBI")
_NLATTR: Final = struct.Struct("=HH")
_U32: Final = struct.Struct("=I")

CACHE_MAX: Final = 65536


def _attr(t: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return _NLATTR.pack(n, t) + data + b"\0" * ((4 - n % 4) % 4)


def _attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        alen, atype = _NLATTR.unpack_from(buf, off)
        if alen < 4:
            break
        out[atype & 0x3FFF] = buf[off + 4:off + alen]
        off += (alen + 3) & ~3
    return out


class Rtnl:
    """A request/reply rtnetlink socket (lookups and dumps), blocking."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.settimeout(2.0)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, mtype: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_NLMSGHDR.pack(16 + len(body), mtype, flags, self.seq, 0) + body)
        return self.seq

    def _replies(self, seq: int) -> list[tuple[int, bytes]]:
        """Messages answering ``seq`` until DONE (dump) or the first non-multi reply."""
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                mlen, mtype, flags, mseq, _ = _NLMSGHDR.unpack_from(data, off)
                if mlen < 16:
                    return out
                msg = data[off + 16:off + mlen]
                off += (mlen + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", msg)[0]
                    if err:
                        raise OSError(err, f"rtnetlink: {errno.errorcode.get(err, err)}")
                    return out
                out.append((mtype, msg))
                if not flags & 0x2:       # NLM_F_MULTI
                    return out

    def links(self) -> dict[int, str]:
        """ifindex -> name."""
        seq = self._send(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, _IFINFO.pack(0, 0, 0, 0, 0))
        out: dict[int, str] = {}
        for mtype, msg in self._replies(seq):
            if mtype != RTM_NEWLINK:
                continue
            _fam, _type, index, _flags, _change = _IFINFO.unpack_from(msg)
            a = _attrs(msg, _IFINFO.size, len(msg))
            if IFLA_IFNAME in a:
                out[index] = a[IFLA_IFNAME].split(b"\0", 1)[0].decode(errors="replace")
        return out

    def addresses(self) -> list[tuple[int, IfAddr]]:
        """(ifindex, address/prefix) of every interface address."""
        out: list[tuple[int, IfAddr]] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            seq = self._send(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP,
                             _IFADDR.pack(family, 0, 0, 0, 0))
            for mtype, msg in self._replies(seq):
                if mtype != RTM_NEWADDR:
                    continue
                fam, plen, _fl, _scope, index = _IFADDR.unpack_from(msg)
                a = _attrs(msg, _IFADDR.size, len(msg))
                raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
                if raw is None or len(raw) not in (4, 16):
                    continue
                ip = ipaddress.ip_address(raw)
                out.append((index, ipaddress.ip_interface(f"{ip}/{plen}")))
        return out

    def route(self, dst: bytes, src: bytes | None = None, iif: int = 0, mark: int = 0,
              tos: int = 0) -> tuple[int, int]:
        """``ip route get``: (route type, output ifindex); (RTN_ERROR, errno) when the
        kernel has no route for it (or refuses it: rp_filter, forwarding off...)."""
        family = socket.AF_INET if len(dst) == 4 else socket.AF_INET6
        bits = len(dst) * 8
        body = _RTMSG.pack(family, bits, bits if src else 0, tos if family == socket.AF_INET
                           else 0, 0, 0, 0, 0, 0) + _attr(RTA_DST, dst)
        if src:
            body += _attr(RTA_SRC, src)
        if iif:
            body += _attr(RTA_IIF, _U32.pack(iif))
        if mark:
            body += _attr(RTA_MARK, _U32.pack(mark))
        seq = self._send(RTM_GETROUTE, NLM_F_REQUEST, body)
        try:
            replies = self._replies(seq)
        except OSError as e:
            return RTN_ERROR, e.errno or 0
        for mtype, msg in replies:
            if mtype != RTM_NEWROUTE:
                continue
            rtype = msg[7]
            a = _attrs(msg, _RTMSG.size, len(msg))
            oif = _U32.unpack(a[RTA_OIF])[0] if RTA_OIF in a else 0
            return rtype, oif
        return RTN_ERROR, 0


class Watcher:
    """Non-blocking socket subscribed to link/address/route/rule changes; ``changed()``
    drains it and says whether anything happened (the caller flushes its caches)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, _GROUPS))
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def changed(self) -> bool:
        any_ = False
        while True:
            try:
                self.sock.recv(1 << 16)
                any_ = True
            except BlockingIOError:
                return any_
            except OSError as e:
                if e.errno == errno.ENOBUFS:      # missed some: treat as a change
                    any_ = True
                    continue
                raise

    def close(self) -> None:
        self.sock.close()


class KernelHost(HostModel):
    """The firewall host as the kernel sees it: interfaces and addresses from rtnetlink,
    routing decisions from the kernel's FIB for the packet being decided.

    Before ``Firewall.process`` the caller names the packet (``current``); the facade's
    ``delivers_locally(dst)`` / ``route(dst)`` for that packet's destination are then
    answered by an input-route lookup (arriving packets) or by the output device NFQUEUE
    reported (locally generated ones). Other destinations (the facade routing a REJECT
    reply) get an output-route lookup, as ``ip_route_me_harder`` would do."""

    __slots__ = ("rtnl", "names", "cache", "cur_hook", "cur_iif", "cur_src", "cur_dst",
                 "cur_mark", "cur_tos", "cur_oif", "cur_res", "lookups")

    def __init__(self, rtnl: Rtnl | None = None) -> None:
        self.rtnl = rtnl if rtnl is not None else Rtnl()
        self.cache: dict[tuple[int, bytes, bytes, int, int], tuple[int, int]] = {}
        self.cur_hook = -1
        self.cur_iif = 0
        self.cur_src = b""
        self.cur_dst = b""
        self.cur_mark = 0
        self.cur_tos = 0
        self.cur_oif = 0
        self.cur_res: tuple[int, int] | None = None    # the current packet's input route
        self.lookups = 0
        self.names: dict[int, str] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read interfaces and addresses; forget every cached route."""
        self.cur_res = None
        names = self.rtnl.links()
        by_if: dict[str, list[IfAddr]] = {n: [] for n in names.values()}
        for index, a in self.rtnl.addresses():
            name = names.get(index)
            if name is not None:
                by_if[name].append(a)
        HostModel.__init__(self, list(by_if.items()))
        self.names = names
        self.cache = {}

    def current(self, hook: int, iif: int, oif: int, src: bytes, dst: bytes, mark: int,
                tos: int) -> None:
        self.cur_hook = hook
        self.cur_iif = iif
        self.cur_oif = oif
        self.cur_src = src
        self.cur_dst = dst
        self.cur_mark = mark
        self.cur_tos = tos
        self.cur_res = None

    def _lookup(self, iif: int, src: bytes, dst: bytes, mark: int, tos: int) -> tuple[int, int]:
        key = (iif, src, dst, mark, tos)
        r = self.cache.get(key)
        if r is None:
            self.lookups += 1
            r = self.rtnl.route(dst, src if iif else None, iif, mark, tos)
            if len(self.cache) >= CACHE_MAX:
                self.cache.clear()
            self.cache[key] = r
        return r

    def _input(self) -> tuple[int, int]:
        r = self.cur_res
        if r is None:
            r = self.cur_res = self._lookup(self.cur_iif, self.cur_src, self.cur_dst,
                                            self.cur_mark, self.cur_tos & 0xFC)
        return r

    def delivers_locally(self, dst: bytes) -> bool:
        if dst[0] == 0xFF if len(dst) == 16 else dst[0] >= 224:
            return True      # multicast: local delivery (no multicast routing daemon)
        if dst == self.cur_dst and self.cur_hook != NF_INET_LOCAL_OUT and self.cur_iif:
            rtype = self._input()[0]
            return rtype == RTN_LOCAL or rtype == RTN_BROADCAST or rtype == RTN_MULTICAST
        return HostModel.delivers_locally(self, dst)

    def route(self, dst: bytes) -> str | None:
        if dst == self.cur_dst:
            if self.cur_hook == NF_INET_LOCAL_OUT:
                return self.names.get(self.cur_oif)
            if self.cur_iif:
                rtype, oif = self._input()
                if rtype == RTN_UNICAST:
                    return self.names.get(oif)
                return None
        rtype, oif = self._lookup(0, b"", dst, self.cur_mark, 0)
        if rtype == RTN_ERROR:
            return None
        return self.names.get(oif)
