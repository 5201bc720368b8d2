"""The LOG target's kernel log line, character for character.

Owns: the text ``-j LOG`` hands to printk for an IPv4/IPv6 packet - prefix, IN=/OUT=, the
MAC field (raw or ``--log-macdecode``), the IP header fields, the transport summary, the
packet quoted inside an ICMP/ICMPv6 error (one level), IP options / IPv6 extension headers
(``--log-ip-options``), TCP sequence numbers and options (``--log-tcp-sequence``,
``--log-tcp-options``), UID/GID (``--log-uid``), MARK, and the ``INCOMPLETE`` /
``TRUNCATED`` forms for cut-off headers, with the kernel's spacing (every field ends in a
space; a few early exits do not).
Must not know: rules, conntrack, sockets, time (the timestamp in front is the caller's).

Follows ``net/netfilter/nf_log_syslog.c`` (Linux 6.18): ``nf_log_ip_packet`` /
``nf_log_ip6_packet``, ``nf_log_dump_packet_common``, ``dump_mac_header``,
``dump_ipv4_packet``, ``dump_ipv6_packet``, ``nf_log_dump_tcp_header``,
``nf_log_dump_udp_header``; the 1 KiB ``nf_log_buf`` of ``net/netfilter/nf_log.c``.
Every "is the header there" test is ``skb_header_pointer`` against the end of the datagram
(``len(pkt.buf)``, i.e. ``skb->len``), also inside a quoted packet, and byte counts in
``INCOMPLETE [N bytes]`` are unsigned 32-bit like the kernel's.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from statewall.packet.packet import Packet

__all__ = [
    "XT_LOG_TCPSEQ", "XT_LOG_TCPOPT", "XT_LOG_IPOPT", "XT_LOG_UID", "XT_LOG_MACDECODE",
    "XT_LOG_MASK", "LogRecord", "log_line", "log_record", "format_ipv6",
]

# --log-* flags (include/uapi/linux/netfilter/xt_LOG.h; NF_LOG_* have the same values)
XT_LOG_TCPSEQ: Final = 0x01       # --log-tcp-sequence
XT_LOG_TCPOPT: Final = 0x02       # --log-tcp-options
XT_LOG_IPOPT: Final = 0x04        # --log-ip-options
XT_LOG_UID: Final = 0x08          # --log-uid
XT_LOG_MACDECODE: Final = 0x20    # --log-macdecode
XT_LOG_MASK: Final = 0x2F

# nf_log_buf: S_SIZE = 1024 - (sizeof(unsigned int) + 1); the text (after KERN_SOH and
# the level digit) is cut where the first nf_log_buf_add that does not fit stops writing
_S_SIZE: Final = 1024 - 5
_NLEN: Final = _S_SIZE - 1        # bytes kept of the whole buffer (SOH + level + text)
_PREFIX_MAX: Final = 127          # NF_LOG_PREFIXLEN 128, vsnprintf'd with a NUL

# required_len[] of dump_ipv4_packet: bytes after the IP header an ICMP type needs
_ICMP_REQUIRED: Final[dict[int, int]] = {
    0: 4, 3: 28, 4: 28, 5: 28, 8: 4, 11: 28, 12: 28, 13: 20, 14: 20, 17: 12, 18: 12,
}
_NR_ICMP_TYPES: Final = 18

# nf_ip6_ext_hdr(): hop-by-hop, routing, fragment, ESP, AH, no-next-header, dest options
_IP6_EXT: Final = frozenset((0, 43, 44, 50, 51, 59, 60))

_U16: Final = Struct("!H").unpack_from
_U32: Final = Struct("!I").unpack_from
_IP4: Final = Struct("!BBHHHBBH4s4s").unpack_from
_TCP: Final = Struct("!HHIIHHHH").unpack_from     # sport dport seq ack flagword win csum urg


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _ip4(a: bytes) -> str:
    return f"{a[0]}.{a[1]}.{a[2]}.{a[3]}"


def format_ipv6(a: bytes) -> str:
    """``%pI6``: eight groups of four lowercase hex digits, never compressed."""
    h = a.hex()
    return ":".join(h[i:i + 4] for i in range(0, 32, 4))


def _mac(a: bytes) -> str:
    return ":".join(f"{x:02x}" for x in a)


def _tcp(out: list[str], b: bytes, fragment: bool, off: int, flags: int) -> bool:
    """``nf_log_dump_tcp_header``; True where the kernel returns 1 (stop dumping)."""
    out.append("PROTO=TCP ")
    if fragment:
        return False
    n = len(b)
    if off + 20 > n:
        out.append(f"INCOMPLETE [{_u32(n - off)} bytes] ")
        return True
    sport, dport, seq, ack, word, win, _csum, urg = _TCP(b, off)
    out.append(f"SPT={sport} DPT={dport} ")
    if flags & XT_LOG_TCPSEQ:
        out.append(f"SEQ={seq} ACK={ack} ")
    out.append(f"WINDOW={win} ")
    # tcp_flag_word & TCP_RESERVED_BITS (0x0E000000) >> 22; the AE bit has its own name
    out.append(f"RES=0x{(word & 0x0E00) >> 6:02x} ")
    for bit, name in ((0x100, "AE "), (0x80, "CWR "), (0x40, "ECE "), (0x20, "URG "),
                      (0x10, "ACK "), (0x08, "PSH "), (0x04, "RST "), (0x02, "SYN "),
                      (0x01, "FIN ")):
        if word & bit:
            out.append(name)
    out.append(f"URGP={urg} ")
    doff = (word >> 12) * 4
    if flags & XT_LOG_TCPOPT and doff > 20:
        optsize = doff - 20
        if off + 20 + optsize > n:
            out.append("OPT (TRUNCATED)")
            return True
        out.append(f"OPT ({b[off + 20:off + 20 + optsize].hex().upper()}) ")
    return False


def _udp(out: list[str], b: bytes, proto: int, fragment: bool, off: int) -> bool:
    """``nf_log_dump_udp_header``."""
    out.append("PROTO=UDP " if proto == 17 else "PROTO=UDPLITE ")
    if fragment:
        return False
    n = len(b)
    if off + 8 > n:
        out.append(f"INCOMPLETE [{_u32(n - off)} bytes] ")
        return True
    sport, dport = _U16(b, off)[0], _U16(b, off + 2)[0]
    out.append(f"SPT={sport} DPT={dport} LEN={_U16(b, off + 4)[0]} ")
    return False


def _dump_ipv4(out: list[str], b: bytes, ioff: int, flags: int, mark: int,
               uid_gid: tuple[int, int] | None) -> None:
    """``dump_ipv4_packet`` for the header at ``ioff`` (0: the packet; else the quoted one)."""
    n = len(b)
    if ioff + 20 > n:
        out.append("TRUNCATED")
        return
    vihl, tos, totlen, ipid, frag, ttl, proto, _csum, src, dst = _IP4(b, ioff)
    ihl = (vihl & 15) * 4
    out.append(f"SRC={_ip4(src)} DST={_ip4(dst)} ")
    out.append(f"LEN={totlen} TOS=0x{tos & 0x1E:02X} PREC=0x{tos & 0xE0:02X} TTL={ttl} "
               f"ID={ipid} ")
    if frag & 0x8000:
        out.append("CE ")
    if frag & 0x4000:
        out.append("DF ")
    if frag & 0x2000:
        out.append("MF ")
    fragoff = frag & 0x1FFF
    if fragoff:
        out.append(f"FRAG:{fragoff} ")
    if flags & XT_LOG_IPOPT and ihl > 20:
        if ioff + ihl > n:
            out.append("TRUNCATED")
            return
        out.append(f"OPT ({b[ioff + 20:ioff + ihl].hex().upper()}) ")
    l4 = ioff + ihl
    if proto == 6:
        if _tcp(out, b, fragoff != 0, l4, flags):
            return
    elif proto == 17 or proto == 136:
        if _udp(out, b, proto, fragoff != 0, l4):
            return
    elif proto == 1:
        out.append("PROTO=ICMP ")
        if not fragoff:
            _icmp(out, b, ioff, l4, flags)
    elif proto == 51:
        if not fragoff:                             # a fragment prints nothing at all
            out.append("PROTO=AH ")
            if l4 + 12 > n:                         # sizeof(struct ip_auth_hdr)
                out.append(f"INCOMPLETE [{_u32(n - l4)} bytes] ")
            else:
                out.append(f"SPI=0x{_U32(b, l4 + 4)[0]:x} ")
    elif proto == 50:
        out.append("PROTO=ESP ")
        if not fragoff:
            if l4 + 8 > n:                          # sizeof(struct ip_esp_hdr)
                out.append(f"INCOMPLETE [{_u32(n - l4)} bytes] ")
            else:
                out.append(f"SPI=0x{_U32(b, l4)[0]:x} ")
    else:
        out.append(f"PROTO={proto} ")
    if ioff == 0:
        if flags & XT_LOG_UID and uid_gid is not None:
            out.append(f"UID={uid_gid[0]} GID={uid_gid[1]} ")
        if mark:
            out.append(f"MARK=0x{mark:x} ")


def _icmp(out: list[str], b: bytes, ioff: int, l4: int, flags: int) -> None:
    """The ICMP case of ``dump_ipv4_packet`` (after ``PROTO=ICMP``)."""
    n = len(b)
    if l4 + 8 > n:
        out.append(f"INCOMPLETE [{_u32(n - l4)} bytes] ")
        return
    t, code = b[l4], b[l4 + 1]
    out.append(f"TYPE={t} CODE={code} ")
    need = _ICMP_REQUIRED.get(t, 0) if t <= _NR_ICMP_TYPES else 0
    if need and _u32(n - l4) < need:
        out.append(f"INCOMPLETE [{_u32(n - l4)} bytes] ")
        return
    if t == 0 or t == 8:
        out.append(f"ID={_U16(b, l4 + 4)[0]} SEQ={_U16(b, l4 + 6)[0]} ")
    elif t == 12:
        out.append(f"PARAMETER={b[l4 + 4]} ")
    elif t in (3, 4, 5, 11):
        if t == 5:
            out.append(f"GATEWAY={_ip4(b[l4 + 4:l4 + 8])} ")
        if ioff == 0:                               # only recurse once
            out.append("[")
            _dump_ipv4(out, b, l4 + 8, flags, 0, None)
            out.append("] ")
        if t == 3 and code == 4:                    # ICMP_FRAG_NEEDED
            out.append(f"MTU={_U16(b, l4 + 6)[0]} ")


def _dump_ipv6(out: list[str], b: bytes, ioff: int, flags: int, recurse: bool, mark: int,
               uid_gid: tuple[int, int] | None) -> None:
    """``dump_ipv6_packet`` for the header at ``ioff``."""
    n = len(b)
    if ioff + 40 > n:
        out.append("TRUNCATED")
        return
    word = _U32(b, ioff)[0]
    out.append(f"SRC={format_ipv6(b[ioff + 8:ioff + 24])} "
               f"DST={format_ipv6(b[ioff + 24:ioff + 40])} ")
    out.append(f"LEN={_U16(b, ioff + 4)[0] + 40} TC={(word & 0x0FF00000) >> 20} "
               f"HOPLIMIT={b[ioff + 7]} FLOWLBL={word & 0xFFFFF} ")
    ipopt = flags & XT_LOG_IPOPT
    fragment = False
    ptr = ioff + 40
    cur = b[ioff + 6]
    while cur != 59 and cur in _IP6_EXT:
        if ptr + 2 > n:
            out.append("TRUNCATED")
            return
        if ipopt:
            out.append("OPT ( ")
        if cur == 44:
            out.append("FRAG:")
            if ptr + 8 > n:
                out.append("TRUNCATED ")
                return
            fo = _U16(b, ptr + 2)[0]
            out.append(f"{fo & 0xFFF8} ")
            if fo & 1:
                out.append("INCOMPLETE ")
            out.append(f"ID:{_U32(b, ptr + 4)[0]:08x} ")
            if fo & 0xFFF8:
                fragment = True
            hdrlen = 8
        elif cur in (0, 43, 60):
            if fragment:
                if ipopt:
                    out.append(")")
                return
            hdrlen = (b[ptr + 1] + 1) * 8
        elif cur == 51:
            if ipopt:
                out.append("AH ")
                if fragment:
                    out.append(")")
                    return
                if ptr + 12 > n:
                    out.append(f"INCOMPLETE [{_u32(n - ptr)} bytes] )")
                    return
                out.append(f"SPI=0x{_U32(b, ptr + 4)[0]:x} ")
            hdrlen = (b[ptr + 1] + 2) * 4
        else:                                       # 50, ESP: nothing readable after it
            if ipopt:
                out.append("ESP ")
                if fragment:
                    out.append(")")
                    return
                if ptr + 8 > n:
                    out.append(f"INCOMPLETE [{_u32(n - ptr)} bytes] )")
                    return
                out.append(f"SPI=0x{_U32(b, ptr)[0]:x} )")
            return
        if ipopt:
            out.append(") ")
        cur = b[ptr]
        ptr += hdrlen
    if cur == 6:
        if _tcp(out, b, fragment, ptr, flags):
            return
    elif cur == 17 or cur == 136:
        if _udp(out, b, cur, fragment, ptr):
            return
    elif cur == 58:
        out.append("PROTO=ICMPv6 ")
        if not fragment:
            if ptr + 8 > n:
                out.append(f"INCOMPLETE [{_u32(n - ptr)} bytes] ")
                return
            t, code = b[ptr], b[ptr + 1]
            out.append(f"TYPE={t} CODE={code} ")
            if t == 128 or t == 129:
                out.append(f"ID={_U16(b, ptr + 4)[0]} SEQ={_U16(b, ptr + 6)[0]} ")
            elif t in (1, 2, 3, 4):
                if t == 4:
                    out.append(f"POINTER={_U32(b, ptr + 4)[0]:08x} ")
                if recurse:
                    out.append("[")
                    _dump_ipv6(out, b, ptr + 8, flags, False, 0, None)
                    out.append("] ")
                if t == 2:
                    out.append(f"MTU={_U32(b, ptr + 4)[0]} ")
    else:
        out.append(f"PROTO={cur} ")
    if recurse:
        if flags & XT_LOG_UID and uid_gid is not None:
            out.append(f"UID={uid_gid[0]} GID={uid_gid[1]} ")
        if mark:
            out.append(f"MARK=0x{mark:x} ")


def _mac_header(out: list[str], mac: bytes | None, flags: int,
                vlan: tuple[int, int] | None) -> None:
    """``dump_mac_header`` (only called when there is an input device)."""
    if flags & XT_LOG_MACDECODE and mac is not None and len(mac) >= 14:
        out.append(f"MACSRC={_mac(mac[6:12])} MACDST={_mac(mac[0:6])} ")
        if vlan is not None:
            out.append(f"VPROTO={vlan[0]:04x} VID={vlan[1]} ")
        out.append(f"MACPROTO={_U16(mac, 12)[0]:04x} ")
        return
    out.append("MAC=")
    if mac:
        out.append(_mac(mac))
    out.append(" ")


class LogRecord:
    """One LOG message: the printk ``level`` and the ``text`` dmesg shows after the
    timestamp (no newline)."""

    __slots__ = ("level", "text")

    def __init__(self, level: int, text: str) -> None:
        self.level = level
        self.text = text

    def kmsg(self) -> str:
        """The line as ``dmesg -r`` prints it, minus the timestamp: ``<level>text``."""
        return f"<{self.level}>{self.text}"

    def __repr__(self) -> str:
        return f"LogRecord({self.level}, {self.text!r})"


def log_record(prefix: str, pkt: Packet, in_iface: str | None, out_iface: str | None,
               mac: bytes | None = None, flags: int = 0, level: int = 4, *,
               uid_gid: tuple[int, int] | None = None,
               vlan: tuple[int, int] | None = None) -> LogRecord:
    """The LOG target's message for ``pkt`` (see ``log_line``); ``level`` is the rule's
    ``--log-level`` (iptables' default 4, warning), 0-7."""
    if not 0 <= level <= 7:
        raise ValueError(f"log level {level} is not 0-7")
    out: list[str] = [prefix[:_PREFIX_MAX], f"IN={in_iface or ''} OUT={out_iface or ''} "]
    if in_iface is not None:
        _mac_header(out, mac, flags, vlan)
    buf = pkt.buf
    if buf and buf[0] >> 4 == 6:
        _dump_ipv6(out, buf, 0, flags, True, pkt.mark, uid_gid)
    else:
        _dump_ipv4(out, buf, 0, flags, pkt.mark, uid_gid)
    text = "".join(out)
    if len(text.encode("utf-8", "surrogateescape")) + 2 > _NLEN:
        text = text.encode("utf-8", "surrogateescape")[:_NLEN - 2].decode(
            "utf-8", "surrogateescape")
    return LogRecord(level, text)


def log_line(prefix: str, pkt: Packet, in_iface: str | None, out_iface: str | None,
             mac: bytes | None = None, flags: int = 0, *,
             uid_gid: tuple[int, int] | None = None,
             vlan: tuple[int, int] | None = None) -> str:
    """The text ``-j LOG --log-prefix prefix`` writes for ``pkt`` (what dmesg shows after
    the timestamp; it ends with a space in all but a few truncated forms).

    ``pkt``: the datagram as the hook sees it (``pkt.buf`` from the IP header; at FORWARD
    the TTL is already decremented) and ``pkt.mark`` (the skb mark, printed when non-zero).
    ``in_iface`` / ``out_iface``: device names or None (``IN=`` is empty for OUTPUT and
    POSTROUTING, ``OUT=`` for PREROUTING and INPUT); the MAC field is printed only when
    there is an input device. ``mac``: the link-layer header in front of the IP header
    (the 14-byte Ethernet header: destination, source, EtherType), None for a device
    without one (``MAC= ``). ``flags``: XT_LOG_* bits. ``uid_gid``: the (fsuid, fsgid) of
    the socket that sent a locally generated packet, for ``--log-uid``. ``vlan``: an
    offloaded VLAN tag (protocol, VID), shown with ``--log-macdecode``.
    """
    return log_record(prefix, pkt, in_iface, out_iface, mac, flags, uid_gid=uid_gid,
                      vlan=vlan).text
