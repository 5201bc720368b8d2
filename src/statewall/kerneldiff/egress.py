"""What leaves fw, kernel against statewall: the packets, header by header.

Owns: replaying a recording's capture through statewall with output on (what ``statewall
replay --write`` writes: every packet the firewall emits, as it leaves), reading the
kernel's ``egress.pcapng`` (``statewall.lab.egress``), and comparing the two streams in
order, field by field: IPv4/IPv6 header (every field, checksum included), TCP/UDP/ICMP
header fields and checksums, payload, and for ICMP errors the quoted packet's headers.
Must not know: how recordings are made, report layout.

What cannot be identical is compared for what it must be instead:
- a port or ICMP id the kernel chose at random (a NAT port search): statewall's choice must
  be in the same place of the stream consistently (one kernel value always corresponds to
  one statewall value, per protocol and address) - ``PortMap`` - and the checksums that
  cover it must be correct rather than equal;
- the IPv6 identification of a datagram re-fragmented on output (the kernel picks it with
  ``ipv6_select_ident``), and the IPv4 identification of an ICMP error fw itself sends
  (``icmp_send`` -> ``ip_select_ident``, a keyed hash): then the header checksum must be
  correct rather than equal;
- fw's own IPv6 neighbour discovery / MLD traffic is not part of the comparison.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from ..firewall import Emitted
from ..io.capture import Frame
from ..packet.checksum import inet_checksum, l4_checksum_ok
from ..packet.decode import decode_ip
from ..packet.link import l3_offset
from ..packet.packet import ParseError
from . import model

EPB_OUTBOUND: Final = 2
_ND_TYPES: Final = frozenset((133, 134, 135, 136, 137, 143, 130, 131, 132))


@dataclass
class Emit:
    """One packet on its way out: after which captured packet (``n``), interface, bytes."""

    n: int
    iface: str | None
    data: bytes
    generated: bool = False       # statewall: a packet fw made itself (REJECT's answer)


def statewall_egress(k: Mapping[str, Any], frames: Iterable[Frame]) -> list[Emit]:
    """Replay the recording's capture through statewall; every emitted packet in order."""
    settings = model.settings_from(k.get("sysctls", {}))
    r4, r6 = model.rules_text(k.get("rules_input"))
    host = model.host_from(k.get("topology", {}))
    fw = model.build_firewall(settings, r4, r6, host,
                              ipsets=model.ipsets_text(k.get("rules_input")))
    fw.want_output = True
    kpk = {p["n"]: p for p in k.get("packets", [])}
    out: list[Emit] = []
    for n, frame in enumerate(frames, 1):
        kp = kpk.get(n, {})
        outbound = (frame.flags & 3) == EPB_OUTBOUND
        hook_name = kp.get("hook") or ("OUTPUT" if outbound else "PREROUTING")
        try:
            off = l3_offset(frame.linktype, frame.data)[0]
            pkt = decode_ip(frame.data[off:])
        except ParseError:
            continue
        if hook_name == "OUTPUT":
            pkt.iface = None
            hook = NF_INET_LOCAL_OUT
        else:
            pkt.iface = frame.iface_name
            hook = NF_INET_PRE_ROUTING
        pkt.ts = frame.ts
        fw.expire(frame.ts)
        d = fw.process(pkt, frame.ts, hook)
        for e in d.emitted:
            if isinstance(e, Emitted) and e.decision is not None:
                out += [Emit(n, dev, data, True) for dev, data in e.decision.out]
        out += [Emit(n, dev, data) for dev, data in d.out]
    return out


def kernel_egress(rows: Iterable[tuple[str, int, bytes]]) -> list[Emit]:
    """``lab.egress.read`` rows as ``Emit``s (``n`` unknown: 0)."""
    return [Emit(0, iface, l3) for iface, _ts, l3 in rows if l3]


def is_own_nd(data: bytes) -> bool:
    """fw's own IPv6 neighbour discovery / MLD (not forwarded traffic)."""
    if len(data) < 41 or data[0] >> 4 != 6:
        return False
    return data[6] in (58, 0) and (data[24] == 0xFF or data[40] in _ND_TYPES)


# -- fields ------------------------------------------------------------------------------
def _ip_fields(b: bytes, off: int = 0) -> tuple[list[tuple[str, Any]], int, int]:
    """(fields, protocol, transport offset) of the IP header at ``off``."""
    if b[off] >> 4 == 4:
        ihl = (b[off] & 15) * 4
        f = [("version", 4), ("ihl", ihl), ("tos", b[off + 1]),
             ("total length", int.from_bytes(b[off + 2:off + 4], "big")),
             ("id", int.from_bytes(b[off + 4:off + 6], "big")),
             ("flags/fragment", int.from_bytes(b[off + 6:off + 8], "big")),
             ("ttl", b[off + 8]), ("protocol", b[off + 9]),
             ("header checksum", int.from_bytes(b[off + 10:off + 12], "big")),
             ("src", str(ipaddress.IPv4Address(b[off + 12:off + 16]))),
             ("dst", str(ipaddress.IPv4Address(b[off + 16:off + 20]))),
             ("options", b[off + 20:off + ihl].hex())]
        return f, b[off + 9], off + ihl
    f = [("version", 6), ("traffic class/flow label",
                          int.from_bytes(b[off:off + 4], "big") & 0x0FFFFFFF),
         ("payload length", int.from_bytes(b[off + 4:off + 6], "big")),
         ("next header", b[off + 6]), ("hop limit", b[off + 7]),
         ("src", str(ipaddress.IPv6Address(b[off + 8:off + 24]))),
         ("dst", str(ipaddress.IPv6Address(b[off + 24:off + 40])))]
    nh = b[off + 6]
    p = off + 40
    while nh in (0, 43, 60, 44) and p + 8 <= len(b):
        if nh == 44:
            f.append(("fragment", b[p + 2:p + 4].hex()))
            f.append(("fragment id", int.from_bytes(b[p + 4:p + 8], "big")))
            nh = b[p]
            p += 8
            if int.from_bytes(b[p - 6:p - 4], "big") & ~7:
                return f, -1, p             # a later fragment: no transport header
            continue
        nh, p = b[p], p + (b[p + 1] + 1) * 8
    return f, nh, p


def _l4_fields(b: bytes, proto: int, off: int, quoted: bool) -> list[tuple[str, Any]]:
    f: list[tuple[str, Any]] = []
    if proto == 6 and len(b) >= off + 8:
        f += [("sport", int.from_bytes(b[off:off + 2], "big")),
              ("dport", int.from_bytes(b[off + 2:off + 4], "big")),
              ("seq", int.from_bytes(b[off + 4:off + 8], "big"))]
        if len(b) >= off + 20:
            doff = (b[off + 12] >> 4) * 4
            f += [("ack", int.from_bytes(b[off + 8:off + 12], "big")),
                  ("data offset", doff), ("tcp flags", b[off + 13]),
                  ("window", int.from_bytes(b[off + 14:off + 16], "big")),
                  ("tcp checksum", int.from_bytes(b[off + 16:off + 18], "big")),
                  ("urgent", int.from_bytes(b[off + 18:off + 20], "big")),
                  ("tcp options", b[off + 20:off + doff].hex()),
                  ("payload", b[off + doff:].hex() if not quoted else b[off + doff:].hex())]
    elif proto in (17, 136) and len(b) >= off + 8:
        f += [("sport", int.from_bytes(b[off:off + 2], "big")),
              ("dport", int.from_bytes(b[off + 2:off + 4], "big")),
              ("udp length", int.from_bytes(b[off + 4:off + 6], "big")),
              ("udp checksum", int.from_bytes(b[off + 6:off + 8], "big")),
              ("payload", b[off + 8:].hex())]
    elif proto in (1, 58) and len(b) >= off + 8:
        f += [("icmp type", b[off]), ("icmp code", b[off + 1]),
              ("icmp checksum", int.from_bytes(b[off + 2:off + 4], "big"))]
        error = (b[off] < 128) if proto == 58 else b[off] in (3, 4, 5, 11, 12)
        if error and len(b) >= off + 8 + 20:
            f.append(("icmp rest", b[off + 4:off + 8].hex()))
            inner, iproto, ioff = _ip_fields(b, off + 8)
            f += [("quoted " + n, v) for n, v in inner]
            f += [("quoted " + n, v) for n, v in _l4_fields(b, iproto, ioff, True)]
        else:
            f += [("icmp id", int.from_bytes(b[off + 4:off + 6], "big")),
                  ("icmp rest", b[off + 6:].hex())]
    else:
        f.append(("data", b[off:].hex()))
    return f


def fields(data: bytes) -> list[tuple[str, Any]]:
    """Every header field of a packet (and of the packet an ICMP error quotes)."""
    f, proto, off = _ip_fields(data)
    if proto >= 0:
        f += _l4_fields(data, proto, off, False)
    return f


def checksums_ok(data: bytes) -> list[str]:
    """The checksums of a packet that do not verify."""
    bad: list[str] = []
    try:
        p = decode_ip(data)
    except ParseError as e:
        return [f"undecodable: {e.reason}"]
    if p.l3num == 2 and inet_checksum(data, 0, (data[0] & 15) * 4) != 0:
        bad.append("IPv4 header checksum")
    if p.fragoff or p.mf or p.l4err is not None:
        return bad
    if p.proto == 6 and not l4_checksum_ok(data, p.l4off, p.src, p.dst, 6):
        bad.append("TCP checksum")
    elif p.proto == 17 and data[p.l4off + 6:p.l4off + 8] != b"\0\0" \
            and not l4_checksum_ok(data, p.l4off, p.src, p.dst, 17):
        bad.append("UDP checksum")
    elif p.proto == 1 and not l4_checksum_ok(data, p.l4off, p.src, p.dst, -1):
        bad.append("ICMP checksum")
    elif p.proto == 58 and not l4_checksum_ok(data, p.l4off, p.src, p.dst, 58):
        bad.append("ICMPv6 checksum")
    return bad


# -- the comparison ----------------------------------------------------------------------
@dataclass
class PortMap:
    """Ports / ICMP ids the kernel chose at random, consistently mapped to statewall's:
    (protocol, address, kernel value) -> statewall value, and back."""

    fwd: dict[tuple[int, str, int], int] = field(default_factory=dict)
    back: dict[tuple[int, str, int], int] = field(default_factory=dict)

    def same(self, proto: int, addr: str, kv: int, sv: int) -> bool:
        if kv == sv and (proto, addr, kv) not in self.fwd:
            return True
        got = self.fwd.get((proto, addr, kv))
        if got is None and (proto, addr, sv) not in self.back:
            self.fwd[(proto, addr, kv)] = sv
            self.back[(proto, addr, sv)] = kv
            return True
        return got == sv


# fields that follow from a mapped port (recomputed, so compared for correctness instead)
_DEPENDENT: Final = frozenset(("tcp checksum", "udp checksum", "icmp checksum",
                               "quoted tcp checksum", "quoted udp checksum",
                               "quoted header checksum", "quoted icmp checksum"))


@dataclass
class EgressComparison:
    compared: int = 0
    diffs: list[str] = field(default_factory=list)
    mapped: dict[tuple[int, str, int], int] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return not self.diffs


def compare_egress(ours: list[Emit], kernel: list[Emit], random_ports: bool = True,
                   random_v6_frag_id: bool = True) -> EgressComparison:
    """Both streams in order (fw's own ND/MLD left out), header by header."""
    a = [e for e in ours if not is_own_nd(e.data)]
    b = [e for e in kernel if not is_own_nd(e.data)]
    res = EgressComparison()
    pm = PortMap()
    if len(a) != len(b):
        res.diffs.append(f"statewall emitted {len(a)} packets, the kernel {len(b)}")
    for i, (s, k) in enumerate(zip(a, b), 1):
        res.compared += 1
        where = f"emitted packet {i} (after captured packet {s.n})"
        if s.iface != k.iface:
            res.diffs.append(f"{where}: interface statewall {s.iface}, kernel {k.iface}")
        sf, kf = fields(s.data), fields(k.data)
        sd, kd = dict(sf), dict(kf)
        proto = kd.get("protocol", kd.get("next header", -1))
        mapped = False
        for name, kv in kf:
            sv = sd.get(name, "<missing>")
            if sv == kv:
                continue
            if random_ports and name in ("sport", "dport", "icmp id", "quoted sport",
                                         "quoted dport", "quoted icmp id"):
                if name.startswith("quoted"):
                    addr = kd.get("quoted src" if name.endswith("sport") else "quoted dst", "")
                else:
                    addr = kd.get("src" if name in ("sport", "icmp id") else "dst", "")
                if isinstance(sv, int) and pm.same(int(proto), str(addr), int(kv), sv):
                    mapped = True
                    continue
            if random_v6_frag_id and name == "fragment id":
                continue
            if s.generated and proto == 1 and name in ("id", "header checksum"):
                continue                     # ip_select_ident: checked for correctness

            if name in _DEPENDENT:
                continue                     # checked for correctness below
            res.diffs.append(f"{where}: {name}: statewall {sv}, kernel {kv}")
        extra = [n for n, _ in sf if n not in kd]
        if extra:
            res.diffs.append(f"{where}: statewall has fields the kernel's lacks: {extra}")
        dependent = [n for n, kv in kf if n in _DEPENDENT and sd.get(n) != kv]
        if dependent and not mapped:
            for n in dependent:
                res.diffs.append(f"{where}: {n}: statewall {sd.get(n)}, kernel {kd.get(n)}")
        for bad in checksums_ok(s.data):
            res.diffs.append(f"{where}: statewall's {bad} does not verify")
    res.mapped = dict(pm.fwd)
    return res
