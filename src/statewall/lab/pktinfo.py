"""Just enough packet decoding for the lab to label and match what it recorded.

Owns: pulling addresses, protocol, ports / ICMP type-code-id, TCP flags, IPv4/IPv6
fragment fields and the embedded packet of an ICMP error out of raw IPv4/IPv6 bytes;
a one-line summary; the "same packet after forwarding" key (TTL/hop limit and the IPv4
header checksum masked); and matching a packet against ``conntrack -L`` / ``/proc`` lines.
Must not know: conntrack semantics beyond the printed tuple, namespaces, scenarios.
This is deliberately independent of ``statewall.packet`` so that the recordings the
tracker is judged against do not depend on the tracker's own decoder.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

PROTO_NAMES: Final = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp",
                      136: "udplite", 47: "gre"}
_ICMP_ERRORS_V4: Final = frozenset({3, 4, 5, 11, 12})
_ICMP_ERRORS_V6: Final = frozenset({1, 2, 3, 4})
_V6_EXT: Final = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_TCP_FLAGS: Final = "FSRPAUEC"


@dataclass(frozen=True, slots=True)
class PacketInfo:
    version: int
    src: str
    dst: str
    proto: int  # L4 protocol after IPv6 extension headers (44 only if unparsable)
    length: int  # L3 length
    frag_id: int | None = None  # set only for fragments
    frag_offset: int = 0  # bytes
    frag_more: bool = False
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    tcp_flags: str = ""
    seq: int | None = None
    ack: int | None = None
    payload_len: int = 0
    inner: PacketInfo | None = None  # packet quoted by an ICMP error

    @property
    def is_fragment(self) -> bool:
        return self.frag_id is not None

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def summary(self) -> str:
        v = "IPv4" if self.version == 4 else "IPv6"
        if self.sport is not None:
            s = f"{v} {self.proto_name} {_hp(self.src, self.sport)} > {_hp(self.dst, self.dport)}"
        else:
            s = f"{v} {self.proto_name} {self.src} > {self.dst}"
        if self.tcp_flags or self.proto == 6 and self.seq is not None:
            s += f" [{self.tcp_flags or '.'}] seq={self.seq} ack={self.ack}"
        if self.icmp_type is not None:
            s += f" type={self.icmp_type} code={self.icmp_code}"
            if self.icmp_id is not None:
                s += f" id={self.icmp_id}"
        if self.inner is not None:
            s += f" (about: {self.inner.summary()})"
        elif self.proto in (6, 17):
            s += f" len={self.payload_len}"
        if self.is_fragment:
            s += f" frag id={self.frag_id} off={self.frag_offset}{' MF' if self.frag_more else ''}"
        return s


def _hp(addr: str, port: int | None) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def parse(buf: bytes, *, _depth: int = 0) -> PacketInfo | None:
    """Decode an IPv4/IPv6 packet (may be truncated, as inside ICMP errors)."""
    if len(buf) < 1:
        return None
    version = buf[0] >> 4
    if version == 4 and len(buf) >= 20:
        ihl = (buf[0] & 0x0F) * 4
        total = int.from_bytes(buf[2:4], "big")
        ff = int.from_bytes(buf[6:8], "big")
        off, more = (ff & 0x1FFF) * 8, bool(ff & 0x2000)
        src = str(ipaddress.IPv4Address(buf[12:16]))
        dst = str(ipaddress.IPv4Address(buf[16:20]))
        proto = buf[9]
        fid = int.from_bytes(buf[4:6], "big") if (off or more) else None
        l4 = buf[ihl:total] if off == 0 else b""
        return _l4(4, src, dst, proto, total, fid, off, more, l4, _depth)
    if version == 6 and len(buf) >= 40:
        total = 40 + int.from_bytes(buf[4:6], "big")
        src = str(ipaddress.IPv6Address(buf[8:24]))
        dst = str(ipaddress.IPv6Address(buf[24:40]))
        nh, pos = buf[6], 40
        frag: int | None = None
        foff, more = 0, False
        while True:
            if nh in _V6_EXT and pos + 2 <= len(buf):
                nh, pos = buf[pos], pos + (buf[pos + 1] + 1) * 8
            elif nh == 44 and pos + 8 <= len(buf):
                fo = int.from_bytes(buf[pos + 2:pos + 4], "big")
                foff, more = fo & 0xFFF8, bool(fo & 1)
                frag = int.from_bytes(buf[pos + 4:pos + 8], "big")
                nh, pos = buf[pos], pos + 8
            else:
                break
        l4 = buf[pos:total] if foff == 0 else b""
        return _l4(6, src, dst, nh, total, frag, foff, more, l4, _depth)
    return None


def _l4(version: int, src: str, dst: str, proto: int, length: int, frag: int | None,
        foff: int, more: bool, l4: bytes, depth: int) -> PacketInfo:
    kw: dict[str, object] = {}
    if proto in (6, 17, 136, 132) and len(l4) >= 4:
        kw["sport"] = int.from_bytes(l4[0:2], "big")
        kw["dport"] = int.from_bytes(l4[2:4], "big")
        if proto == 17:
            kw["payload_len"] = max(0, len(l4) - 8)
    if proto == 6 and len(l4) >= 14:
        kw["seq"] = int.from_bytes(l4[4:8], "big")
        kw["ack"] = int.from_bytes(l4[8:12], "big")
        flags = l4[13]
        kw["tcp_flags"] = "".join(c for i, c in enumerate(_TCP_FLAGS) if flags & (1 << i))
        kw["payload_len"] = max(0, len(l4) - (l4[12] >> 4) * 4)
    if proto in (1, 58) and len(l4) >= 4:
        t, c = l4[0], l4[1]
        kw["icmp_type"], kw["icmp_code"] = t, c
        errors = _ICMP_ERRORS_V4 if proto == 1 else _ICMP_ERRORS_V6
        if t in errors:
            if depth == 0 and len(l4) > 8:
                kw["inner"] = parse(l4[8:], _depth=1)
        elif len(l4) >= 6:
            kw["icmp_id"] = int.from_bytes(l4[4:6], "big")
    return PacketInfo(version, src, dst, proto, length, frag, foff, more, **kw)  # type: ignore[arg-type]


def forward_key(l3: bytes) -> bytes:
    """The packet with the fields forwarding changes masked: TTL/hop limit, IPv4 checksum."""
    b = bytearray(l3)
    if b and b[0] >> 4 == 4 and len(b) >= 20:
        b[8] = 0
        b[10:12] = b"\0\0"
    elif b and b[0] >> 4 == 6 and len(b) >= 40:
        b[7] = 0
    return bytes(b)


# ---------------------------------------------------------------------------------------
# conntrack -L / /proc/net/nf_conntrack lines
_TUPLE_KEYS: Final = ("src", "dst", "sport", "dport", "type", "code", "id")


def line_tuples(line: str) -> tuple[int | None, dict[str, str], dict[str, str]]:
    """(l4 protocol number, original tuple, reply tuple) of one listing line.

    Works for ``conntrack -L``, ``conntrack -E`` and ``/proc/net/nf_conntrack`` lines;
    addresses are normalised (``/proc`` prints IPv6 uncompressed).
    """
    toks = line.split()
    proto: int | None = None
    for i, t in enumerate(toks[:-1]):
        if t in PROTO_NAMES.values() or t == "unknown":
            if toks[i + 1].isdigit():
                proto = int(toks[i + 1])
                break
    orig: dict[str, str] = {}
    reply: dict[str, str] = {}
    for t in toks:
        k, sep, v = t.partition("=")
        if not sep or k not in _TUPLE_KEYS:
            continue
        if k in ("src", "dst"):
            try:
                v = str(ipaddress.ip_address(v))
            except ValueError:
                pass
        cur = orig if (k not in orig and not reply) else reply
        if k in cur:  # second src= starts the reply tuple
            cur = reply
        cur[k] = v
    return proto, orig, reply


def packet_tuple(info: PacketInfo) -> tuple[int, dict[str, str]]:
    """The tuple conntrack would look this packet up with (ICMP errors: the quoted one)."""
    p = info.inner if info.inner is not None else info
    t: dict[str, str] = {"src": p.src, "dst": p.dst}
    if p.sport is not None and p.dport is not None:
        t["sport"], t["dport"] = str(p.sport), str(p.dport)
    if p.icmp_type is not None and p.icmp_id is not None:
        t["type"], t["code"], t["id"] = str(p.icmp_type), str(p.icmp_code), str(p.icmp_id)
    return p.proto, t


def find_entry(info: PacketInfo, lines: list[str]) -> str | None:
    """The listing line whose original or reply tuple is this packet's tuple."""
    proto, want = packet_tuple(info)
    for line in lines:
        lp, orig, reply = line_tuples(line)
        if lp != proto:
            continue
        for tup in (orig, reply):
            if all(tup.get(k) == v for k, v in want.items()):
                return line
    return None
