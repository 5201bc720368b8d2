"""Reading transport fields the way x_tables matches do (shared helpers).

Owns: the slow path for a packet whose transport header the decoder flagged (``l4err``):
matches read raw bytes at ``l4off`` like ``skb_header_pointer`` and hot-drop only when
the bytes they need are missing. Must not know: any particular match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...packet.packet import Packet


def ports(pkt: Packet) -> tuple[int, int] | None:
    """The first four transport bytes as (sport, dport), or None when cut short."""
    if pkt.l4err is None:
        return pkt.sport, pkt.dport
    off = pkt.l4off
    b = pkt.buf
    if len(b) - off < 4:
        return None
    return b[off] << 8 | b[off + 1], b[off + 2] << 8 | b[off + 3]


def have(pkt: Packet, n: int) -> bool:
    """At least ``n`` transport bytes are present."""
    return len(pkt.buf) - pkt.l4off >= n
