"""What leaves fw: its transmitted frames as a capture, and forwarded packets NAT changed.

Owns: ``egress.pcapng`` of a recording (every IPv4/IPv6 frame fw transmitted on its
interfaces, in the kernel's order, with the kernel's timestamps: one IDB per fw interface,
Ethernet, ``epb_flags`` outbound) - what a NAT comparison lays statewall's ``replay
--write`` output against, header by header -; reading it back; and matching an ingress
frame to the frame it left as when NAT rewrote it (``match_translated``: the byte-exact
match of ``record`` cannot see through changed addresses, ports and checksums).
Must not know: statewall's tracker, NAT bindings, scenarios.

Translated match: the first not yet matched outgoing frame after the ingress frame, within
``WINDOW`` seconds, of the same IP version and protocol, with the TTL / hop limit one less,
and the same IPv4 identification (IPv6: the same flow label and payload length, unless a
TCP payload was rewritten). fw forwards a packet within microseconds and the lab sends one
packet at a time (real programs go through a delay line), so this is unambiguous in the lab.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from statewall.io.capture import PcapngWriter, open_capture

if TYPE_CHECKING:
    from statewall.io.capture import Frame as CapFrame
    from statewall.lab.capture import Frame
    from statewall.lab.record import Recording

EGRESS_FILE: Final = "egress.pcapng"


class _LocalLike(Protocol):
    """``record._Local``: a packet fw sent (id, when, its bytes)."""

    id: int
    ts_ns: int
    l3: bytes

LINKTYPE_ETHERNET: Final = 1
EPB_OUTBOUND: Final = 2
WINDOW_NS: Final = 1_000_000_000


def _ttl(l3: bytes) -> int:
    return l3[8] if l3[0] >> 4 == 4 else l3[7]


def _proto(l3: bytes) -> int:
    return l3[9] if l3[0] >> 4 == 4 else l3[6]


def translated_key(f: bytes, g: bytes) -> bool:
    """Could ``g`` be ``f`` forwarded after NAT rewrote it?"""
    if len(f) < 20 or len(g) < 20 or f[0] >> 4 != g[0] >> 4:
        return False
    if _proto(f) != _proto(g) or _ttl(g) != _ttl(f) - 1:
        return False
    if f[0] >> 4 == 4:
        return f[4:6] == g[4:6]
    if len(f) < 40 or len(g) < 40:
        return False
    if (f[1] & 0x0F, f[2], f[3]) != (g[1] & 0x0F, g[2], g[3]):
        return False
    return f[4:6] == g[4:6] or _proto(f) == 6


def match_translated(ingress: Iterable[tuple[int, Frame]], egress: list[tuple[int, Frame]],
                     used: set[int], out: dict[int, str]) -> None:
    """Ingress frames not matched yet -> the interface their translated copy left on
    (``out`` and ``used`` are updated in place)."""
    free = [(j, g) for j, g in egress if j not in used]
    if not free:
        return
    for idx, f in ingress:
        if idx in out:
            continue
        l3 = f.l3
        for j, g in free:
            if j in used or j <= idx:
                continue
            if g.ts_ns - f.ts_ns > WINDOW_NS:
                break
            if translated_key(l3, g.l3):
                used.add(j)
                out[idx] = g.iface
                break


def match_local_translated(locals_: Iterable[_LocalLike], egress: list[tuple[int, Frame]],
                           used: set[int], out: dict[int, int]) -> None:
    """Packets fw sent (``Send("fw", ...)``) not matched yet -> the capture index of the
    frame they left as after NAT: the first free outgoing frame at or after the send, of the
    same version, protocol and TTL (IPv4: and identification, unless the kernel filled in
    a zero one)."""
    for loc in locals_:
        if loc.id in out:
            continue
        a = loc.l3
        for j, g in egress:
            if j in used or g.ts_ns < loc.ts_ns:
                continue
            if g.ts_ns - loc.ts_ns > WINDOW_NS:
                break
            b = g.l3
            if (len(a) < 20 or len(b) < 20 or a[0] >> 4 != b[0] >> 4 or _proto(a) != _proto(b)
                    or _ttl(a) != _ttl(b)):
                continue
            if a[0] >> 4 == 4 and a[4:6] != b"\0\0" and a[4:6] != b[4:6]:
                continue
            used.add(j)
            out[loc.id] = j
            break


def egress_frames(rec: Recording) -> list[Frame]:
    """Every IPv4/IPv6 frame fw transmitted on its interfaces, in capture order."""
    return [f for f in rec.frames if f.outgoing and f.iface in rec.fw_ifaces and f.l3]


def pcapng_bytes(rec: Recording) -> bytes:
    buf = io.BytesIO()
    w = PcapngWriter(buf, userappl=f"statewall lab egress: {rec.scenario.name}")
    ids = {name: w.interface(name, LINKTYPE_ETHERNET) for name in rec.fw_ifaces}
    for f in egress_frames(rec):
        w.write(f.data, f.ts_ns, ids[f.iface], flags=EPB_OUTBOUND)
    return buf.getvalue()


def wanted(rec: Recording) -> bool:
    """Scenarios with a nat table get an ``egress.pcapng`` (NAT rewrites what leaves)."""
    scn = rec.scenario
    return "*nat" in scn.rules_v4 or "*nat" in scn.rules_v6


def write(rec: Recording, outdir: str | Path, force: bool = False) -> Path | None:
    """Write ``egress.pcapng`` next to the recording's other files (NAT scenarios, or
    ``force``)."""
    if not (force or wanted(rec)):
        return None
    p = Path(outdir) / EGRESS_FILE
    p.write_bytes(pcapng_bytes(rec))
    return p


def read(path: str | Path) -> list[tuple[str, int, bytes]]:
    """(interface, kernel ns timestamp, L3 bytes) of every frame in an egress capture."""
    out: list[tuple[str, int, bytes]] = []
    with open_capture(path) as cap:
        for fr in cap:
            out.append((fr.iface_name or "", fr.ts_ns, _l3(fr)))
    return out


def _l3(fr: CapFrame) -> bytes:
    data = fr.data
    if len(data) < 14:
        return b""
    et = int.from_bytes(data[12:14], "big")
    if et == 0x0800 and len(data) >= 34:
        return data[14:14 + int.from_bytes(data[16:18], "big")]
    if et == 0x86DD and len(data) >= 54:
        return data[14:14 + 40 + int.from_bytes(data[18:20], "big")]
    return b""
