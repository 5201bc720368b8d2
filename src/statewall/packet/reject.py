"""What the REJECT target puts on the wire: the ICMP/ICMPv6 error or TCP RST, byte for byte.

Owns: the datagram the kernel builds for each ``--reject-with`` (IPv4 and IPv6), and the
cases in which it sends nothing (each with a reason). Must not know: rules, conntrack, NAT,
routing tables, rate limits, time. What depends on the host (the ICMP source address the
routing code picks, the route's hop limit and MTU, a broadcast destination, the IP ID and
flow label the stack draws at random) comes in as parameters.

Follows (Linux 6.18):
  * ``net/ipv4/netfilter/ipt_REJECT.c`` / ``net/ipv6/netfilter/ip6t_REJECT.c``: the
    ``--reject-with`` -> ICMP code table; tcp-reset -> ``nf_send_reset`` / ``nf_send_reset6``.
  * ``net/ipv4/netfilter/nf_reject_ipv4.c``: ``nf_send_unreach`` (no reply to a non-first
    fragment, transport checksum checked unless ``nf_reject_verify_csum`` exempts the
    protocol) and ``nf_reject_ip_tcphdr_get`` / ``nf_reject_iphdr_put`` /
    ``nf_reject_ip_tcphdr_put`` (the RST: TOS 0, ID 0, DF, seq/ack rules).
  * ``include/net/netfilter/nf_reject.h`` ``nf_reject_verify_csum``: AH, ESP, SCTP, UDP-Lite,
    GRE and UDP with a zero checksum are not checked.
  * ``net/ipv4/icmp.c`` ``__icmp_send``: no error to a link-level or IP broadcast/multicast,
    to a non-first fragment, or to an ICMP error (types 1-7, 9-12 and > 18 count as errors);
    TOS = (tos & 0x1E) | 0xC0; quote as much as fits in min(576, mtu) bytes; options echoed
    by ``__ip_options_echo`` (record route only, see below).
  * ``net/ipv6/netfilter/nf_reject_ipv6.c``: ``reject6_csum_ok`` (no transport header or a
    non-first fragment -> nothing, unless the checksum is already known good), the RST6
    (unicast addresses only, traffic class and flow label 0).
  * ``net/ipv6/icmp.c`` ``icmp6_send``: no error to a multicast destination, from an
    unspecified or multicast source, or to an ICMPv6 error (``is_ineligible``); traffic
    class 0; quote up to IPV6_MIN_MTU (1280) - 40 - 8 = 1232 bytes.

Observed on 6.18 (tests/test_reject.py compares with a live kernel):
  * the ICMPv4 error has no DF (the ICMP socket uses IP_PMTUDISC_DONT), hence a
    pseudo-random IP ID from ``ip_idents``; the ICMPv6 error carries an automatic flow label
    (a hash). Both are parameters here (default 0).
  * At FORWARD the quoted header already has the TTL / hop limit decremented
    (``ip_forward`` / ``ip6_forward`` do it before the hook), and an IPv4 record-route
    option already holds the router's address (``ip_options_compile`` in
    ``ip_rcv_finish``) while the header checksum is left stale until after the hook. Pass
    the packet exactly as the hook sees it.
  * ``nf_ip_checksum`` sums from the IP header on, so with that stale header checksum no
    ICMP error and no RST is sent for a forwarded packet with a record-route option -
    unless its checksum is exempt (UDP checksum 0, ESP, ...), and then the option is
    echoed with the router's address added.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from statewall.packet.checksum import (add, inet_checksum, l4_checksum, l4_checksum_ok,
                                       ones_sum, pseudo_sum)
from statewall.packet.packet import AF_INET, AF_INET6, Packet

__all__ = [
    "NF_INET_LOCAL_IN", "NF_INET_FORWARD", "NF_INET_LOCAL_OUT",
    "REJECT_WITH_V4", "REJECT_WITH_V6", "TCP_RESET", "RejectResult",
    "reject", "reject_ipv4", "reject_ipv6",
]

# netfilter hook numbers (the same values as conntrack's; packet/ must not import conntrack)
NF_INET_LOCAL_IN: Final = 1
NF_INET_FORWARD: Final = 2
NF_INET_LOCAL_OUT: Final = 3
_REJECT_HOOKS: Final = frozenset((NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT))

TCP_RESET: Final = -1

# --reject-with (canonical iptables-save spelling and the short aliases libxt_REJECT accepts)
# -> ICMP code, or TCP_RESET
REJECT_WITH_V4: Final[dict[str, int]] = {
    "icmp-net-unreachable": 0, "net-unreach": 0,            # ICMP_NET_UNREACH
    "icmp-host-unreachable": 1, "host-unreach": 1,          # ICMP_HOST_UNREACH
    "icmp-proto-unreachable": 2, "proto-unreach": 2,        # ICMP_PROT_UNREACH
    "icmp-port-unreachable": 3, "port-unreach": 3,          # ICMP_PORT_UNREACH
    "icmp-net-prohibited": 9, "net-prohib": 9,              # ICMP_NET_ANO
    "icmp-host-prohibited": 10, "host-prohib": 10,          # ICMP_HOST_ANO
    "icmp-admin-prohibited": 13, "admin-prohib": 13,        # ICMP_PKT_FILTERED
    "tcp-reset": TCP_RESET, "tcp-rst": TCP_RESET,
}
REJECT_WITH_V6: Final[dict[str, int]] = {
    "icmp6-no-route": 0, "no-route": 0,                     # ICMPV6_NOROUTE
    "icmp6-adm-prohibited": 1, "adm-prohibited": 1,         # ICMPV6_ADM_PROHIBITED
    "icmp6-addr-unreachable": 3, "addr-unreach": 3,         # ICMPV6_ADDR_UNREACH
    "icmp6-port-unreachable": 4, "port-unreach": 4,         # ICMPV6_PORT_UNREACH
    "icmp6-policy-fail": 5, "policy-fail": 5,               # ICMPV6_POLICY_FAIL
    "icmp6-reject-route": 6, "reject-route": 6,             # ICMPV6_REJECT_ROUTE
    "tcp-reset": TCP_RESET, "tcp-rst": TCP_RESET,
}

# icmp_pointers[type].error in net/ipv4/icmp.c; types above NR_ICMP_TYPES (18) also count
_ICMP_ERROR_TYPES: Final = frozenset((1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12))
_NR_ICMP_TYPES: Final = 18

# nf_reject_verify_csum(): protocols whose checksum REJECT does not check (UDP: only when 0)
_NO_CSUM_CHECK: Final = frozenset((51, 50, 132, 136, 47))   # AH ESP SCTP UDP-Lite GRE

# ipv6_ext_hdr(): what ipv6_skip_exthdr walks over
_IP6_EXT: Final = frozenset((0, 43, 44, 51, 59, 60))

_IPV4_MIN_QUOTE_MTU: Final = 576          # "return as much as we can without exceeding 576"
_IPV6_QUOTE_MAX: Final = 1280 - 40 - 8    # IPV6_MIN_MTU - ipv6hdr - icmp6hdr

_IP4: Final = Struct("!BBHHHBBH4s4s")
_IP6: Final = Struct("!IHBB16s16s")
_TCP: Final = Struct("!HHIIBBHHH")
_ICMP: Final = Struct("!BBHI")
_U16: Final = Struct("!H").unpack_from
_U32: Final = Struct("!I").unpack_from

_IP4_BCAST: Final = b"\xff\xff\xff\xff"


class RejectResult:
    """What REJECT emits for one packet: ``data`` (a datagram starting at its IP header), or
    ``data is None`` and ``reason`` says why the kernel stays silent."""

    __slots__ = ("data", "reason")

    def __init__(self, data: bytes | None, reason: str | None = None) -> None:
        self.data = data
        self.reason = reason

    @property
    def sent(self) -> bool:
        return self.data is not None

    def __bool__(self) -> bool:
        return self.data is not None

    def __repr__(self) -> str:
        if self.data is not None:
            return f"RejectResult({len(self.data)} bytes)"
        return f"RejectResult(None, reason={self.reason!r})"


def _silent(reason: str) -> RejectResult:
    return RejectResult(None, reason)


def _check_hook(hook: int) -> None:
    if hook not in _REJECT_HOOKS:
        raise ValueError(f"REJECT is only valid in INPUT, FORWARD and OUTPUT (hook {hook})")


# ---------------------------------------------------------------------------------------
# IPv4

def _ip4_header(tos: int, total: int, ipid: int, frag: int, ttl: int, proto: int,
                src: bytes, dst: bytes, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    hdr = bytearray(_IP4.pack(0x40 | ihl, tos, total, ipid & 0xFFFF, frag, ttl, proto, 0,
                              src, dst) + options)
    hdr[10:12] = inet_checksum(hdr).to_bytes(2, "big")
    return bytes(hdr)


def _v4_sum_ok(buf: bytes, ihl: int, proto: int) -> bool:
    """``nf_ip_checksum`` on a CHECKSUM_NONE skb at FORWARD / INPUT.

    It sums the whole skb from the network header (``__skb_checksum_complete``), so the IP
    header's own checksum must be right too - which it is not at FORWARD for a packet whose
    record-route/timestamp option ``ip_options_compile`` has just filled in (the header
    checksum is only redone in ``ip_forward_options``, after the hook). TCP and UDP add the
    pseudo-header; every other protocol is summed alone.
    """
    s = ones_sum(buf)
    if proto == 6 or proto == 17:
        s = add(s, pseudo_sum(buf[12:16], buf[16:20], proto, len(buf) - ihl))
    return s == 0xFFFF


def _v4_csum_ok(buf: bytes, ihl: int, proto: int) -> bool:
    """``nf_reject_verify_csum`` then ``nf_ip_checksum``."""
    if proto in _NO_CSUM_CHECK:
        return True
    if proto == 17 and len(buf) >= ihl + 8 and buf[ihl + 6] == 0 and buf[ihl + 7] == 0:
        return True                                 # UDP without checksum
    return _v4_sum_ok(buf, ihl, proto)


def _ip_options_echo(buf: bytes, ihl: int, src_addr: bytes) -> bytes:
    """``__ip_options_echo`` + ``ip_options_build`` for the options of ``buf``.

    Record route is echoed and gets ``src_addr`` appended when it has room; a timestamp
    option is echoed when it is full; other options are dropped, as the kernel does. A
    timestamp with room (the kernel adds its clock), source routes and CIPSO are not
    modelled (NotImplementedError): source-routed packets are dropped before netfilter
    unless ``accept_source_route`` is on, CIPSO ones unless a DOI is configured.
    """
    found: dict[int, int] = {}                      # option type -> offset in buf
    i = 20
    while i < ihl:
        t = buf[i]
        if t == 0:                                  # IPOPT_END
            break
        if t == 1:                                  # IPOPT_NOOP
            i += 1
            continue
        if i + 1 >= ihl:
            break
        optlen = buf[i + 1]
        if optlen < 2 or i + optlen > ihl:
            break                                   # ip_options_compile would have dropped it
        found.setdefault(t, i)
        i += optlen
    if any(t in found for t in (0x83, 0x89, 0x86)):  # LSRR, SSRR, CIPSO
        raise NotImplementedError("echo of source-route / CIPSO options is not modelled")
    out = bytearray()
    rr = found.get(7)                               # IPOPT_RR
    if rr is not None:
        optlen = buf[rr + 1]
        opt = bytearray(buf[rr:rr + optlen])
        ptr = opt[2] if optlen > 2 else 0
        if 4 <= ptr <= optlen and ptr + 3 <= optlen:
            opt[ptr - 1:ptr + 3] = src_addr         # rr_needaddr: ip_options_build
            opt[2] = ptr + 4
        out += opt
    ts = found.get(0x44)                            # IPOPT_TS
    if ts is not None:
        optlen = buf[ts + 1]
        if optlen > 2 and buf[ts + 2] <= optlen:
            raise NotImplementedError("echo of a timestamp option with room is not modelled")
        out += buf[ts:ts + optlen]                  # full: copied as is
    while len(out) & 3:
        out.append(0)                               # IPOPT_END padding
    return bytes(out)


def _reset_v4(pkt: Packet, ttl: int, csum_unnecessary: bool,
              broadcast: bool) -> RejectResult:
    buf = pkt.buf
    ihl = (buf[0] & 15) << 2
    frag = _U16(buf, 6)[0]
    if frag & 0x1FFF:
        return _silent("non-first fragment")
    if buf[9] != 6:
        return _silent("tcp-reset for a non-tcp packet")
    if len(buf) < ihl + 20:
        return _silent("truncated tcp header")
    sport, dport, seq, ack, doffb, flags, _win, _csum, _urg = _TCP.unpack_from(buf, ihl)
    if flags & 0x04:
        return _silent("no rst in reply to rst")
    src, dst = buf[12:16], buf[16:20]
    if not csum_unnecessary and not _v4_sum_ok(buf, ihl, 6):
        return _silent("bad tcp checksum")
    if broadcast or dst == _IP4_BCAST or dst[0] & 0xF0 == 0xE0:
        return _silent("broadcast or multicast destination")
    if flags & 0x10:
        rseq, rack, rflags = ack, 0, 0x04
    else:
        rseq = 0
        rack = (seq + ((flags >> 1) & 1) + (flags & 1) + len(buf) - ihl
                - ((doffb >> 4) << 2)) & 0xFFFFFFFF
        rflags = 0x14
    tcp = bytearray(_TCP.pack(dport, sport, rseq, rack, 5 << 4, rflags, 0, 0, 0))
    tcp[16:18] = l4_checksum(tcp, 0, dst, src, 6).to_bytes(2, "big")
    return RejectResult(_ip4_header(0, 40, 0, 0x4000, ttl, 6, dst, src) + bytes(tcp))


def _unreach_v4(pkt: Packet, code: int, src_addr: bytes, ttl: int, ipid: int, mtu: int,
                csum_unnecessary: bool, broadcast: bool, link_unicast: bool) -> RejectResult:
    buf = pkt.buf
    ihl = (buf[0] & 15) << 2
    proto = buf[9]
    src, dst = buf[12:16], buf[16:20]
    # nf_send_unreach
    if _U16(buf, 6)[0] & 0x1FFF:
        return _silent("non-first fragment")
    if not csum_unnecessary and not _v4_csum_ok(buf, ihl, proto):
        return _silent("bad transport checksum")
    # __icmp_send
    if not link_unicast:
        return _silent("link-layer broadcast or multicast")
    if broadcast or dst == _IP4_BCAST or dst[0] & 0xF0 == 0xE0:
        return _silent("broadcast or multicast destination")
    if proto == 1:
        if len(buf) <= ihl:
            return _silent("truncated icmp header")
        itype = buf[ihl]
        if itype > _NR_ICMP_TYPES or itype in _ICMP_ERROR_TYPES:
            return _silent("no icmp error in reply to an icmp error")
    opts = _ip_options_echo(buf, ihl, src_addr) if ihl > 20 else b""
    room = min(mtu, _IPV4_MIN_QUOTE_MTU) - 20 - len(opts) - 8
    if room <= 20:
        return _silent("mtu too small for an icmp error")
    quote = buf[:room]
    icmp = bytearray(_ICMP.pack(3, code, 0, 0) + quote)
    icmp[2:4] = inet_checksum(icmp).to_bytes(2, "big")
    tos = (buf[1] & 0x1E) | 0xC0                   # RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL
    # the ICMP socket has IP_PMTUDISC_DONT: no DF, so the ID comes from ip_idents
    hdr = _ip4_header(tos, 20 + len(opts) + len(icmp), ipid, 0, ttl, 1, src_addr, src, opts)
    return RejectResult(hdr + bytes(icmp))


def reject_ipv4(pkt: Packet, with_: str = "icmp-port-unreachable",
                hook: int = NF_INET_FORWARD, *, src_addr: bytes | None = None,
                ttl: int = 64, ipid: int = 0, mtu: int = 1500,
                csum_unnecessary: bool | None = None, broadcast: bool = False,
                link_unicast: bool = True) -> RejectResult:
    """The datagram ``-j REJECT --reject-with with_`` sends for IPv4 packet ``pkt``.

    ``pkt.buf`` is the datagram as the hook sees it (at FORWARD: TTL already decremented).
    ``src_addr``: source of an ICMP error. The kernel uses the original destination when the
    packet was for this host (INPUT: the default here); otherwise the address the routing
    code selects for the route back to ``pkt.src`` - the caller's host model must supply it.
    A TCP RST always comes from the original destination.
    ``ttl``: ``ip4_dst_hoplimit`` of the route (sysctl ip_default_ttl, 64). ``ipid``: the ID
    of an ICMP error (the kernel draws it from its per-destination generator; a RST has 0).
    ``mtu``: of the route back (caps the quote below 576). ``csum_unnecessary``: the skb's
    checksum is known good (``skb_csum_unnecessary``: verified by the NIC, or a locally
    generated CHECKSUM_PARTIAL packet), so it is not checked; None means "only at OUTPUT".
    ``broadcast``: the original destination is a broadcast address of this host (limited
    broadcast and multicast are recognised here). ``link_unicast``: the frame was addressed
    to this host's MAC (``pkt_type == PACKET_HOST``).
    """
    if pkt.l3num != AF_INET:
        raise ValueError("reject_ipv4 needs an IPv4 packet")
    _check_hook(hook)
    try:
        code = REJECT_WITH_V4[with_]
    except KeyError:
        raise ValueError(f"unknown --reject-with {with_!r} for IPv4") from None
    if csum_unnecessary is None:
        csum_unnecessary = hook == NF_INET_LOCAL_OUT
    if code == TCP_RESET:
        return _reset_v4(pkt, ttl, csum_unnecessary, broadcast)
    if src_addr is None:
        if hook != NF_INET_LOCAL_IN:
            raise ValueError("src_addr is needed for an ICMP error outside INPUT")
        src_addr = pkt.buf[16:20]
    if len(src_addr) != 4:
        raise ValueError("src_addr must be 4 bytes")
    return _unreach_v4(pkt, code, src_addr, ttl, ipid, mtu, csum_unnecessary, broadcast,
                       link_unicast)


# ---------------------------------------------------------------------------------------
# IPv6

def _skip_exthdr(buf: bytes, off: int, nxt: int) -> tuple[int, int, int]:
    """``ipv6_skip_exthdr``: (offset or -1, next header, raw fragment offset field)."""
    n = len(buf)
    fo = 0
    while nxt in _IP6_EXT:
        if nxt == 59 or off + 2 > n:
            return -1, nxt, fo
        if nxt == 44:
            if off + 4 > n:
                return -1, nxt, fo
            fo = _U16(buf, off + 2)[0]
            if fo & 0xFFF8:
                break                               # non-first fragment: stop here
            hl = 8
        elif nxt == 51:
            hl = (buf[off + 1] + 2) << 2
        else:
            hl = (buf[off + 1] + 1) << 3
        nxt = buf[off]
        off += hl
    return off, nxt, fo


def _v6_unicast(addr: bytes) -> bool:
    """``ipv6_addr_type(addr) & IPV6_ADDR_UNICAST``: not ::, not multicast, not v4-mapped."""
    if addr[0] == 0xFF:
        return False
    if addr[:10] == bytes(10):
        if addr[10:12] == b"\xff\xff":
            return False                            # IPV6_ADDR_MAPPED
        if addr[10:] == bytes(6):
            return False                            # IPV6_ADDR_ANY
    return True


def _ip6_header(flow: int, plen: int, nxt: int, hlim: int, src: bytes, dst: bytes) -> bytes:
    return _IP6.pack(0x60000000 | (flow & 0x0FFFFFFF), plen, nxt, hlim, src, dst)


def _reset_v6(pkt: Packet, hop_limit: int, csum_unnecessary: bool) -> RejectResult:
    buf = pkt.buf
    src, dst = buf[8:24], buf[24:40]
    if not _v6_unicast(src) or not _v6_unicast(dst):
        return _silent("address is not unicast")
    off, nxt, _fo = _skip_exthdr(buf, 40, buf[6])
    if off < 0 or off > len(buf):
        return _silent("no tcp header")
    if nxt != 6:
        return _silent("tcp-reset for a non-tcp packet")
    tcplen = len(buf) - off
    if tcplen < 20:
        return _silent("truncated tcp header")
    sport, dport, seq, ack, doffb, flags, _win, _csum, _urg = _TCP.unpack_from(buf, off)
    if flags & 0x04:
        return _silent("no rst in reply to rst")
    if not csum_unnecessary and not l4_checksum_ok(buf, off, src, dst, 6):
        return _silent("bad tcp checksum")
    if flags & 0x10:
        rseq, rack, rflags = ack, 0, 0x04
    else:
        rseq = 0
        rack = (seq + ((flags >> 1) & 1) + (flags & 1) + tcplen
                - ((doffb >> 4) << 2)) & 0xFFFFFFFF
        rflags = 0x14
    tcp = bytearray(_TCP.pack(dport, sport, rseq, rack, 5 << 4, rflags, 0, 0, 0))
    tcp[16:18] = l4_checksum(tcp, 0, dst, src, 6).to_bytes(2, "big")
    return RejectResult(_ip6_header(0, 20, 6, hop_limit, dst, src) + bytes(tcp))


def _v6_csum_ok(buf: bytes) -> str | None:
    """``reject6_csum_ok`` on a CHECKSUM_NONE skb; None when fine, else the reason."""
    off, nxt, fo = _skip_exthdr(buf, 40, buf[6])
    if off < 0 or off >= len(buf):
        return "no transport header"
    if fo & 0xFFF8:
        return "non-first fragment"
    if nxt in _NO_CSUM_CHECK:
        return None
    if nxt == 17 and off + 8 <= len(buf) and buf[off + 6] == 0 and buf[off + 7] == 0:
        return None                                 # UDP without checksum
    if not l4_checksum_ok(buf, off, buf[8:24], buf[24:40], nxt):
        return "bad transport checksum"
    return None


def _ineligible(buf: bytes) -> bool:
    """``is_ineligible``: is this an ICMPv6 error (or an unreadable ICMPv6 header)?"""
    off, nxt, fo = _skip_exthdr(buf, 40, buf[6])
    if off < 0 or nxt != 58:
        return False
    if off >= len(buf):
        return fo == 0
    return buf[off] & 0x80 == 0                     # !(type & ICMPV6_INFOMSG_MASK)


def _unreach_v6(pkt: Packet, code: int, src_addr: bytes, hop_limit: int, flowlabel: int,
                csum_unnecessary: bool, link_unicast: bool) -> RejectResult:
    buf = pkt.buf
    src, dst = buf[8:24], buf[24:40]
    if not csum_unnecessary:
        why = _v6_csum_ok(buf)
        if why is not None:
            return _silent(why)
    # icmp6_send
    if dst[0] == 0xFF or not link_unicast:
        return _silent("multicast destination")
    if src == bytes(16) or src[0] == 0xFF:
        return _silent("unspecified or multicast source")
    if _ineligible(buf):
        return _silent("no icmpv6 error in reply to an icmpv6 error")
    quote = buf[:_IPV6_QUOTE_MAX]
    icmp = bytearray(_ICMP.pack(1, code, 0, 0) + quote)
    hdr = _ip6_header(flowlabel & 0xFFFFF, len(icmp), 58, hop_limit, src_addr, src)
    icmp[2:4] = l4_checksum(icmp, 0, src_addr, src, 58).to_bytes(2, "big")
    return RejectResult(hdr + bytes(icmp))


def reject_ipv6(pkt: Packet, with_: str = "icmp6-port-unreachable",
                hook: int = NF_INET_FORWARD, *, src_addr: bytes | None = None,
                hop_limit: int = 64, flowlabel: int = 0,
                csum_unnecessary: bool | None = None,
                link_unicast: bool = True) -> RejectResult:
    """The datagram ``-j REJECT --reject-with with_`` sends for IPv6 packet ``pkt``.

    ``pkt.buf`` as the hook sees it (at FORWARD: hop limit already decremented).
    ``src_addr``: source of an ICMPv6 error - the original destination when it is one of this
    host's addresses (INPUT: the default here), otherwise the address source-address
    selection picks on the *input* interface for ``pkt.src`` (caller's host model). A RST
    always comes from the original destination. ``hop_limit``: ``ip6_dst_hoplimit`` of the
    route back (sysctl hop_limit, 64). ``flowlabel``: the ICMPv6 error's flow label (the
    kernel computes a flow hash under net.ipv6.auto_flowlabels; the RST's is always 0).
    ``csum_unnecessary``: checksum known good (skips the transport checks of
    ``reject6_csum_ok``, including the fragment check, as the kernel does); None means
    "only at OUTPUT".
    ``link_unicast``: the frame was addressed to this host's MAC.
    """
    if pkt.l3num != AF_INET6:
        raise ValueError("reject_ipv6 needs an IPv6 packet")
    _check_hook(hook)
    try:
        code = REJECT_WITH_V6[with_]
    except KeyError:
        raise ValueError(f"unknown --reject-with {with_!r} for IPv6") from None
    if csum_unnecessary is None:
        csum_unnecessary = hook == NF_INET_LOCAL_OUT
    if code == TCP_RESET:
        return _reset_v6(pkt, hop_limit, csum_unnecessary)
    if src_addr is None:
        if hook != NF_INET_LOCAL_IN:
            raise ValueError("src_addr is needed for an ICMPv6 error outside INPUT")
        src_addr = pkt.buf[24:40]
    if len(src_addr) != 16:
        raise ValueError("src_addr must be 16 bytes")
    return _unreach_v6(pkt, code, src_addr, hop_limit, flowlabel, csum_unnecessary,
                       link_unicast)


def reject(pkt: Packet, with_: str | None = None, hook: int = NF_INET_FORWARD, *,
           src_addr: bytes | None = None, ttl: int = 64, csum_unnecessary: bool | None = None,
           link_unicast: bool = True) -> RejectResult:
    """Family dispatch with the kernel defaults (IP ID and flow label 0, MTU 1500)."""
    if pkt.l3num == AF_INET:
        return reject_ipv4(pkt, with_ or "icmp-port-unreachable", hook, src_addr=src_addr,
                           ttl=ttl, csum_unnecessary=csum_unnecessary,
                           link_unicast=link_unicast)
    return reject_ipv6(pkt, with_ or "icmp6-port-unreachable", hook, src_addr=src_addr,
                       hop_limit=ttl, csum_unnecessary=csum_unnecessary,
                       link_unicast=link_unicast)
