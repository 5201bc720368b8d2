"""REJECT: the datagram statewall builds vs the one Linux sends.

Always: golden datagrams observed from a 6.18 kernel, the seq/ack rules of the RST, the
quote lengths, TOS, record-route echo, every no-send case, and valid checksums on everything
built (hypothesis).
As root with working ``ip netns``: a live differential test - client -- fw -- server, fw
rejects with each ``--reject-with`` in FORWARD and INPUT; scapy-crafted packets leave the
client, the answer is captured on the client's veth and compared byte for byte with
``reject_ipv4`` / ``reject_ipv6``. Fields the kernel draws at random are copied from the
kernel's datagram before comparing: the IPv4 ID of an ICMP error (its header checksum then
follows) and the IPv6 flow label of an ICMPv6 error. For the no-send cases a sentinel packet
that does get an answer follows each one; only the sentinel's answer may arrive.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("statewall") is None:  # not installed: use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from statewall.packet.checksum import inet_checksum, l4_checksum_ok  # noqa: E402
from statewall.packet.decode import decode_ip  # noqa: E402
from statewall.packet.packet import Packet, ParseError  # noqa: E402
from statewall.packet.reject import (NF_INET_FORWARD, NF_INET_LOCAL_IN,  # noqa: E402
                                     NF_INET_LOCAL_OUT,
                                     REJECT_WITH_V4, REJECT_WITH_V6, RejectResult, reject,
                                     reject_ipv4, reject_ipv6)

C4, S4, FW4 = "198.51.100.2", "203.0.113.2", "198.51.100.1"
C6, S6, FW6 = "2001:db8:1::2", "2001:db8:2::2", "2001:db8:1::1"
A_FW4 = socket.inet_pton(socket.AF_INET, FW4)
A_FW6 = socket.inet_pton(socket.AF_INET6, FW6)


def at_forward(raw: bytes, router: bytes = A_FW4) -> bytes:
    """The datagram as the FORWARD hook sees it.

    IPv4: ``ip_options_compile`` (in ``ip_rcv_finish``) has recorded ``router`` in a
    record-route option with room and bumped the overflow count of a full timestamp option,
    without fixing the header checksum (``ip_forward_options`` does that after the hook);
    then ``ip_decrease_ttl`` has decremented the TTL, adjusting the (possibly stale)
    checksum incrementally. IPv6: ``ip6_forward`` has decremented the hop limit.
    """
    b = bytearray(raw)
    if b[0] >> 4 == 6:
        b[7] -= 1
        return bytes(b)
    ihl = (b[0] & 15) << 2
    i = 20
    while i < ihl and b[i] != 0:
        if b[i] == 1:
            i += 1
            continue
        t, n = b[i], b[i + 1]
        if t == 7 and b[i + 2] <= n:
            b[i + b[i + 2] - 1:i + b[i + 2] + 3] = router
            b[i + 2] += 4
        elif t == 0x44 and b[i + 2] > n:
            b[i + 3] += 0x10
        i += n
    c = int.from_bytes(b[10:12], "big") + 0x0100
    c = (c & 0xFFFF) + (c >> 16)
    b[10:12] = (0 if c == 0xFFFF else c).to_bytes(2, "big")
    b[8] -= 1
    return bytes(b)


def view(raw: bytes, hook: int = NF_INET_FORWARD) -> Packet:
    """A Packet of the datagram as ``hook`` sees it (decode_ip refuses a stale header
    checksum, which is what FORWARD sees after an option was filled in)."""
    buf = at_forward(raw) if hook == NF_INET_FORWARD else raw
    try:
        return decode_ip(buf)
    except ParseError:
        ihl = (buf[0] & 15) << 2
        return Packet(buf, 2, buf[12:16], buf[16:20], buf[9], ihl)


def fwd(raw: bytes) -> Packet:
    return view(raw)


# ---------------------------------------------------------------------------------------
# Golden datagrams observed on Linux 6.18 (client -> fw FORWARD REJECT -> client).

# UDP 198.51.100.2:5000 -> 203.0.113.2:1001, TOS 0xff, 10 bytes payload; sent:
G_UDP_TOS = bytes.fromhex("45ff00260309000040111087c6336402cb007102138803e9001227c6"
                          "78787878787878787878")
# --reject-with icmp-net-unreachable; the kernel's reply (IP ID 0x9fcf, no DF, TOS 0xde):
G_UDP_TOS_REPLY = bytes.fromhex(
    "45de00429fcf0000400185a3c6336401c63364020300635c0000000045ff0026030900003f111187c633"
    "6402cb007102138803e9001227c678787878787878787878")
# TCP SYN seq 1000 -> :80, TOS 0x0b, DF; --reject-with tcp-reset:
G_SYN = bytes.fromhex("450b0028000140004006d48bc6336402cb00710213880050000003e800000000"
                      "5002200011ea0000")
G_SYN_RST = bytes.fromhex("45000028000040004006d497cb007102c63364020050138800000000000003e9"
                          "5014000031d70000")
# TCP PSH/ACK seq 1000 ack 5555 with 3 bytes:
G_PSHACK = bytes.fromhex("4500002b0001000040061494c6336402cb00710213880050000003e8000015b3"
                         "5018200037bb0000616263")
G_PSHACK_RST = bytes.fromhex("45000028000040004006d497cb007102c633640200501388000015b300000000"
                             "50040000201d0000")
# IPv6 TCP SYN seq 1000 -> [2001:db8:2::2]:80; tcp-reset:
G6_SYN = bytes.fromhex("600000000014064020010db800010000000000000000000220010db80002000000"
                       "0000000000000213880050000003e800000000500220001caa0000")
G6_SYN_RST = bytes.fromhex("600000000014064020010db800020000000000000000000220010db800010000"
                           "00000000000000020050138800000000000003e9501400003c970000")


def test_golden_icmp_v4() -> None:
    pkt = fwd(G_UDP_TOS)
    r = reject_ipv4(pkt, "icmp-net-unreachable", src_addr=A_FW4, ipid=0x9FCF)
    assert r.data == G_UDP_TOS_REPLY


def test_golden_rst_v4() -> None:
    assert reject_ipv4(fwd(G_SYN), "tcp-reset").data == G_SYN_RST
    assert reject_ipv4(fwd(G_PSHACK), "tcp-reset").data == G_PSHACK_RST


def test_golden_rst_v6() -> None:
    assert reject_ipv6(fwd(G6_SYN), "tcp-reset").data == G6_SYN_RST


# ---------------------------------------------------------------------------------------
# Builders for unit tests (scapy is fine in tests)

def _scapy() -> Any:
    return pytest.importorskip("scapy.all")


def v4(payload: Any, **ip: Any) -> bytes:
    s = _scapy()
    return bytes(s.IP(src=ip.pop("src", C4), dst=ip.pop("dst", S4), **ip) / payload)


def v6(payload: Any, **ip: Any) -> bytes:
    s = _scapy()
    return bytes(s.IPv6(src=ip.pop("src", C6), dst=ip.pop("dst", S6), **ip) / payload)


def check_v4_datagram(data: bytes) -> None:
    assert inet_checksum(data, 0, 20 + ((data[0] & 15) - 5) * 4) == 0
    ihl = (data[0] & 15) << 2
    assert int.from_bytes(data[2:4], "big") == len(data)
    if data[9] == 1:
        assert inet_checksum(data, ihl) == 0
    else:
        assert l4_checksum_ok(data, ihl, data[12:16], data[16:20], data[9])


def check_v6_datagram(data: bytes) -> None:
    assert int.from_bytes(data[4:6], "big") == len(data) - 40
    assert l4_checksum_ok(data, 40, data[8:24], data[24:40], data[6])


def test_icmp_v4_fields_and_quote_limit() -> None:
    s = _scapy()
    raw = v4(s.UDP(sport=1, dport=2) / (b"x" * 1400), tos=0x0B)
    r = reject_ipv4(decode_ip(raw), "icmp-admin-prohibited", src_addr=A_FW4, ipid=7)
    assert r.data is not None
    d = r.data
    check_v4_datagram(d)
    assert len(d) == 576                            # 20 + 8 + 548 quoted
    assert d[1] == 0xCA                             # (0x0b & 0x1e) | 0xc0
    assert d[6:8] == b"\x00\x00" and d[8] == 64 and d[4:6] == b"\x00\x07"
    assert d[12:16] == A_FW4 and d[16:20] == socket.inet_aton(C4)
    assert d[20:22] == bytes([3, 13])
    assert d[28:] == raw[:548]
    small = reject_ipv4(decode_ip(raw), src_addr=A_FW4, mtu=300).data
    assert small is not None and len(small) == 300
    assert reject_ipv4(decode_ip(raw), src_addr=A_FW4, mtu=48).reason is not None


@pytest.mark.parametrize("name", sorted(REJECT_WITH_V4))
def test_every_v4_type_builds_valid_datagrams(name: str) -> None:
    s = _scapy()
    raw = v4(s.TCP(sport=1234, dport=80, flags="S", seq=5) / b"abc")
    r = reject_ipv4(decode_ip(raw), name, src_addr=A_FW4)
    assert r.data is not None
    check_v4_datagram(r.data)
    if REJECT_WITH_V4[name] >= 0:
        assert r.data[20] == 3 and r.data[21] == REJECT_WITH_V4[name]
    else:
        assert r.data[33] == 0x14                   # RST|ACK


@pytest.mark.parametrize("name", sorted(REJECT_WITH_V6))
def test_every_v6_type_builds_valid_datagrams(name: str) -> None:
    s = _scapy()
    raw = v6(s.TCP(sport=1234, dport=80, flags="S", seq=5) / b"abc")
    r = reject_ipv6(decode_ip(raw), name, src_addr=A_FW6)
    assert r.data is not None
    check_v6_datagram(r.data)
    if REJECT_WITH_V6[name] >= 0:
        assert r.data[40] == 1 and r.data[41] == REJECT_WITH_V6[name]
        assert r.data[8:24] == A_FW6
    else:
        assert r.data[53] == 0x14


def test_icmp_v6_quote_limit_and_fields() -> None:
    s = _scapy()
    raw = v6(s.UDP(sport=1, dport=2) / (b"y" * 1400), tc=0xFF, fl=0x12345)
    d = reject_ipv6(decode_ip(raw), src_addr=A_FW6, flowlabel=0xABCDE).data
    assert d is not None
    assert len(d) == 1280 and d[48:] == raw[:1232]
    assert d[:4] == bytes.fromhex("600abcde")      # traffic class 0, our flow label
    check_v6_datagram(d)


@pytest.mark.parametrize("flags,seq,ack,payload,exp", [
    ("S", 1000, 0, b"", (0, 1001, 0x14)),
    ("SF", 1000, 0, b"ab", (0, 1004, 0x14)),
    ("F", 0xFFFFFFFF, 0, b"", (0, 0, 0x14)),        # wraps
    ("A", 1, 77, b"", (77, 0, 0x04)),
    ("PA", 1, 0xFFFFFFFF, b"abc", (0xFFFFFFFF, 0, 0x04)),
    ("", 10, 99, b"abcd", (0, 14, 0x14)),           # no flags at all
])
def test_rst_seq_ack(flags: str, seq: int, ack: int, payload: bytes,
                     exp: tuple[int, int, int]) -> None:
    s = _scapy()
    for mk, fn in ((v4, reject_ipv4), (v6, reject_ipv6)):
        raw = mk(s.TCP(sport=4000, dport=22, flags=flags, seq=seq, ack=ack,
                       options=[("MSS", 1400)]) / payload)
        d = fn(decode_ip(raw), "tcp-reset").data
        assert d is not None
        off = 20 if mk is v4 else 40
        assert int.from_bytes(d[off + 4:off + 8], "big") == exp[0]
        assert int.from_bytes(d[off + 8:off + 12], "big") == exp[1]
        assert d[off + 13] == exp[2] and d[off + 12] == 0x50
        assert d[off:off + 2] == (22).to_bytes(2, "big")
        assert d[off + 14:off + 16] == bytes(2) and d[off + 18:off + 20] == bytes(2)
        (check_v4_datagram if mk is v4 else check_v6_datagram)(d)


def test_rr_option_is_echoed_with_our_address() -> None:
    s = _scapy()
    # as FORWARD sees it: fw's address already recorded in slot 1, pointer 8, room for one
    raw = v4(s.UDP(sport=1, dport=2),
             options=[s.IPOption_RR(pointer=8, routers=[FW4, "0.0.0.0"])])
    d = reject_ipv4(decode_ip(raw), src_addr=A_FW4).data
    assert d is not None and d[0] == 0x48
    assert d[20:32] == bytes([7, 11, 12]) + A_FW4 + A_FW4 + b"\x00"
    check_v4_datagram(d)
    full = v4(s.UDP(sport=1, dport=2), options=[s.IPOption_RR(pointer=12,
                                                              routers=[FW4, FW4])])
    d = reject_ipv4(decode_ip(full), src_addr=A_FW4).data
    assert d is not None and d[20:32] == bytes([7, 11, 12]) + A_FW4 + A_FW4 + b"\x00"
    nop = v4(s.UDP(sport=1, dport=2), options=[s.IPOption_NOP()] * 4)
    d = reject_ipv4(decode_ip(nop), src_addr=A_FW4).data
    assert d is not None and d[0] == 0x45 and d[28:] == nop


def test_stale_header_checksum_after_record_route_means_silence() -> None:
    s = _scapy()
    raw = v4(s.UDP(sport=1, dport=2) / b"x", options=[s.IPOption_RR(routers=["0.0.0.0"])])
    pkt = view(raw)                                 # RR filled in, header checksum stale
    assert inet_checksum(pkt.buf, 0, 24) != 0
    for with_ in ("icmp-port-unreachable", "tcp-reset"):
        r = reject_ipv4(pkt, with_, src_addr=A_FW4)
        assert r.data is None and r.reason is not None
    r = reject_ipv4(view(v4(s.UDP(sport=1, dport=2, chksum=0) / b"x",
                            options=[s.IPOption_RR(routers=["0.0.0.0"])])), src_addr=A_FW4)
    assert r.data is not None and r.data[20:28] == bytes([7, 7, 8]) + A_FW4 + b"\0"


def test_unmodelled_option_echo_raises() -> None:
    s = _scapy()
    ts = v4(s.UDP(sport=1, dport=2, chksum=0),
            options=[s.IPOption(b"\x44\x0c\x05\x00" + bytes(8))])   # timestamp with room
    with pytest.raises(NotImplementedError):
        reject_ipv4(decode_ip(ts), src_addr=A_FW4)


# ---------------------------------------------------------------------------------------
# No-send cases

def _bad_csum(raw: bytes, at: int) -> bytes:
    b = bytearray(raw)
    b[at] ^= 0x55
    return bytes(b)


def nosend_cases() -> list[tuple[str, str, bytes, str]]:
    s = _scapy()
    udp4 = v4(s.UDP(sport=5000, dport=1010) / b"data")
    tcp4 = v4(s.TCP(sport=5000, dport=80, flags="S"))
    udp6 = v6(s.UDP(sport=5000, dport=1010) / b"data")
    tcp6 = v6(s.TCP(sport=5000, dport=80, flags="S"))
    return [
        ("v4 bad udp checksum", "icmp-port-unreachable", _bad_csum(udp4, 26), "checksum"),
        ("v4 bad tcp checksum", "tcp-reset", _bad_csum(tcp4, 36), "checksum"),
        ("v4 bad tcp checksum icmp", "icmp-port-unreachable", _bad_csum(tcp4, 36),
         "checksum"),
        ("v4 rst", "tcp-reset", v4(s.TCP(sport=5000, dport=80, flags="R")), "rst"),
        ("v4 rst-ack", "tcp-reset", v4(s.TCP(sport=5000, dport=80, flags="RA")), "rst"),
        ("v4 udp for tcp-reset", "tcp-reset", udp4, "non-tcp"),
        ("v4 short tcp", "tcp-reset", v4(s.Raw(b"\x13\x88\x00\x50"), proto=6),
         "truncated"),
        ("v4 icmp error", "icmp-host-prohibited",
         v4(s.ICMP(type=3, code=1) / s.IP(src=S4, dst=C4) / s.UDP()), "icmp error"),
        ("v4 icmp time exceeded", "icmp-host-prohibited",
         v4(s.ICMP(type=11) / s.IP(src=S4, dst=C4) / s.UDP()), "icmp error"),
        ("v4 icmp type 19", "icmp-host-prohibited", v4(s.ICMP(type=19)), "icmp error"),
        ("v4 icmp bad checksum", "icmp-host-prohibited",
         _bad_csum(v4(s.ICMP(type=8)), 27), "checksum"),
        ("v4 non-first fragment", "icmp-port-unreachable",
         v4(s.Raw(b"x" * 16), proto=17, frag=10), "fragment"),
        ("v4 non-first fragment rst", "tcp-reset",
         v4(s.Raw(b"x" * 24), proto=6, frag=10), "fragment"),
        ("v4 multicast dst", "icmp-port-unreachable",
         v4(s.UDP(sport=1, dport=2), dst="224.0.0.9"), "multicast"),
        ("v4 broadcast dst rst", "tcp-reset",
         v4(s.TCP(sport=1, dport=2), dst="255.255.255.255"), "broadcast"),
        ("v4 unknown proto, payload sum != 0", "icmp-port-unreachable",
         v4(s.Raw(b"\x01\x02\x03\x04"), proto=253), "checksum"),
        ("v6 bad udp checksum", "icmp6-port-unreachable", _bad_csum(udp6, 46), "checksum"),
        ("v6 bad tcp checksum", "tcp-reset", _bad_csum(tcp6, 56), "checksum"),
        ("v6 rst", "tcp-reset", v6(s.TCP(sport=5000, dport=80, flags="R")), "rst"),
        ("v6 icmpv6 error", "icmp6-port-unreachable",
         v6(s.ICMPv6DestUnreach() / s.IPv6(src=S6, dst=C6) / s.UDP()), "icmpv6 error"),
        ("v6 icmpv6 packet too big", "icmp6-port-unreachable",
         v6(s.ICMPv6PacketTooBig() / s.IPv6(src=S6, dst=C6) / s.UDP()), "icmpv6 error"),
        ("v6 no next header", "icmp6-port-unreachable", v6(b"", nh=59), "transport"),
        ("v6 ext headers only", "icmp6-port-unreachable",
         v6(s.IPv6ExtHdrDestOpt(nh=17)), "transport"),
        ("v6 non-first fragment", "icmp6-port-unreachable",
         v6(s.IPv6ExtHdrFragment(offset=5, nh=17) / (b"z" * 16)), "fragment"),
        ("v6 non-first fragment rst", "tcp-reset",
         v6(s.IPv6ExtHdrFragment(offset=5, nh=6) / (b"z" * 24)), "non-tcp"),
        ("v6 multicast dst", "icmp6-port-unreachable",
         v6(s.UDP(sport=1, dport=2), dst="ff0e::1"), "multicast"),
        ("v6 multicast dst rst", "tcp-reset",
         v6(s.TCP(sport=1, dport=2), dst="ff0e::1"), "unicast"),
        ("v6 unspecified src", "icmp6-port-unreachable",
         v6(s.UDP(sport=1, dport=2), src="::"), "unspecified"),
        ("v6 unspecified src rst", "tcp-reset", v6(s.TCP(sport=1, dport=2), src="::"),
         "unicast"),
        ("v6 udp for tcp-reset", "tcp-reset", udp6, "non-tcp"),
    ]


@pytest.mark.parametrize("case", range(30))
def test_no_send(case: int) -> None:
    name, with_, raw, why = nosend_cases()[case]
    pkt = decode_ip(raw)
    fn = reject_ipv4 if raw[0] >> 4 == 4 else reject_ipv6
    src = A_FW4 if raw[0] >> 4 == 4 else A_FW6
    r = fn(pkt, with_, src_addr=src)
    assert r.data is None, name
    assert not r and not r.sent
    assert r.reason is not None and why in r.reason, (name, r.reason)


def test_no_send_case_count() -> None:
    assert len(nosend_cases()) == 30


def test_sends_when_checksum_is_not_checked() -> None:
    s = _scapy()
    # UDP with checksum 0, UDP-Lite / SCTP / ESP / AH / GRE with garbage: no check
    raws = [v4(s.UDP(sport=1, dport=2, chksum=0) / b"abc"),
            v4(s.Raw(b"\x00\x01\x00\x02\x00\x08\xde\xad" + b"q"), proto=136),
            v4(s.Raw(b"garbage!!!!!"), proto=132),
            v4(s.Raw(b"garbage!!!!!"), proto=50),
            v4(s.Raw(b"\x00\x00\x08\x00garbage!"), proto=47),
            v6(s.UDP(sport=1, dport=2, chksum=0) / b"abc"),
            v6(s.Raw(b"garbage!!!!!"), nh=132)]
    for raw in raws:
        r = reject(decode_ip(raw), src_addr=A_FW4 if raw[0] >> 4 == 4 else A_FW6)
        assert r.data is not None, raw.hex()
    # a bad checksum passes when the skb says CHECKSUM_UNNECESSARY
    bad = _bad_csum(v4(s.TCP(sport=5000, dport=80, flags="S")), 36)
    assert reject_ipv4(decode_ip(bad), "tcp-reset", csum_unnecessary=True)
    assert reject_ipv4(decode_ip(bad), "tcp-reset").reason == "bad tcp checksum"
    # unknown protocol whose bytes sum to 0xffff (nf_ip_checksum without pseudo-header)
    assert reject_ipv4(decode_ip(v4(s.Raw(b"\xff\xff"), proto=253)), src_addr=A_FW4)
    # icmp informational messages do get an error
    for t in (0, 8, 13, 14, 15, 16, 17, 18):
        assert reject_ipv4(decode_ip(v4(s.ICMP(type=t))), src_addr=A_FW4), t
    # link-level broadcast / multicast
    r = reject_ipv4(decode_ip(v4(s.UDP(sport=1, dport=2))), src_addr=A_FW4,
                    link_unicast=False)
    assert r.reason is not None and "link" in r.reason


def test_output_hook_does_not_check_checksums() -> None:
    s = _scapy()
    bad = _bad_csum(v4(s.UDP(sport=5000, dport=9) / b"data", src=FW4, dst=C4), 26)
    assert reject_ipv4(decode_ip(bad), hook=NF_INET_LOCAL_OUT, src_addr=A_FW4)
    assert not reject_ipv4(decode_ip(bad), hook=NF_INET_LOCAL_OUT, src_addr=A_FW4,
                           csum_unnecessary=False)
    bad6 = _bad_csum(v6(s.UDP(sport=5000, dport=9) / b"data", src=FW6, dst=C6), 46)
    assert reject_ipv6(decode_ip(bad6), hook=NF_INET_LOCAL_OUT, src_addr=A_FW6)


def test_src_addr_defaults_and_errors() -> None:
    s = _scapy()
    raw = v4(s.UDP(sport=1, dport=2), dst=FW4)
    d = reject_ipv4(decode_ip(raw), hook=NF_INET_LOCAL_IN).data
    assert d is not None and d[12:16] == A_FW4
    with pytest.raises(ValueError):
        reject_ipv4(decode_ip(raw), hook=NF_INET_FORWARD)
    with pytest.raises(ValueError):
        reject_ipv4(decode_ip(raw), "icmp6-no-route", src_addr=A_FW4)
    with pytest.raises(ValueError):
        reject_ipv4(decode_ip(raw), src_addr=A_FW4, hook=0)
    raw6 = v6(s.UDP(sport=1, dport=2), dst=FW6)
    d = reject_ipv6(decode_ip(raw6), hook=NF_INET_LOCAL_IN).data
    assert d is not None and d[8:24] == A_FW6
    with pytest.raises(ValueError):
        reject_ipv6(decode_ip(raw6))
    assert repr(RejectResult(None, "x")) == "RejectResult(None, reason='x')"


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=700), tos=st.integers(0, 255), ttl=st.integers(1, 255),
       proto=st.sampled_from([6, 17]), flags=st.integers(0, 255),
       seq=st.integers(0, 2**32 - 1), ack=st.integers(0, 2**32 - 1))
def test_property_checksums(payload: bytes, tos: int, ttl: int, proto: int, flags: int,
                            seq: int, ack: int) -> None:
    s = _scapy()
    l4 = (s.TCP(sport=1, dport=2, flags=flags & ~0x04, seq=seq, ack=ack) if proto == 6
          else s.UDP(sport=1, dport=2))
    for raw in (v4(l4 / payload, tos=tos, ttl=ttl), v6(l4 / payload, hlim=ttl)):
        pkt = decode_ip(raw)
        if raw[0] >> 4 == 4:
            for name in ("icmp-port-unreachable", "tcp-reset"):
                r = reject_ipv4(pkt, name, src_addr=A_FW4, ttl=ttl)
                if r.data is not None:
                    check_v4_datagram(r.data)
                    assert len(r.data) <= 576
                else:
                    assert name == "tcp-reset" and proto == 17
        else:
            for name in ("icmp6-port-unreachable", "tcp-reset"):
                r = reject_ipv6(pkt, name, src_addr=A_FW6, hop_limit=ttl)
                if r.data is not None:
                    check_v6_datagram(r.data)
                    assert len(r.data) <= 1280
                else:
                    assert name == "tcp-reset" and proto == 17


# ---------------------------------------------------------------------------------------
# Live differential test against the kernel

def _lab_reason() -> str | None:
    try:
        from statewall.lab.netns import lab_available
    except Exception as exc:  # pragma: no cover
        return f"lab not importable: {exc}"
    ok, why = lab_available()
    return None if ok else why


LAB_SKIP = _lab_reason()
live = pytest.mark.skipif(LAB_SKIP is not None,
                          reason=f"live kernel comparison needs the lab: {LAB_SKIP}")

V4_TYPES = ["icmp-net-unreachable", "icmp-host-unreachable", "icmp-proto-unreachable",
            "icmp-port-unreachable", "icmp-net-prohibited", "icmp-host-prohibited",
            "icmp-admin-prohibited"]
V6_TYPES = ["icmp6-no-route", "icmp6-adm-prohibited", "icmp6-addr-unreachable",
            "icmp6-port-unreachable", "icmp6-policy-fail", "icmp6-reject-route"]

FW_RULES4 = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             *(f"-A FORWARD -p udp --dport {1000 + i} -j REJECT --reject-with {t}"
               for i, t in enumerate(V4_TYPES)),
             "-A FORWARD -p tcp --dport 80 -j REJECT --reject-with tcp-reset",
             "-A FORWARD -p tcp --dport 81 -j REJECT",
             "-A FORWARD -p icmp -j REJECT --reject-with icmp-host-prohibited",
             "-A FORWARD -j REJECT",
             "-A INPUT -p udp --dport 2000 -j REJECT --reject-with icmp-admin-prohibited",
             "-A INPUT -p tcp --dport 2001 -j REJECT --reject-with tcp-reset",
             "COMMIT"]
FW_RULES6 = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             *(f"-A FORWARD -p udp --dport {1000 + i} -j REJECT --reject-with {t}"
               for i, t in enumerate(V6_TYPES)),
             "-A FORWARD -p tcp --dport 80 -j REJECT --reject-with tcp-reset",
             "-A FORWARD -p tcp --dport 81 -j REJECT",
             "-A FORWARD -j REJECT",
             "-A INPUT -p udp --dport 2000 -j REJECT --reject-with icmp6-policy-fail",
             "-A INPUT -p tcp --dport 2001 -j REJECT --reject-with tcp-reset",
             "COMMIT"]


class Lab:
    """client -- fw -- server with REJECT rules in fw; send from the client, catch replies."""

    def __init__(self) -> None:
        from statewall.lab.capture import Capture
        from statewall.lab.netns import Topology
        self.topo = Topology()
        self.topo.up()
        try:
            self.topo.sysctl("fw", {"net.ipv4.icmp_ratelimit": 0,
                                    "net.ipv6.icmp.ratelimit": 0,
                                    "net.ipv4.icmp_msgs_per_sec": 100000,
                                    "net.ipv4.icmp_msgs_burst": 100000})
            self.topo.run("fw", ["iptables-restore"], input="\n".join(FW_RULES4) + "\n")
            self.topo.run("fw", ["ip6tables-restore"], input="\n".join(FW_RULES6) + "\n")
            self.inj = self.topo.socket("client", socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.inj.bind(("eth0", 0))
            self.cap = Capture(self.topo.socket("client", *Capture.open_socket_args()),
                               ("eth0",)).start()
        except BaseException:
            self.topo.down()
            raise

    def close(self) -> None:
        try:
            self.cap.stop()
            self.inj.close()
        finally:
            self.topo.down()

    def replies(self, start: int) -> list[bytes]:
        out = []
        for f in self.cap.snapshot()[start:]:
            l3 = f.l3
            if f.outgoing or not l3:
                continue
            # only what fw sends to the client (not MLD reports, not neighbour discovery)
            if l3[0] >> 4 == 4 and l3[16:20] == socket.inet_aton(C4):
                out.append(l3)
            elif l3[0] >> 4 == 6 and l3[24:40] == socket.inet_pton(socket.AF_INET6, C6) \
                    and not (l3[6] == 58 and len(l3) > 40 and l3[40] in (133, 134, 135, 136)):
                out.append(l3)
        return out

    def answers_besides_sentinel(self, raw: bytes) -> list[str]:
        """Send ``raw`` and then a sentinel that fw answers; once the sentinel's answer is in,
        return (hex) everything else fw sent to the client."""
        s = _scapy()
        v = raw[0] >> 4
        sentinel = (v4(s.UDP(sport=7, dport=1003) / b"sentinel") if v == 4
                    else v6(s.UDP(sport=7, dport=1003) / b"sentinel"))
        eth = bytes(s.Ether(src="02:00:00:00:01:02", dst="02:00:00:00:01:01",
                            type=0x0800 if v == 4 else 0x86DD))
        start = self.cap.count()
        self.inj.send(eth + raw)
        self.inj.send(eth + sentinel)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not any(b"sentinel" in g
                                                      for g in self.replies(start)):
            time.sleep(0.005)
        time.sleep(0.02)
        got = self.replies(start)
        assert any(b"sentinel" in g for g in got), "sentinel not answered"
        return [g.hex() for g in got if b"sentinel" not in g]

    def send(self, raw: bytes, wait_for: int = 1, timeout: float = 2.0) -> list[bytes]:
        start = self.cap.count()
        ether = _scapy().Ether(src="02:00:00:00:01:02", dst="02:00:00:00:01:01",
                      type=0x0800 if raw[0] >> 4 == 4 else 0x86DD)
        self.inj.send(bytes(ether) + raw)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.replies(start)
            if len(got) >= wait_for:
                time.sleep(0.02)
                return self.replies(start)
            time.sleep(0.005)
        return self.replies(start)


@pytest.fixture(scope="module")
def lab() -> Any:
    _scapy()
    lab_ = Lab()
    try:
        yield lab_
    finally:
        lab_.close()
        assert not lab_.topo.leftover()


def _expect(raw: bytes, with_: str, got: bytes, hook: int) -> RejectResult:
    """Our datagram for ``raw``, with the kernel's random fields copied from ``got``."""
    pkt = view(raw, hook)
    if raw[0] >> 4 == 4:
        ipid = int.from_bytes(got[4:6], "big")
        return reject_ipv4(pkt, with_, hook, src_addr=A_FW4, ipid=ipid)
    flow = int.from_bytes(got[0:4], "big") & 0xFFFFF
    return reject_ipv6(pkt, with_, hook, src_addr=A_FW6, flowlabel=flow)


def live_cases() -> list[tuple[str, bytes, str, int]]:
    """(name, datagram sent by the client, --reject-with that fw's rule uses, hook)."""
    s = _scapy()
    F, IN = NF_INET_FORWARD, NF_INET_LOCAL_IN
    cases: list[tuple[str, bytes, str, int]] = []
    for i, t in enumerate(V4_TYPES):
        cases.append((f"v4 {t}", v4(s.UDP(sport=5000, dport=1000 + i) / (b"u" * 20),
                                    tos=0x2B, id=100 + i), t, F))
    for i, t in enumerate(V6_TYPES):
        cases.append((f"v6 {t}", v6(s.UDP(sport=5000, dport=1000 + i) / (b"u" * 20),
                                    tc=0x2B, fl=0x54321), t, F))
    cases += [
        ("v4 big udp, quote capped at 576", v4(s.UDP(sport=5, dport=9) / (b"b" * 1200),
                                                flags="DF"), "icmp-port-unreachable", F),
        ("v4 tos 0xff", v4(s.UDP(sport=5, dport=1003) / b"t", tos=0xFF),
         "icmp-port-unreachable", F),
        ("v4 udp zero checksum", v4(s.UDP(sport=5, dport=9, chksum=0) / b"zzz"),
         "icmp-port-unreachable", F),
        ("v4 tcp syn -> icmp", v4(s.TCP(sport=5, dport=81, flags="S")),
         "icmp-port-unreachable", F),
        ("v4 icmp echo", v4(s.ICMP(type=8, id=3, seq=4) / b"ping"), "icmp-host-prohibited", F),
        ("v4 icmp timestamp", v4(s.ICMP(type=13)), "icmp-host-prohibited", F),
        ("v4 udplite garbage", v4(s.Raw(b"\x00\x01\x00\x02\x00\x08\xde\xad"), proto=136),
         "icmp-port-unreachable", F),
        ("v4 sctp garbage", v4(s.Raw(b"garbagegarbage"), proto=132),
         "icmp-port-unreachable", F),
        ("v4 proto 253, bytes summing to 0xffff", v4(s.Raw(b"\xff\xff"), proto=253),
         "icmp-port-unreachable", F),
        ("v4 gre garbage", v4(s.Raw(b"garbagegarbage"), proto=47), "icmp-port-unreachable", F),
        ("v4 ah garbage", v4(s.Raw(b"garbagegarbage"), proto=51), "icmp-port-unreachable", F),
        ("v6 sctp garbage", v6(s.Raw(b"garbagegarbage"), nh=132), "icmp6-port-unreachable",
         F),
        ("v6 esp garbage", v6(s.Raw(b"garbagegarbage"), nh=50), "icmp6-port-unreachable", F),
        ("v4 nop options", v4(s.UDP(sport=5, dport=9), options=[s.IPOption_NOP()] * 4),
         "icmp-port-unreachable", F),
        # record route: only answered when the checksum is not checked (see LIVE_SILENT)
        ("v4 record route, udp checksum 0",
         v4(s.UDP(sport=5, dport=9, chksum=0), options=[s.IPOption_RR(routers=["0.0.0.0"] * 3)]),
         "icmp-port-unreachable", F),
        ("v4 record route full after fw, esp",
         v4(s.Raw(b"\0\0\0\1abcdefgh"), proto=50,
            options=[s.IPOption_RR(routers=["0.0.0.0"])]), "icmp-port-unreachable", F),
        ("v4 nop + record route + full timestamp, udp checksum 0",
         v4(s.UDP(sport=5, dport=9, chksum=0),
            options=[s.IPOption_NOP(), s.IPOption_Timestamp(flg=0, timestamp=0),
                     s.IPOption_RR(routers=["0.0.0.0"] * 2)]), "icmp-port-unreachable", F),
        ("v4 syn", v4(s.TCP(sport=4000, dport=80, flags="S", seq=1234,
                            options=[("MSS", 1460)])), "tcp-reset", F),
        ("v4 syn+data+fin", v4(s.TCP(sport=4000, dport=80, flags="SF", seq=0xFFFFFFF0)
                               / b"0123456789abcdefXY"), "tcp-reset", F),
        ("v4 ack", v4(s.TCP(sport=4000, dport=80, flags="A", seq=5, ack=0xDEADBEEF),
                      tos=0x10, ttl=9), "tcp-reset", F),
        ("v4 input udp", v4(s.UDP(sport=5, dport=2000) / b"in", dst=FW4),
         "icmp-admin-prohibited", IN),
        ("v4 input tcp", v4(s.TCP(sport=5, dport=2001, flags="S", seq=9), dst=FW4),
         "tcp-reset", IN),
        ("v6 big udp, quote capped at 1280", v6(s.UDP(sport=5, dport=9) / (b"b" * 1400)),
         "icmp6-port-unreachable", F),
        ("v6 udp zero checksum", v6(s.UDP(sport=5, dport=9, chksum=0) / b"zzz"),
         "icmp6-port-unreachable", F),
        ("v6 tcp syn -> icmp6", v6(s.TCP(sport=5, dport=81, flags="S")),
         "icmp6-port-unreachable", F),
        ("v6 echo request", v6(s.ICMPv6EchoRequest(id=1, seq=2) / b"ping"),
         "icmp6-port-unreachable", F),
        ("v6 hop-by-hop + dstopts + udp",
         v6(s.IPv6ExtHdrHopByHop() / s.IPv6ExtHdrDestOpt() / s.UDP(sport=5, dport=9)),
         "icmp6-port-unreachable", F),
        ("v6 first fragment (checksum covers all)",
         v6(s.IPv6ExtHdrFragment(m=0, id=7) / s.UDP(sport=5, dport=9) / b"frag"),
         "icmp6-port-unreachable", F),
        ("v6 syn", v6(s.TCP(sport=4000, dport=80, flags="S", seq=77)), "tcp-reset", F),
        ("v6 ack+data", v6(s.TCP(sport=4000, dport=80, flags="PA", seq=1, ack=2) / b"xyz",
                           tc=0xB8, fl=99), "tcp-reset", F),
        ("v6 fin via dstopts", v6(s.IPv6ExtHdrDestOpt() / s.TCP(sport=4000, dport=80,
                                                                flags="F", seq=10)),
         "tcp-reset", F),
        ("v6 input udp", v6(s.UDP(sport=5, dport=2000) / b"in", dst=FW6),
         "icmp6-policy-fail", IN),
        ("v6 input tcp", v6(s.TCP(sport=5, dport=2001, flags="S", seq=9), dst=FW6),
         "tcp-reset", IN),
    ]
    return cases


LIVE_N = 46


def test_live_case_count() -> None:
    assert len(live_cases()) == LIVE_N


@live
@pytest.mark.parametrize("case", range(LIVE_N), ids=lambda i: str(i))
def test_live_reply_matches_kernel(lab: Any, case: int) -> None:
    name, raw, with_, hook = live_cases()[case]
    got = lab.send(raw)
    assert len(got) == 1, f"{name}: kernel sent {len(got)} datagrams"
    exp = _expect(raw, with_, got[0], hook)
    assert exp.data is not None, f"{name}: we send nothing ({exp.reason})"
    assert exp.data.hex() == got[0].hex(), name


@live
@pytest.mark.parametrize("case", range(30))
def test_live_no_send_matches_kernel(lab: Any, case: int) -> None:
    s = _scapy()
    name, with_, raw, _why = nosend_cases()[case]
    v = raw[0] >> 4
    if "multicast dst" in name or "broadcast" in name or "unspecified src" in name:
        pytest.skip("never reaches FORWARD: routing drops it first")
    if _rule_for(raw) != with_:
        pytest.skip(f"fw's ruleset answers this packet with {_rule_for(raw)}, not {with_}")
    assert _our_verdict_for_fw_rules(raw) is None, name
    assert lab.answers_besides_sentinel(raw) == [], f"{name}: kernel answered"


def live_silent() -> list[tuple[str, bytes]]:
    """Packets the kernel does not answer under fw's rules (not in nosend_cases)."""
    s = _scapy()
    rr = [s.IPOption_RR(routers=["0.0.0.0"] * 3)]
    return [
        # the header checksum is stale at FORWARD once the RR option is filled in, and
        # nf_ip_checksum sums the IP header too
        ("v4 record route, udp", v4(s.UDP(sport=5, dport=9) / b"x", options=rr)),
        ("v4 record route, tcp-reset", v4(s.TCP(sport=5, dport=80, flags="S"), options=rr)),
        ("v4 record route, icmp echo", v4(s.ICMP(type=8), options=rr)),
        ("v4 dccp (checked since 6.16 dropped DCCP from nf_reject_verify_csum)",
         v4(s.Raw(b"garbagegarbage"), proto=33)),
        ("v4 first fragment (its checksum covers the whole datagram)",
         bytes(s.fragment(s.IP(src=C4, dst=S4) / s.UDP(sport=5, dport=9) / (b"f" * 100),
                          fragsize=24)[0])),
    ]


@live
@pytest.mark.parametrize("case", range(5))
def test_live_silent_matches_kernel(lab: Any, case: int) -> None:
    name, raw = live_silent()[case]
    pkt = view(raw)
    r = reject_ipv4(pkt, _rule_for(raw), src_addr=A_FW4)
    assert r.data is None and r.reason is not None and "checksum" in r.reason, name
    assert lab.answers_besides_sentinel(raw) == [], f"{name}: kernel answered"


def _rule_for(raw: bytes) -> str:
    """The --reject-with of the first fw FORWARD rule ``raw`` matches."""
    pkt = decode_ip(raw)
    v = raw[0] >> 4
    frag = pkt.fragoff != 0
    types = V4_TYPES if v == 4 else V6_TYPES
    if pkt.proto == 17 and not frag and 1000 <= pkt.dport < 1000 + len(types):
        return types[pkt.dport - 1000]
    if pkt.proto == 6 and not frag and pkt.dport == 80 and not pkt.l4err:
        return "tcp-reset"
    if v == 4 and pkt.proto == 1:
        return "icmp-host-prohibited"
    return "icmp-port-unreachable" if v == 4 else "icmp6-port-unreachable"


def _our_verdict_for_fw_rules(raw: bytes) -> bytes | None:
    fn = reject_ipv4 if raw[0] >> 4 == 4 else reject_ipv6
    src = A_FW4 if raw[0] >> 4 == 4 else A_FW6
    return fn(decode_ip(at_forward(raw)), _rule_for(raw),
              src_addr=src).data
