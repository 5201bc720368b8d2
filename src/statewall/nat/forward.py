"""The bytes a packet leaves the firewall with: TTL / hop limit, re-fragmentation.

Owns: what ``ip_forward`` / ``ip6_forward`` do to a forwarded packet's header (TTL or hop
limit one less, the IPv4 checksum updated the kernel's way) and what ``ip_do_fragment`` /
``ip6_fragment`` do with a datagram conntrack reassembled: it leaves in fragments again,
cut where the original fragments were cut (the kernel keeps them as the reassembled skb's
frag list and reuses that geometry), each with its own header (IPv4: same id, offset, MF,
header checksum; IPv6: a fragment header after the unfragmentable part).
Must not know: NAT bindings, conntrack, rules, capture files.
Follows net/ipv4/ip_forward.c, include/net/ip.h (``ip_decrease_ttl``), net/ipv4/
ip_output.c (``ip_fraglist_init``, ``ip_fraglist_prepare``), net/ipv6/ip6_output.c
(``ip6_fragment``, ``ip6_find_1stfragopt``).

Differences (documented): an IPv6 datagram is re-fragmented with its original
identification (the kernel picks a new one with ``ipv6_select_ident``); IPv4 options are
copied into every fragment (the kernel keeps only the copied ones after the first).
"""

from __future__ import annotations

from typing import Final, Sequence

from .manip import ip_decrease_ttl, ipv4_header_checksum, put16

IP_MF: Final = 0x2000


def forwarded(buf: bytes) -> bytes:
    """The packet as ``ip_forward`` sends it on: TTL / hop limit decremented."""
    b = bytearray(buf)
    ip_decrease_ttl(b)
    return bytes(b)


def _pieces(total: int, offsets: Sequence[int]) -> list[tuple[int, int]]:
    """(offset, length) of each piece: cut at the original fragments' offsets."""
    cuts = sorted({o for o in offsets if 0 <= o < total} | {0})
    out = []
    for i, o in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else total
        out.append((o, end - o))
    return out


def _v6_unfragmentable(b: bytes) -> tuple[int, int]:
    """``ip6_find_1stfragopt``: (offset where the fragment header goes, offset of the
    next-header byte that must point at it)."""
    off = 40
    nh_at = 6
    nh = b[6]
    seen_rthdr = False
    while off + 2 <= len(b):
        if nh == 0:
            pass
        elif nh == 43:
            seen_rthdr = True
        elif nh == 60:
            # destination options before a routing header belong to the unfragmentable part
            nxt = b[off]
            if nxt != 43 or seen_rthdr:
                return off, nh_at
        else:
            return off, nh_at
        nh_at = off
        nh = b[off]
        off += (b[off + 1] + 1) * 8
    return off, nh_at


def refragment(buf: bytes, offsets: Sequence[int], ident: int) -> list[bytes]:
    """Cut a datagram again along its original fragments' offsets (payload bytes after the
    IPv4 header / the IPv6 unfragmentable part). ``ident``: the IPv6 identification."""
    if buf[0] >> 4 == 4:
        ihl = (buf[0] & 15) * 4
        payload = buf[ihl:]
        pieces = _pieces(len(payload), offsets)
        if len(pieces) < 2:
            return [buf]
        out = []
        base_off = (buf[6] << 8 | buf[7]) & 0x1FFF    # 0 for a reassembled datagram
        for i, (o, n) in enumerate(pieces):
            h = bytearray(buf[:ihl])
            put16(h, 2, ihl + n)
            frag = (base_off + (o >> 3)) | (IP_MF if i + 1 < len(pieces) else 0)
            if i == 0:
                frag |= (buf[6] << 8 | buf[7]) & 0x4000      # the first keeps DF
            put16(h, 6, frag)
            ipv4_header_checksum(h)
            out.append(bytes(h) + payload[o:o + n])
        return out
    unf, nh_at = _v6_unfragmentable(buf)
    payload = buf[unf:]
    pieces = _pieces(len(payload), offsets)
    if len(pieces) < 2:
        return [buf]
    nexthdr = buf[nh_at] if nh_at != 6 else buf[6]
    out = []
    for i, (o, n) in enumerate(pieces):
        h = bytearray(buf[:unf])
        h[nh_at] = 44
        put16(h, 4, unf - 40 + 8 + n)
        fh = bytes((nexthdr, 0)) + ((o & ~7) | (1 if i + 1 < len(pieces) else 0)
                                    ).to_bytes(2, "big") + (ident & 0xFFFFFFFF).to_bytes(4, "big")
        out.append(bytes(h) + fh + payload[o:o + n])
    return out
