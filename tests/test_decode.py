"""decode_ip / decode_ipv4 / decode_ipv6 against scapy's view of the same bytes."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting, Jumbo, PadN, RouterAlert, HBHOptUnknown,
)
from scapy.layers.sctp import SCTP
from scapy.packet import Raw

from statewall.packet.decode import decode_ip, decode_ipv4, decode_ipv6
from statewall.packet.packet import AF_INET, AF_INET6, Packet, ParseError


def v4(pkt: IP) -> bytes:
    return bytes(pkt)


def inet(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)


def check_invariants(p: Packet) -> None:
    n = len(p.buf)
    assert 0 <= p.l4off <= n
    assert p.l4len == n - p.l4off
    assert p.l4off <= p.payload_off <= n
    if p.l4err is not None or p.fragoff:
        assert p.sport == 0 and p.dport == 0
    if p.doff:
        assert p.tcp_optoff == p.l4off + 20
        assert p.payload_off == p.l4off + p.doff


def compare_tcp(p: Packet, t: TCP, l4off: int) -> None:
    assert p.proto == 6
    assert p.l4err is None
    assert (p.sport, p.dport, p.seq, p.ack) == (t.sport, t.dport, t.seq, t.ack)
    assert p.flags == int(t.flags)
    assert p.win == t.window
    assert p.doff == t.dataofs * 4
    assert p.l4off == l4off
    assert p.tcp_optoff == l4off + 20
    assert p.tcp_optlen == t.dataofs * 4 - 20
    assert p.payload_off == l4off + t.dataofs * 4
    assert p.buf[p.payload_off:] == bytes(t.payload)


# --- IPv4 ------------------------------------------------------------------------------------

def test_ipv4_tcp_every_field() -> None:
    pkt = IP(src="10.1.2.3", dst="192.168.9.8", ttl=33, id=0x4242, tos=0xB8) / TCP(
        sport=40000, dport=443, seq=0xDEADBEEF, ack=0x01020304, flags="SAE", window=29200,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None),
                 ("WScale", 7)]) / Raw(b"hello")
    raw = bytes(pkt)
    p = decode_ipv4(raw)
    s = IP(raw)
    assert p.l3num == AF_INET
    assert p.src == inet(s.src) and p.dst == inet(s.dst)
    assert (p.ttl, p.ipid, p.tos) == (s.ttl, s.id, s.tos)
    assert p.fragoff == 0 and not p.mf and p.frag_hdr_off == -1
    assert p.buf == raw
    compare_tcp(p, s[TCP], s.ihl * 4)
    assert p.buf[p.tcp_optoff:p.tcp_optoff + p.tcp_optlen] == raw[40:40 + p.tcp_optlen]
    check_invariants(p)
    assert decode_ip(raw).sport == 40000


def test_ipv4_options_are_skipped_by_ihl() -> None:
    pkt = IP(src="1.1.1.1", dst="2.2.2.2", options=[IPOption_NOP(), IPOption_RR(
        routers=["9.9.9.9", "8.8.8.8"])]) / UDP(sport=5353, dport=53) / Raw(b"q" * 11)
    raw = bytes(pkt)
    s = IP(raw)
    assert s.ihl > 5
    p = decode_ipv4(raw)
    assert p.l4off == s.ihl * 4
    assert (p.proto, p.sport, p.dport) == (17, 5353, 53)
    assert p.payload_off == s.ihl * 4 + 8
    assert p.payload_len == 11
    check_invariants(p)


def test_ipv4_link_padding_is_trimmed() -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2))
    p = decode_ipv4(raw + b"\x00" * 18)
    assert p.buf == raw
    assert p.l4len == 8 and p.payload_len == 0


@pytest.mark.parametrize("typ,code,expected_id", [
    (8, 0, 0x1234), (0, 0, 0x1234), (3, 3, 0), (11, 0, 0), (13, 0, 0x1234),
])
def test_ipv4_icmp_fields(typ: int, code: int, expected_id: int) -> None:
    icmp = ICMP(type=typ, code=code, id=0x1234, seq=7) if expected_id else ICMP(
        type=typ, code=code)
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / icmp / Raw(b"x" * 8))
    p = decode_ipv4(raw)
    s = IP(raw)[ICMP]
    assert (p.icmp_type, p.icmp_code) == (s.type, s.code)
    # identifier = bytes 4-5 for every type (as the kernel's tuple does)
    assert p.sport == struct.unpack_from("!H", raw, 24)[0] == expected_id
    assert p.dport == typ << 8 | code
    assert p.payload_off == 28
    check_invariants(p)


def test_ipv4_sctp_udplite_dccp_ports() -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / SCTP(sport=3868, dport=2905))
    p = decode_ipv4(raw)
    assert (p.proto, p.sport, p.dport, p.payload_off) == (132, 3868, 2905, 32)
    udplite = struct.pack("!HHHH", 1000, 2000, 8, 0) + b"abc"
    p = decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=136) / Raw(udplite)))
    assert (p.proto, p.sport, p.dport, p.payload_off) == (136, 1000, 2000, 28)
    dccp = struct.pack("!HHBBHI", 5000, 6000, 4, 0, 0, 0) + b"z" * 6  # doff 4 words = 16 bytes
    p = decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=33) / Raw(dccp)))
    assert (p.proto, p.sport, p.dport, p.payload_off, p.l4err) == (33, 5000, 6000, 36, None)
    bad = struct.pack("!HHBBHI", 5000, 6000, 2, 0, 0, 0)
    p = decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=33) / Raw(bad)))
    assert p.l4err is not None and p.sport == 0


def test_ipv4_other_protocol_has_no_l4_fields() -> None:
    p = decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=47) / Raw(b"\x00" * 12)))
    assert (p.proto, p.l4off, p.l4len, p.sport, p.l4err) == (47, 20, 12, 0, None)


def test_ipv4_fragments() -> None:
    pkt = IP(src="1.1.1.1", dst="2.2.2.2", id=999) / UDP(sport=7, dport=9) / Raw(b"A" * 100)
    first, second = [bytes(f) for f in pkt.fragment(64)][:2]
    p = decode_ipv4(first)
    assert p.mf and p.fragoff == 0 and p.is_fragment and p.ipid == 999
    assert (p.sport, p.dport) == (7, 9)                  # first fragment: L4 decoded
    q = decode_ipv4(second)
    s = IP(second)
    assert q.fragoff == s.frag * 8 and q.fragoff > 0 and not q.mf
    assert (q.sport, q.dport, q.l4err, q.proto) == (0, 0, None, 17)
    check_invariants(p)
    check_invariants(q)


def test_ipv4_tiny_first_fragment_sets_l4err() -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=6, flags="MF") / Raw(b"\x00" * 8))
    p = decode_ipv4(raw)
    assert p.mf and p.l4err == "truncated tcp header" and p.sport == 0


@pytest.mark.parametrize("proto,need", [(6, 20), (17, 8), (136, 8), (1, 8), (58, 8),
                                        (132, 12), (33, 12)])
def test_ipv4_l4_truncation_sets_l4err(proto: int, need: int) -> None:
    for k in range(need):
        raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2", proto=proto) / Raw(b"\x50" * k))
        p = decode_ipv4(raw)
        assert p.l4err is not None and p.l4err.startswith("truncated"), (proto, k)
        assert p.sport == 0 and p.dport == 0
        check_invariants(p)


def test_tcp_bad_data_offset() -> None:
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / TCP(dataofs=4))
    assert decode_ipv4(raw).l4err == "tcp data offset too small"
    raw = bytes(IP(src="1.1.1.1", dst="2.2.2.2") / TCP(dataofs=15))
    p = decode_ipv4(raw)
    assert p.l4err == "tcp data offset beyond end of packet" and p.sport == 0


def test_ipv4_header_damage_raises() -> None:
    good = bytearray(bytes(IP(src="1.1.1.1", dst="2.2.2.2") / TCP()))
    bad_sum = bytearray(good)
    bad_sum[10] ^= 0xFF
    with pytest.raises(ParseError, match="checksum"):
        decode_ipv4(bytes(bad_sum))
    with pytest.raises(ParseError, match="version"):
        decode_ipv4(bytes(IPv6() / TCP()))
    with pytest.raises(ParseError, match="header length"):
        decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", ihl=4) / TCP()))
    with pytest.raises(ParseError, match="truncated"):
        decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", len=100) / TCP()))
    with pytest.raises(ParseError, match="total length"):
        decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", len=19) / TCP()))
    with pytest.raises(ParseError, match="options"):
        decode_ipv4(bytes(IP(src="1.1.1.1", dst="2.2.2.2", ihl=15)))


def test_every_prefix_raises_only_parse_error() -> None:
    samples = [
        bytes(IP(src="1.1.1.1", dst="2.2.2.2", options=[IPOption_NOP()] * 4) / TCP() / "x"),
        bytes(IPv6(src="::1", dst="::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting()
              / IPv6ExtHdrFragment() / UDP()),
        bytes(IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(id=5)),
    ]
    for raw in samples:
        decode_ip(raw)
        for i in range(len(raw)):
            with pytest.raises(ParseError):
                decode_ip(raw[:i])


# --- IPv6 ------------------------------------------------------------------------------------

def test_ipv6_tcp_every_field() -> None:
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=7, tc=0x2E, fl=0xABCDE) / TCP(
        sport=1, dport=2, seq=3, ack=4, flags="PA", window=5,
        options=[("MSS", 1220)]) / Raw(b"data")
    raw = bytes(pkt)
    p = decode_ipv6(raw)
    s = IPv6(raw)
    assert p.l3num == AF_INET6
    assert p.src == inet(s.src) and p.dst == inet(s.dst)
    assert (p.ttl, p.tos, p.ipid, p.fragoff, p.frag_hdr_off) == (7, 0x2E, 0, 0, -1)
    compare_tcp(p, s[TCP], 40)
    check_invariants(p)


def test_ipv6_extension_chain_and_first_fragment() -> None:
    pkt = (IPv6(src="2001:db8::1", dst="2001:db8::2")
           / IPv6ExtHdrHopByHop(options=[RouterAlert()])
           / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
           / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00")])
           / IPv6ExtHdrFragment(id=0xCAFEBABE, m=1, offset=0)
           / IPv6ExtHdrDestOpt()
           / TCP(sport=8080, dport=80))
    raw = bytes(pkt)
    s = IPv6(raw)
    tcp_off = len(raw) - len(bytes(s[TCP]))
    frag_off = len(raw) - len(bytes(s[IPv6ExtHdrFragment]))
    p = decode_ipv6(raw)
    assert p.proto == 6 and p.l4off == tcp_off
    assert (p.frag_hdr_off, p.ipid, p.fragoff, p.mf) == (frag_off, 0xCAFEBABE, 0, True)
    assert (p.sport, p.dport) == (8080, 80)
    check_invariants(p)


def test_ipv6_non_first_fragment() -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2")
                / IPv6ExtHdrFragment(nh=17, id=77, offset=100, m=0) / Raw(b"\xff" * 16))
    p = decode_ipv6(raw)
    assert (p.proto, p.fragoff, p.mf, p.ipid, p.frag_hdr_off) == (17, 800, False, 77, 40)
    assert p.l4off == 48 and p.sport == 0 and p.l4err is None
    assert p.is_fragment


def test_ipv6_atomic_fragment_is_not_a_fragment() -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=1)
                / UDP(sport=10, dport=20))
    p = decode_ipv6(raw)
    assert not p.is_fragment and p.frag_hdr_off == 40 and p.ipid == 1
    assert (p.proto, p.sport, p.dport) == (17, 10, 20)


def test_ipv6_ah_is_skipped_esp_is_l4() -> None:
    ah = bytes([6, 4, 0, 0]) + b"\x00\x00\x01\x00" + b"\x00\x00\x00\x01" + b"\x00" * 12
    tcp = bytes(TCP(sport=22, dport=2222))
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=51) / Raw(ah + tcp))
    p = decode_ipv6(raw)
    assert (p.proto, p.l4off, p.sport, p.dport) == (6, 40 + 24, 22, 2222)
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=50) / Raw(b"\x00" * 16))
    p = decode_ipv6(raw)
    assert (p.proto, p.l4off, p.l4err) == (50, 40, None)


def test_ipv6_no_next_header_is_l4err() -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=59))
    p = decode_ipv6(raw)
    assert (p.proto, p.l4off, p.l4err) == (59, 40, "no next header")
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt(nh=59))
    assert decode_ipv6(raw).l4err == "no next header"


def test_ipv6_truncated_extension_chain() -> None:
    # a destination options header that claims 16 bytes in an 8-byte payload
    dst_opt = bytes([6, 1, 1, 4, 0, 0, 0, 0])
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=60) / Raw(dst_opt))
    p = decode_ipv6(raw)
    assert p.l4err == "truncated ipv6 extension header" and p.l4off == len(p.buf)
    # a routing header with its first byte only
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=43) / Raw(b"\x06"))
    p = decode_ipv6(raw)
    assert (p.proto, p.l4off, p.l4err) == (43, 40, "truncated ipv6 extension header")
    # a fragment header cut short
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=44) / Raw(b"\x06\x00\x00\x00"))
    assert decode_ipv6(raw).l4err == "truncated ipv6 fragment header"
    # TCP behind a complete chain, but the TCP header is short
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt(nh=6)
                / Raw(b"\x00" * 10))
    p = decode_ipv6(raw)
    assert (p.proto, p.l4off, p.l4err) == (6, 48, "truncated tcp header")


def test_ipv6_icmpv6() -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=0x4321, seq=9))
    p = decode_ipv6(raw)
    assert (p.proto, p.icmp_type, p.icmp_code, p.sport, p.dport) == (58, 128, 0, 0x4321,
                                                                      128 << 8)


def test_ipv6_header_damage_raises() -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP()
    with pytest.raises(ParseError, match="truncated"):
        decode_ipv6(bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", plen=100) / UDP()))
    with pytest.raises(ParseError, match="version"):
        decode_ipv6(bytes(IP() / Raw(b"\x00" * 40)))
    with pytest.raises(ParseError, match="multicast source"):
        decode_ipv6(bytes(IPv6(src="ff02::1", dst="2001:db8::2") / UDP()))
    with pytest.raises(ParseError, match="scope 0"):
        decode_ipv6(bytes(IPv6(src="2001:db8::1", dst="ff00::1") / UDP()))
    padded = bytes(base) + b"\x00" * 10
    assert decode_ipv6(padded).buf == bytes(base)


def test_ipv6_device_dependent_checks() -> None:
    lo = bytes(IPv6(src="::1", dst="::1") / UDP())
    il = bytes(IPv6(src="fe80::1", dst="ff01::1") / UDP())
    for raw in (lo, il):
        decode_ipv6(raw)                              # unknown device: accepted
        decode_ipv6(raw, loopback=True)
        with pytest.raises(ParseError):
            decode_ipv6(raw, loopback=False)
        with pytest.raises(ParseError):
            decode_ip(raw, loopback=False)


def test_hop_by_hop_validation() -> None:
    def hbh(*opts: object) -> bytes:
        return bytes(IPv6(src="2001:db8::1", dst="2001:db8::2")
                     / IPv6ExtHdrHopByHop(options=list(opts)) / UDP(sport=1, dport=2))
    assert decode_ipv6(hbh(RouterAlert())).sport == 1
    assert decode_ipv6(hbh(HBHOptUnknown(otype=0x1E, optdata=b"ab"))).sport == 1  # skip
    for otype in (0x5E, 0x9E, 0xDE):                  # action bits 01/10/11: drop
        with pytest.raises(ParseError, match="unknown hop-by-hop option"):
            decode_ipv6(hbh(HBHOptUnknown(otype=otype, optdata=b"ab")))
    with pytest.raises(ParseError, match="padding"):
        decode_ipv6(hbh(PadN(optdata=b"\x00" * 8)))
    with pytest.raises(ParseError, match="PadN"):
        decode_ipv6(hbh(PadN(optdata=b"\x01\x00")))
    with pytest.raises(ParseError, match="router alert"):
        decode_ipv6(hbh(RouterAlert(optlen=3)))
    with pytest.raises(ParseError, match="too many"):
        decode_ipv6(hbh(*[HBHOptUnknown(otype=0x1E, optdata=b"")] * 9))
    # hop-by-hop header longer than the datagram
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0) / Raw(bytes([17, 3]) + bytes(6)))
    with pytest.raises(ParseError, match="hop-by-hop"):
        decode_ipv6(raw)


def test_jumbogram() -> None:
    payload = bytes(UDP(sport=1, dport=2)) + b"j" * 65600
    hbh = bytes(IPv6ExtHdrHopByHop(nh=17, options=[Jumbo(jumboplen=len(payload) + 8)]))
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0, plen=0)) + hbh + payload
    p = decode_ipv6(raw + b"pad")
    assert len(p.buf) == len(raw) and (p.proto, p.sport) == (17, 1)
    small = bytes(IPv6ExtHdrHopByHop(nh=17, options=[Jumbo(jumboplen=100)]))
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=0, plen=0)) + small + b"\0" * 92
    with pytest.raises(ParseError, match="jumbo"):
        decode_ipv6(raw)


def test_decode_ip_dispatch() -> None:
    with pytest.raises(ParseError):
        decode_ip(b"")
    with pytest.raises(ParseError, match="version 5"):
        decode_ip(b"\x50" + bytes(39))
    assert decode_ip(bytes(IPv6(src="::1", dst="::2") / UDP())).l3num == AF_INET6


# --- property tests --------------------------------------------------------------------------

def _fix_v4(head: bytes, body: bytes) -> bytes:
    """A valid IPv4 header (random fields, correct length and checksum) in front of body."""
    ihl = 5 + head[0] % 3
    opts = (head[1:] + bytes(40))[: (ihl - 5) * 4]
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, head[2] if len(head) > 2 else 0,
                                ihl * 4 + len(body), 1, 0, 64,
                                (6, 17, 1, 58, 132, 33, 136, 47)[head[0] % 8], 0,
                                b"\x01\x02\x03\x04", b"\x05\x06\x07\x08") + opts)
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", hdr, 10, ~s & 0xFFFF)
    return bytes(hdr) + body


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_only_parse_error(data: bytes) -> None:
    for raw in (data, b"\x45" + data, b"\x60" + data):
        try:
            p = decode_ip(raw)
        except ParseError:
            continue
        check_invariants(p)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=1, max_size=12), st.binary(max_size=80))
def test_random_l4_never_raises(head: bytes, body: bytes) -> None:
    p = decode_ipv4(_fix_v4(head, body))
    check_invariants(p)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([0, 6, 17, 43, 44, 50, 51, 58, 59, 60, 132]), st.binary(max_size=80))
def test_random_ipv6_chain_never_raises_but_parse_error(nh: int, body: bytes) -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=nh, plen=len(body))) + body
    try:
        p = decode_ipv6(raw)
    except ParseError:
        assert nh == 0                                # only hop-by-hop validation raises
        return
    check_invariants(p)
