"""Link layers: where the IP header starts in a captured frame.

Owns: the ``LINKTYPE_*`` numbers statewall understands and the one hot function
``l3_offset(linktype, frame)`` that strips the link header (Ethernet with 802.1Q / 802.1ad /
QinQ tags, raw IP, Linux cooked SLL and SLL2, BSD null/loop) and tells the network protocol,
the packet type and, for SLL2, the interface index. Must not know: IP decoding, capture file
formats, conntrack.

Follows the tcpdump.org LINKTYPE list (``link-layer-header-types``) and libpcap's
``pcap-common.c`` / ``sll.h``; packet types are the kernel's ``PACKET_*`` (``if_packet.h``),
as ``eth_type_trans`` derives them for Ethernet (broadcast / multicast from the destination
MAC; host vs otherhost needs the device address, so it is left unknown).
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from statewall.packet.packet import ParseError

__all__ = [
    "LINKTYPE_NULL", "LINKTYPE_ETHERNET", "LINKTYPE_RAW", "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL", "LINKTYPE_LINUX_SLL2", "LINKTYPE_IPV4", "LINKTYPE_IPV6",
    "LINKTYPE_RAW_BSD", "LINKTYPE_RAW_OPENBSD", "SUPPORTED_LINKTYPES", "LINKTYPE_NAMES",
    "ETH_P_IP", "ETH_P_IPV6", "ETH_P_ARP", "ETH_P_8021Q", "ETH_P_8021AD", "ETH_P_QINQ1",
    "ETH_P_802_2", "ETH_P_NONE",
    "PACKET_HOST", "PACKET_BROADCAST", "PACKET_MULTICAST", "PACKET_OTHERHOST",
    "PACKET_OUTGOING", "PACKET_UNKNOWN", "PKTTYPE_NAMES",
    "l3_offset",
]

# --- link types (tcpdump.org LINKTYPE_* values as stored in pcap / pcapng) ---------------
LINKTYPE_NULL: Final = 0            # BSD loopback: 4-byte AF_ value in the writer's byte order
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW_BSD: Final = 12        # DLT_RAW on most BSDs, found in old pcap files
LINKTYPE_RAW_OPENBSD: Final = 14    # DLT_RAW on OpenBSD
LINKTYPE_RAW: Final = 101           # raw IPv4 or IPv6, by the version nibble
LINKTYPE_LOOP: Final = 108          # OpenBSD loopback: 4-byte AF_ value, big-endian
LINKTYPE_LINUX_SLL: Final = 113     # Linux cooked capture v1 (16-byte header)
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276    # Linux cooked capture v2 (20-byte header, ifindex)

LINKTYPE_NAMES: Final[dict[int, str]] = {
    LINKTYPE_NULL: "NULL", LINKTYPE_ETHERNET: "ETHERNET", LINKTYPE_RAW_BSD: "RAW",
    LINKTYPE_RAW_OPENBSD: "RAW", LINKTYPE_RAW: "RAW", LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL", LINKTYPE_IPV4: "IPV4", LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}
SUPPORTED_LINKTYPES: Final = frozenset(LINKTYPE_NAMES)

# --- ethertypes ------------------------------------------------------------------------------
ETH_P_IP: Final = 0x0800
ETH_P_IPV6: Final = 0x86DD
ETH_P_ARP: Final = 0x0806
ETH_P_8021Q: Final = 0x8100
ETH_P_8021AD: Final = 0x88A8
ETH_P_QINQ1: Final = 0x9100         # pre-standard QinQ outer tag
ETH_P_802_2: Final = 0x0004         # 802.3 frame with a length field (LLC), as the kernel names it
ETH_P_NONE: Final = 0               # no protocol known (unknown AF_ family, empty raw frame...)

_VLAN_TPIDS: Final = frozenset((ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ1))

# --- packet types (linux/if_packet.h) --------------------------------------------------------
PACKET_HOST: Final = 0
PACKET_BROADCAST: Final = 1
PACKET_MULTICAST: Final = 2
PACKET_OTHERHOST: Final = 3
PACKET_OUTGOING: Final = 4
PACKET_UNKNOWN: Final = -1
PKTTYPE_NAMES: Final[dict[int, str]] = {
    PACKET_HOST: "host", PACKET_BROADCAST: "broadcast", PACKET_MULTICAST: "multicast",
    PACKET_OTHERHOST: "otherhost", PACKET_OUTGOING: "outgoing", PACKET_UNKNOWN: "unknown",
}

# AF_INET6 differs by OS: Linux 10, NetBSD/OpenBSD/BSDi 24, FreeBSD/DragonFly 28, Darwin 30,
# Windows 23 (libpcap pcap-common.c, Wireshark's BSD_AF_INET6_*)
_AF_TO_ETHERTYPE: Final[dict[int, int]] = {
    2: ETH_P_IP, 10: ETH_P_IPV6, 23: ETH_P_IPV6, 24: ETH_P_IPV6, 28: ETH_P_IPV6, 30: ETH_P_IPV6,
}

_U16: Final = Struct("!H").unpack_from
_U32: Final = Struct("!I").unpack_from
_U32LE: Final = Struct("<I").unpack_from
_SLL: Final = Struct("!H12xH").unpack_from          # pkttype ... protocol
_SLL2: Final = Struct("!H2xI2xB").unpack_from       # protocol, ifindex, pkttype
_RAW_VERSION: Final = (ETH_P_NONE,) * 4 + (ETH_P_IP, ETH_P_NONE, ETH_P_IPV6) + (ETH_P_NONE,) * 9

L3Info = tuple[int, int, int, int, int]
"""(offset, ethertype, pkttype, ifindex, vlan) as returned by :func:`l3_offset`."""


def _vlan_walk(frame: bytes, off: int, etype: int, pkttype: int, ifindex: int) -> L3Info:
    """Skip 802.1Q / 802.1ad tags; ``etype`` is the protocol of the data at ``frame[off]``."""
    n = len(frame)
    vlan = -1
    while etype in _VLAN_TPIDS:
        if off + 4 > n:
            raise ParseError("truncated vlan tag")
        vlan = _U16(frame, off)[0] & 0x0FFF
        etype = _U16(frame, off + 2)[0]
        off += 4
    if etype < 0x0600:                    # 802.3 length field: LLC follows
        etype = ETH_P_802_2
    return off, etype, pkttype, ifindex, vlan


def l3_offset(linktype: int, frame: bytes) -> L3Info:
    """Locate the network header of ``frame`` captured with ``linktype``.

    Returns ``(offset, ethertype, pkttype, ifindex, vlan)``: the network header starts at
    ``frame[offset]``; ``ethertype`` is ``ETH_P_IP`` / ``ETH_P_IPV6`` for IP and anything else
    (ARP, LLC ``ETH_P_802_2``, ``ETH_P_NONE`` for an unknown loopback family) for frames the
    caller should report as not IP; ``pkttype`` is a ``PACKET_*`` value or ``PACKET_UNKNOWN``;
    ``ifindex`` is the SLL2 interface index or -1; ``vlan`` the innermost 802.1Q VLAN ID or -1.
    Raises ParseError for a frame shorter than its link header or an unsupported link type.
    """
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            raise ParseError("truncated ethernet header")
        d0 = frame[0]
        if d0 & 1:
            pkttype = PACKET_BROADCAST if frame[:6] == b"\xff\xff\xff\xff\xff\xff" \
                else PACKET_MULTICAST
        else:
            pkttype = PACKET_UNKNOWN
        etype = _U16(frame, 12)[0]
        if etype == ETH_P_IP or etype == ETH_P_IPV6:
            return 14, etype, pkttype, -1, -1
        return _vlan_walk(frame, 14, etype, pkttype, -1)
    if linktype == LINKTYPE_RAW or linktype == LINKTYPE_RAW_BSD \
            or linktype == LINKTYPE_RAW_OPENBSD:
        if not frame:
            raise ParseError("empty raw ip frame")
        return 0, _RAW_VERSION[frame[0] >> 4], PACKET_UNKNOWN, -1, -1
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise ParseError("truncated linux sll header")
        pkttype, etype = _SLL(frame)
        if etype in _VLAN_TPIDS:
            return _vlan_walk(frame, 16, etype, pkttype, -1)
        return 16, etype, pkttype, -1, -1
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            raise ParseError("truncated linux sll2 header")
        etype, ifindex, pkttype = _SLL2(frame)
        if etype in _VLAN_TPIDS:
            return _vlan_walk(frame, 20, etype, pkttype, ifindex)
        return 20, etype, pkttype, ifindex, -1
    if linktype == LINKTYPE_IPV4:
        return 0, ETH_P_IP, PACKET_UNKNOWN, -1, -1
    if linktype == LINKTYPE_IPV6:
        return 0, ETH_P_IPV6, PACKET_UNKNOWN, -1, -1
    if linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if len(frame) < 4:
            raise ParseError("truncated loopback header")
        # LOOP is always big-endian; NULL is in the capturing host's byte order, and every
        # AF_ value is < 65536, so two leading zero bytes mean big-endian
        if linktype == LINKTYPE_LOOP or (frame[0] == 0 and frame[1] == 0):
            family = _U32(frame, 0)[0]
        else:
            family = _U32LE(frame, 0)[0]
        return 4, _AF_TO_ETHERTYPE.get(family, ETH_P_NONE), PACKET_UNKNOWN, -1, -1
    raise ParseError(f"unsupported link type {linktype}")
