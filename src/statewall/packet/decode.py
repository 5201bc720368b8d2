"""Bytes -> Packet: the IPv4/IPv6 decoder on the hot path.

Owns: validating the network header the way the kernel does before PREROUTING, walking IPv6
extension headers the way conntrack does, and reading the transport fields tracking needs.
Must not know: link layers (see ``link.py``), capture formats, conntrack state, rules.

Follows:
  * ``net/ipv4/ip_input.c`` ``ip_rcv_core``: version, IHL >= 5, header checksum, total length
    (>= header, <= bytes available), then the buffer is trimmed to ``tot_len``. IP options
    are *not* validated: ``ip_options_compile`` runs in ``ip_rcv_finish``, after PREROUTING.
  * ``net/ipv6/ip6_input.c`` ``ip6_rcv_core``: version, multicast source, multicast
    destination with the reserved scope 0, payload length (trim, or the Jumbo option when it
    is 0), then ``ipv6_parse_hopopts`` / ``ip6_parse_tlv`` in ``net/ipv6/exthdrs.c`` for a
    hop-by-hop header (padding rules, option count limit 8, Router Alert length, Jumbo
    checks, unknown-option action bits). Two checks depend on the receiving device (loopback
    destination ``::1`` and interface-local multicast ``ff01::/16`` are dropped unless the
    device is a loopback): they run only when the caller says which it is (``loopback=``).
  * ``net/ipv6/exthdrs_core.c`` ``ipv6_skip_exthdr`` as used by
    ``net/netfilter/nf_conntrack_core.c`` ``ipv6_get_l4proto``: hop-by-hop, routing,
    destination options, fragment and AH are skipped (AH length is ``(len + 2) * 4``);
    ESP and anything else is the L4 protocol. Where the kernel's walk fails (no-next-header
    59, an extension header cut short) conntrack counts the packet invalid; here that is
    ``l4err`` with ``proto`` = the header where the walk stopped and ``l4off`` its offset.
  * Transport fields follow ``nf_ct_get_tuple`` and the ``*_error`` callbacks: TCP needs 20
    bytes and ``20 <= doff <= l4len``; UDP / UDP-Lite 8 bytes; SCTP 12; DCCP 12 with a sane
    data offset; ICMP / ICMPv6 8 bytes (for protocol 1 and 58 whatever the family, as
    ``nf_ct_get_tuple`` switches on the protocol number only). Otherwise ``l4err`` is set and
    the ports stay 0. UDP length / checksum checks are the tracker's (``udp_error``).

Fragments: ``fragoff`` (bytes), ``mf`` and ``ipid`` are always filled in; L4 fields only for
``fragoff == 0``. A non-first fragment gets ``proto`` = the fragment header's next header (as
``ipv6_find_hdr`` gives ip6tables) and ``l4off`` just past the fragment header; like the
kernel's ``ipv4_get_l4proto`` / ``ipv6_get_l4proto``, conntrack must not track it as L4.

Accelerated: with the optional C module ``statewall._speedups`` (unless STATEWALL_PURE is
set), ``decode_ip``, ``decode_ipv4`` and ``decode_ipv6`` are C functions that decode the
common case (valid IPv4, IPv6 without extension headers, an intact transport header) into a
Packet made like ``Packet.__init__`` makes one, and hand everything else (every error, every
``l4err``, extension headers, hop-by-hop, non-bytes input) to the Python functions below,
which stay the reference: ``decode_ip_py``, ``decode_ipv4_py``, ``decode_ipv6_py``.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from statewall.packet.packet import Packet, ParseError

try:
    from .. import _speedups
except ImportError:                 # not built, or disabled by STATEWALL_PURE
    _speedups = None  # type: ignore[assignment]

__all__ = ["decode_ip", "decode_ipv4", "decode_ipv6", "IPV6_EXT_HEADERS", "ACCELERATED"]

_IP4: Final = Struct("!BBHHHBBH4s4s").unpack_from   # vihl tos tot id frag ttl proto csum
_IP6: Final = Struct("!IHBB16s16s").unpack_from     # vtcfl plen nxt hlim src dst
_TCP: Final = Struct("!HHIIBBH").unpack_from        # sport dport seq ack doff flags win
_PORTS: Final = Struct("!HH").unpack_from
_ICMP: Final = Struct("!BBxxH").unpack_from         # type code (csum) identifier
_U16: Final = Struct("!H").unpack_from
_U32: Final = Struct("!I").unpack_from

# ipv6_ext_hdr(): the headers ipv6_skip_exthdr walks over (59 = NEXTHDR_NONE stops the walk)
IPV6_EXT_HEADERS: Final = frozenset((0, 43, 44, 51, 59, 60))

_IP6_LOOPBACK: Final = bytes(15) + b"\x01"
_MAX_HBH_OPTS: Final = 8           # net.ipv6.max_hbh_opts_number (IP6_DEFAULT_MAX_HBH_OPTS_CNT)
_IPV6_MAXPLEN: Final = 65535


def _l4(p: Packet, buf: bytes, proto: int, off: int, n: int) -> None:
    """Fill the transport fields of ``p`` from ``buf[off:n]`` (first fragment only)."""
    avail = n - off
    if proto == 6:
        if avail < 20:
            p.l4err = "truncated tcp header"
            return
        sport, dport, seq, ack, doffb, flags, win = _TCP(buf, off)
        doff = (doffb >> 4) << 2
        if doff < 20:
            p.l4err = "tcp data offset too small"
            return
        if doff > avail:
            p.l4err = "tcp data offset beyond end of packet"
            return
        p.sport = sport
        p.dport = dport
        p.seq = seq
        p.ack = ack
        p.flags = flags
        p.win = win
        p.doff = doff
        p.tcp_optoff = off + 20
        p.tcp_optlen = doff - 20
        p.payload_off = off + doff
    elif proto == 17 or proto == 136:
        if avail < 8:
            p.l4err = "truncated udplite header" if proto == 136 else "truncated udp header"
            return
        p.sport, p.dport = _PORTS(buf, off)
        p.payload_off = off + 8
    elif proto == 1 or proto == 58:
        if avail < 8:
            p.l4err = "truncated icmpv6 header" if proto == 58 else "truncated icmp header"
            return
        t, c, ident = _ICMP(buf, off)
        p.icmp_type = t
        p.icmp_code = c
        p.sport = ident
        p.dport = t << 8 | c
        p.payload_off = off + 8
    elif proto == 132:
        if avail < 12:
            p.l4err = "truncated sctp header"
            return
        p.sport, p.dport = _PORTS(buf, off)
        p.payload_off = off + 12
    elif proto == 33:
        if avail < 12:
            p.l4err = "truncated dccp header"
            return
        doff = buf[off + 4] << 2
        if doff < 12 or doff > avail:
            p.l4err = "dccp bad data offset"
            return
        p.sport, p.dport = _PORTS(buf, off)
        p.payload_off = off + doff


def decode_ipv4_py(buf: bytes) -> Packet:
    """Decode an IPv4 datagram starting at ``buf[0]``; raise ParseError where ip_rcv drops."""
    n = len(buf)
    if n < 20:
        raise ParseError("truncated ipv4 header")
    vihl, tos, tot, ipid, frag, ttl, proto, _csum, src, dst = _IP4(buf)
    hl = (vihl & 15) << 2
    if vihl >> 4 != 4:
        raise ParseError(f"ip version {vihl >> 4} is not 4")
    if hl < 20:
        raise ParseError(f"ipv4 header length {hl} < 20")
    if hl > n:
        raise ParseError("truncated ipv4 options")
    # ones' complement sum of the header words is 0xffff <=> the header as an integer is a
    # multiple of 0xffff (2**16 == 1 mod 0xffff); an all-zero header was rejected above
    if int.from_bytes(buf[:hl], "big") % 0xFFFF:
        raise ParseError("bad ipv4 header checksum")
    if tot > n:
        raise ParseError(f"truncated ipv4 datagram (total length {tot} > {n})")
    if tot < hl:
        raise ParseError(f"ipv4 total length {tot} < header length {hl}")
    if tot != n:
        buf = buf[:tot]
    p = Packet(buf, 2, src, dst, proto, hl)
    p.ttl = ttl
    p.ipid = ipid
    p.tos = tos
    if frag & 0x3FFF:
        fragoff = (frag & 0x1FFF) << 3
        p.fragoff = fragoff
        p.mf = frag & 0x2000 != 0
        if fragoff:
            return p
    _l4(p, buf, proto, hl, tot)
    return p


def _hopopts(buf: bytes, n: int, plen: int) -> int:
    """Validate a hop-by-hop header like ``ipv6_parse_hopopts``; return the datagram length.

    The length changes only for a valid Jumbo payload option (payload length 0).
    """
    if n < 48:
        raise ParseError("truncated hop-by-hop header")
    end = 40 + ((buf[41] + 1) << 3)
    if end > n:
        raise ParseError("truncated hop-by-hop header")
    off = 42
    pad = 0
    count = 0
    total = n
    while off < end:
        t = buf[off]
        if t == 0:                                  # Pad1
            pad += 1
            if pad > 7:
                raise ParseError("hop-by-hop padding longer than 7 bytes")
            off += 1
            continue
        if off + 2 > end:
            raise ParseError("malformed hop-by-hop option")
        optlen = buf[off + 1] + 2
        if off + optlen > end:
            raise ParseError("malformed hop-by-hop option")
        if t == 1:                                  # PadN
            pad += optlen
            if pad > 7:
                raise ParseError("hop-by-hop padding longer than 7 bytes")
            if any(buf[off + 2:off + optlen]):
                raise ParseError("hop-by-hop PadN with non-zero payload")
        else:
            count += 1
            if count > _MAX_HBH_OPTS:
                raise ParseError("too many hop-by-hop options")
            if t == 0x05:                           # Router Alert (ipv6_hop_ra)
                if optlen != 4:
                    raise ParseError("bad router alert option length")
            elif t == 0xC2:                         # Jumbo payload (ipv6_hop_jumbo)
                if optlen != 6 or (off & 3) != 2:
                    raise ParseError("bad jumbo payload option")
                jlen = _U32(buf, off + 2)[0]
                if jlen <= _IPV6_MAXPLEN:
                    raise ParseError("jumbo payload length <= 65535")
                if plen:
                    raise ParseError("jumbo option with non-zero payload length")
                if jlen > n - 40:
                    raise ParseError("truncated ipv6 jumbogram")
                total = jlen + 40
            elif t == 0x07:                         # CALIPSO (ipv6_hop_calipso)
                if optlen - 2 < 8 or buf[off + 6] * 4 + 8 > optlen - 2:
                    raise ParseError("bad calipso option")
            elif t == 0x31:                         # IOAM: ignored while ioam6_enabled=0
                pass
            elif t >> 6:                            # unknown, action bits say drop
                raise ParseError(f"unknown hop-by-hop option 0x{t:02x}")
            pad = 0
        off += optlen
    return total


def decode_ipv6_py(buf: bytes, loopback: bool | None = None) -> Packet:
    """Decode an IPv6 datagram starting at ``buf[0]``; raise ParseError where ipv6_rcv drops.

    ``loopback``: whether the receiving device is a loopback; None (unknown) skips the two
    device-dependent checks (``::1`` and ``ff01::/16`` destinations from outside).
    """
    n = len(buf)
    if n < 40:
        raise ParseError("truncated ipv6 header")
    vtcfl, plen, nxt, hlim, src, dst = _IP6(buf)
    if vtcfl >> 28 != 6:
        raise ParseError(f"ip version {vtcfl >> 28} is not 6")
    if dst[0] == 0xFF:
        scope = dst[1] & 15
        if scope == 0:
            raise ParseError("ipv6 multicast destination with reserved scope 0")
        if scope == 1 and loopback is False:
            raise ParseError("interface-local multicast destination from outside")
    elif loopback is False and dst == _IP6_LOOPBACK:
        raise ParseError("ipv6 loopback destination on a non-loopback device")
    if src[0] == 0xFF:
        raise ParseError("ipv6 multicast source address")
    if plen or nxt != 0:
        tot = plen + 40
        if tot > n:
            raise ParseError(f"truncated ipv6 datagram (payload length {plen} > {n - 40})")
        if tot != n:
            buf = buf[:tot]
            n = tot
    if nxt == 0:
        tot = _hopopts(buf, n, plen)
        if tot != n:
            buf = buf[:tot]
            n = tot

    off = 40
    if nxt == 6 or nxt == 17 or nxt == 58:         # the common case: no extension headers
        p = Packet(buf, 10, src, dst, nxt, 40)
        p.ttl = hlim
        p.tos = (vtcfl >> 20) & 0xFF
        _l4(p, buf, nxt, 40, n)
        return p

    fragoff = 0
    mf = False
    ipid = 0
    frag_hdr_off = -1
    err: str | None = None
    while nxt in IPV6_EXT_HEADERS:
        if nxt == 59:
            err = "no next header"
            break
        if off + 2 > n:
            err = "truncated ipv6 extension header"
            break
        if nxt == 44:
            if off + 8 > n:
                err = "truncated ipv6 fragment header"
                break
            fo = _U16(buf, off + 2)[0]
            frag_hdr_off = off
            fragoff = fo & 0xFFF8
            mf = fo & 1 != 0
            ipid = _U32(buf, off + 4)[0]
            nxt = buf[off]
            off += 8
            if fragoff:
                break                               # non-first fragment: no L4 header here
            continue
        hl = (buf[off + 1] + 2) << 2 if nxt == 51 else (buf[off + 1] + 1) << 3
        nxt = buf[off]
        off += hl
    if off > n:
        # an extension header claims more bytes than the datagram has
        off = n
        if err is None:
            err = "truncated ipv6 extension header"
    p = Packet(buf, 10, src, dst, nxt, off)
    p.ttl = hlim
    p.tos = (vtcfl >> 20) & 0xFF
    if frag_hdr_off >= 0:
        p.frag_hdr_off = frag_hdr_off
        p.fragoff = fragoff
        p.mf = mf
        p.ipid = ipid
    if err is not None:
        p.l4err = err
    elif not fragoff:
        _l4(p, buf, nxt, off, n)
    return p


def decode_ip_py(buf: bytes, loopback: bool | None = None) -> Packet:
    """Decode an IPv4 or IPv6 datagram, chosen by the version nibble of ``buf[0]``."""
    if not buf:
        raise ParseError("empty ip datagram")
    v = buf[0] >> 4
    if v == 4:
        return decode_ipv4_py(buf)
    if v == 6:
        return decode_ipv6_py(buf, loopback)
    raise ParseError(f"unknown ip version {v}")


def _accelerate() -> bool:
    """Hand the C decoder the Packet class, its defaults and the Python fallbacks."""
    if _speedups is None:
        return False
    try:
        _speedups.bind_packet(Packet, Packet(b"", 2, b"", b"", 0, 0))
    except (TypeError, ValueError):     # Packet no longer plain __slots__: stay pure
        return False
    _speedups.set_fallbacks(decode_ip=decode_ip_py, decode_ipv4=decode_ipv4_py,
                            decode_ipv6=decode_ipv6_py)
    return True


ACCELERATED: Final = _accelerate()
if ACCELERATED:
    decode_ip = _speedups.decode_ip
    decode_ipv4 = _speedups.decode_ipv4
    decode_ipv6 = _speedups.decode_ipv6
else:
    decode_ip = decode_ip_py
    decode_ipv4 = decode_ipv4_py
    decode_ipv6 = decode_ipv6_py
