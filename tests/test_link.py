"""l3_offset for every supported link type, checked against scapy-built frames."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, LLC, SNAP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Dot3, Ether
from scapy.packet import Raw

from statewall.packet import link
from statewall.packet.decode import decode_ip
from statewall.packet.link import (
    ETH_P_802_2, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ETH_P_NONE, PACKET_BROADCAST,
    PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING, PACKET_UNKNOWN,
    l3_offset,
)
from statewall.packet.packet import ParseError

IP4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2))
IP6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=3, dport=4))
UNICAST = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def roundtrip(linktype: int, frame: bytes, ip: bytes) -> tuple[int, int, int, int, int]:
    info = l3_offset(linktype, frame)
    off = info[0]
    assert frame[off:] == ip
    decode_ip(frame[off:])
    return info


def test_ethernet_ipv4_ipv6() -> None:
    f = bytes(Ether(**UNICAST, type=0x800) / IP4)
    assert roundtrip(1, f, IP4) == (14, ETH_P_IP, PACKET_UNKNOWN, -1, -1)
    assert roundtrip(1, bytes(Ether(**UNICAST, type=0x86DD) / IP6), IP6)[:2] == (14, ETH_P_IPV6)


def test_ethernet_pkttype_from_destination() -> None:
    bcast = bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x800) / IP4)
    assert l3_offset(1, bcast)[2] == PACKET_BROADCAST
    mcast = bytes(Ether(src="02:00:00:00:00:01", dst="01:00:5e:00:00:01", type=0x800) / IP4)
    assert l3_offset(1, mcast)[2] == PACKET_MULTICAST


def test_ethernet_padding_is_left_for_the_ip_decoder() -> None:
    small = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP())        # 28 bytes -> 18 pad
    frame = bytes(Ether(**UNICAST) / small) + b"\x00" * 18
    off = l3_offset(1, frame)[0]
    assert decode_ip(frame[off:]).buf == small


def test_vlan_and_qinq() -> None:
    f = bytes(Ether(**UNICAST) / Dot1Q(vlan=100, prio=5, type=0x800) / IP4)
    assert roundtrip(1, f, IP4) == (18, ETH_P_IP, PACKET_UNKNOWN, -1, 100)
    f = bytes(Ether(**UNICAST) / Dot1AD(vlan=7) / Dot1Q(vlan=200, type=0x86DD) / IP6)
    assert roundtrip(1, f, IP6) == (22, ETH_P_IPV6, PACKET_UNKNOWN, -1, 200)
    f = bytes(Ether(**UNICAST, type=0x9100) / Dot1Q(vlan=3) / Dot1Q(vlan=4, type=0x800) / IP4)
    assert roundtrip(1, f, IP4)[::4] == (22, 4)


def test_non_ip_frames_are_reported_with_their_ethertype() -> None:
    arp = bytes(Ether(**UNICAST) / ARP())
    assert l3_offset(1, arp)[:2] == (14, ETH_P_ARP)
    arp_vlan = bytes(Ether(**UNICAST) / Dot1Q(vlan=9) / ARP())
    assert l3_offset(1, arp_vlan)[:2] == (18, ETH_P_ARP)
    llc = bytes(Dot3(**UNICAST) / LLC() / SNAP() / Raw(b"x" * 30))
    assert l3_offset(1, llc)[1] == ETH_P_802_2


def test_ethernet_truncation() -> None:
    f = bytes(Ether(**UNICAST) / Dot1AD(vlan=7) / Dot1Q(vlan=200, type=0x86DD) / IP6)
    for i in range(22):
        with pytest.raises(ParseError):
            l3_offset(1, f[:i])


def test_linux_sll() -> None:
    f = bytes(CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6 + b"\0\0",
                          proto=0x0800) / IP4)
    assert roundtrip(113, f, IP4) == (16, ETH_P_IP, PACKET_OUTGOING, -1, -1)
    f = bytes(CookedLinux(pkttype=3, proto=0x86DD) / IP6)
    assert roundtrip(113, f, IP6)[:3] == (16, ETH_P_IPV6, PACKET_OTHERHOST)
    f = bytes(CookedLinux(pkttype=0, proto=0x8100) / Dot1Q(vlan=42, type=0x800) / IP4)
    assert roundtrip(113, f, IP4) == (20, ETH_P_IP, PACKET_HOST, -1, 42)
    f = bytes(CookedLinux(pkttype=1, proto=0x0806) / ARP())
    assert l3_offset(113, f)[:3] == (16, ETH_P_ARP, PACKET_BROADCAST)
    for i in range(16):
        with pytest.raises(ParseError):
            l3_offset(113, f[:i])


def test_linux_sll2_carries_ifindex() -> None:
    f = bytes(CookedLinuxV2(proto=0x0800, ifindex=17, pkttype=2, lladdrtype=1, lladdrlen=6)
              / IP4)
    assert roundtrip(276, f, IP4) == (20, ETH_P_IP, PACKET_MULTICAST, 17, -1)
    f = bytes(CookedLinuxV2(proto=0x8100, ifindex=3, pkttype=4) / Dot1Q(vlan=5, type=0x86DD) / IP6)
    assert roundtrip(276, f, IP6) == (24, ETH_P_IPV6, PACKET_OUTGOING, 3, 5)
    for i in range(20):
        with pytest.raises(ParseError):
            l3_offset(276, f[:i])


@pytest.mark.parametrize("lt", [101, 12, 14])
def test_raw_ip_by_version_nibble(lt: int) -> None:
    assert roundtrip(lt, IP4, IP4)[:2] == (0, ETH_P_IP)
    assert roundtrip(lt, IP6, IP6)[:2] == (0, ETH_P_IPV6)
    assert l3_offset(lt, b"\x10abc")[1] == ETH_P_NONE
    with pytest.raises(ParseError):
        l3_offset(lt, b"")


def test_raw_ipv4_ipv6_linktypes() -> None:
    assert roundtrip(228, IP4, IP4)[:2] == (0, ETH_P_IP)
    assert roundtrip(229, IP6, IP6)[:2] == (0, ETH_P_IPV6)


@pytest.mark.parametrize("family,etype", [(2, ETH_P_IP), (10, ETH_P_IPV6), (24, ETH_P_IPV6),
                                          (28, ETH_P_IPV6), (30, ETH_P_IPV6),
                                          (7, ETH_P_NONE)])
def test_null_both_byte_orders(family: int, etype: int) -> None:
    ip = IP6 if etype == ETH_P_IPV6 else IP4
    for fmt in ("<I", ">I"):
        info = l3_offset(0, struct.pack(fmt, family) + ip)
        assert info[:2] == (4, etype)


def test_loop_is_big_endian() -> None:
    assert l3_offset(108, struct.pack(">I", 2) + IP4)[:2] == (4, ETH_P_IP)
    assert l3_offset(108, struct.pack(">I", 24) + IP6)[:2] == (4, ETH_P_IPV6)
    assert l3_offset(108, struct.pack("<I", 2) + IP4)[1] == ETH_P_NONE
    for i in range(4):
        with pytest.raises(ParseError):
            l3_offset(108, IP4[:i])


def test_unsupported_linktype() -> None:
    assert 105 not in link.SUPPORTED_LINKTYPES
    with pytest.raises(ParseError, match="unsupported link type 105"):
        l3_offset(105, IP4)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(link.SUPPORTED_LINKTYPES)), st.binary(max_size=40))
def test_random_frames_only_parse_error(lt: int, data: bytes) -> None:
    try:
        off, etype, pkttype, ifindex, vlan = l3_offset(lt, data)
    except ParseError:
        return
    assert 0 <= off <= len(data)
    assert pkttype == PACKET_UNKNOWN or 0 <= pkttype < 0x10000  # SLL: 16-bit field


def test_every_prefix_of_a_frame_fails_cleanly() -> None:
    frames = [
        (1, bytes(Ether(**UNICAST) / Dot1AD(vlan=7) / Dot1Q(vlan=9, type=0x800) / IP4)),
        (113, bytes(CookedLinux(pkttype=0, proto=0x86DD) / IP6)),
        (276, bytes(CookedLinuxV2(proto=0x0800, ifindex=2) / IP4)),
        (0, struct.pack("<I", 2) + IP4),
    ]
    for lt, frame in frames:
        off = l3_offset(lt, frame)[0]
        decode_ip(frame[off:])
        for i in range(len(frame)):
            with pytest.raises(ParseError):
                off = l3_offset(lt, frame[:i])[0]
                decode_ip(frame[off:i])
