"""The decoded packet: one short-lived slotted object per packet (the skb of statewall).

Owns: the fields the tracker and the rule engine read from a packet, and the per-packet
conntrack attachment (``ct``, ``ctinfo``, ``reason``) the way the kernel hangs ``_nfct`` on
an skb. Must not know: conntrack logic, capture formats, rules.

``buf`` always starts at the network header (IPv4/IPv6) and ends at the end of the datagram
(link padding trimmed), so ``len(buf)`` is what the kernel accounts as ``skb->len`` at
PREROUTING. L4 offsets are into ``buf``.
"""

from __future__ import annotations

from typing import Any, Final

# l3num values as the kernel prints them in /proc/net/nf_conntrack (AF_INET, AF_INET6)
AF_INET: Final = 2
AF_INET6: Final = 10

# IP protocol numbers used across the code
IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_GRE: Final = 47
IPPROTO_ICMPV6: Final = 58
IPPROTO_SCTP: Final = 132
IPPROTO_UDPLITE: Final = 136

# TCP flag bits (byte 13 of the header)
TH_FIN: Final = 0x01
TH_SYN: Final = 0x02
TH_RST: Final = 0x04
TH_PUSH: Final = 0x08
TH_ACK: Final = 0x10
TH_URG: Final = 0x20
TH_ECE: Final = 0x40
TH_CWR: Final = 0x80


class ParseError(Exception):
    """A packet that cannot be decoded. ``reason`` is the user-facing explanation.

    Raised by the decoders for damage at the network layer (the kernel's ``ip_rcv`` /
    ``ipv6_rcv`` would drop such a packet before netfilter sees it). Damage at the transport
    layer never raises: it is recorded in ``Packet.l4err`` and the protocol tracker turns it
    into INVALID, as ``nf_conntrack_in`` does.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Packet:
    """One IPv4/IPv6 datagram with the fields tracking needs decoded once.

    Network layer (always set by the decoder):
      buf, l3num (AF_INET/AF_INET6), src, dst (4 or 16 bytes), proto (final L4 protocol after
      IPv6 extension headers), l4off (offset of the L4 header in buf; == len(buf) when none),
      ttl (TTL / hop limit), ipid (IPv4 identification; IPv6 fragment identification or 0),
      fragoff (fragment offset in bytes, 0 if none), mf (more-fragments flag),
      frag_hdr_off (IPv6: offset of the fragment extension header, -1 if none; IPv4: -1),
      tos (IPv4 TOS / IPv6 traffic class).
    Transport layer (set by the decoder when the header is present and complete; only for the
    first fragment or an unfragmented datagram):
      sport, dport: TCP/UDP/UDP-Lite/SCTP/DCCP ports; ICMP/ICMPv6: sport = identifier (bytes
        4-5 of the header, for every type, as the kernel does), dport = type << 8 | code.
      TCP: seq, ack, flags (byte 13), win (raw, unscaled), doff (header length in bytes);
      tcp_optoff/tcp_optlen: the options area in buf (parse with packet.tcpopt when needed).
      icmp_type, icmp_code: ICMP/ICMPv6.
      l4len: bytes from l4off to the end of buf.
      payload_off: start of the L4 payload in buf (TCP: l4off + doff; UDP: l4off + 8).
      l4err: None, or the reason the L4 header is unusable ("truncated tcp header", ...).
    Metadata (set by the caller, not the decoder): iface (input interface name or None),
      oiface (output interface), mark, ts.
    Conntrack attachment (set by the tracker): ct, ctinfo, reason (why INVALID/DROP),
      untracked (True for NOTRACK / untracked ICMPv6 types).
    """

    __slots__ = (
        "buf", "l3num", "src", "dst", "proto", "l4off", "ttl", "ipid", "fragoff", "mf",
        "frag_hdr_off", "tos",
        "sport", "dport", "seq", "ack", "flags", "win", "doff", "tcp_optoff", "tcp_optlen",
        "icmp_type", "icmp_code", "l4len", "payload_off", "l4err",
        "iface", "oiface", "mark", "ts",
        "ct", "ctinfo", "reason", "untracked",
    )

    buf: bytes
    l3num: int
    src: bytes
    dst: bytes
    proto: int
    l4off: int
    ttl: int
    ipid: int
    fragoff: int
    mf: bool
    frag_hdr_off: int
    tos: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    win: int
    doff: int
    tcp_optoff: int
    tcp_optlen: int
    icmp_type: int
    icmp_code: int
    l4len: int
    payload_off: int
    l4err: str | None
    iface: str | None
    oiface: str | None
    mark: int
    ts: float
    ct: Any
    ctinfo: int
    reason: str | None
    untracked: bool

    def __init__(self, buf: bytes, l3num: int, src: bytes, dst: bytes, proto: int,
                 l4off: int) -> None:
        self.buf = buf
        self.l3num = l3num
        self.src = src
        self.dst = dst
        self.proto = proto
        self.l4off = l4off
        self.ttl = 64
        self.ipid = 0
        self.fragoff = 0
        self.mf = False
        self.frag_hdr_off = -1
        self.tos = 0
        self.sport = 0
        self.dport = 0
        self.seq = 0
        self.ack = 0
        self.flags = 0
        self.win = 0
        self.doff = 0
        self.tcp_optoff = 0
        self.tcp_optlen = 0
        self.icmp_type = 0
        self.icmp_code = 0
        self.l4len = len(buf) - l4off
        self.payload_off = len(buf)
        self.l4err = None
        self.iface = None
        self.oiface = None
        self.mark = 0
        self.ts = 0.0
        self.ct = None
        self.ctinfo = 0
        self.reason = None
        self.untracked = False

    @property
    def is_fragment(self) -> bool:
        return self.fragoff != 0 or self.mf

    @property
    def payload_len(self) -> int:
        return len(self.buf) - self.payload_off

    def __repr__(self) -> str:
        return (f"Packet(l3num={self.l3num}, proto={self.proto}, src={self.src.hex()}, "
                f"dst={self.dst.hex()}, sport={self.sport}, dport={self.dport}, "
                f"len={len(self.buf)})")
