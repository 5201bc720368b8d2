"""UDP, ICMP, ICMPv6 and generic tracking through the core, rule by rule (kernel semantics
from nf_conntrack_proto_udp.c / _icmp.c / _icmpv6.c / core; see kernel-conntrack.md)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6DestUnreach, IPv6
from scapy.packet import raw

from flows import C4, C6, FW, S4, S6, icmp, tcp, udp
from statewall.conntrack.conn import IPS_ASSURED, IPS_SEEN_REPLY


def test_udp_unreplied_then_reply_then_stream():
    fw = FW()
    r = fw.send(udp())
    assert (r.verdict, r.state) == ("ACCEPT", "NEW")
    assert r.line == (f"udp      17 30 src={C4} dst={S4} sport=1032 dport=53 [UNREPLIED] "
                      f"src={S4} dst={C4} sport=53 dport=1032 mark=0 use=1")
    assert fw.table(11)[0].startswith("udp      17 19 ")
    r = fw.send(udp(S4, C4, 53, 1032))
    assert r.state == "ESTABLISHED" and r.ctinfo == 3
    # the first reply keeps the short timeout and no ASSURED (SEEN_REPLY is set after it)
    assert r.line.startswith("udp      17 30 ") and "[UNREPLIED]" not in r.line
    assert "[ASSURED]" not in r.line
    r = fw.send(udp(), dt=3)
    assert r.state == "ESTABLISHED" and r.ctinfo == 0
    assert r.line.startswith("udp      17 120 ") and r.line.endswith("[ASSURED] mark=0 use=1")


def test_udp_stream_needs_two_seconds():
    fw = FW()
    fw.send(udp())
    fw.send(udp(S4, C4, 53, 1032), dt=0.5)
    r = fw.send(udp(), dt=0.5)          # 1 s after the first packet: not a stream yet
    assert r.line.startswith("udp      17 30 ") and "[ASSURED]" not in r.line
    r = fw.send(udp(), dt=1.5)          # 2.5 s after the first packet
    assert r.line.startswith("udp      17 120 ") and "[ASSURED]" in r.line


def test_udp_expiry_and_lowered_timeout():
    fw = FW(nf_conntrack_udp_timeout=3)
    fw.send(udp())
    assert len(fw.table(2.9)) == 1
    assert fw.table(0.2) == []
    r = fw.send(udp(), dt=1)
    assert r.state == "NEW"
    kinds = [e[2].split()[0] for e in fw.events]
    assert kinds == ["[NEW]", "[DESTROY]", "[NEW]"]


def test_udp_bad_checksum_invalid_only_at_prerouting():
    p = bytearray(raw(udp()))
    p[26] ^= 0xFF                        # corrupt the UDP checksum
    fw = FW()
    r = fw.send(bytes(p))
    assert r.state == "INVALID" and r.reason == "bad checksum" and fw.table() == []
    r = fw.send(bytes(p), hook=3)        # locally generated: not checked
    assert r.state == "NEW"
    fw2 = FW(nf_conntrack_checksum=0)
    assert fw2.send(bytes(p)).state == "NEW"


def test_udp_zero_checksum_and_bad_length():
    p = bytearray(raw(udp()))
    p[26] = p[27] = 0
    assert FW().send(bytes(p)).state == "NEW"
    q = bytearray(raw(udp()))
    q[24:26] = (200).to_bytes(2, "big")  # UDP length beyond the datagram
    r = FW().send(bytes(q))
    assert r.state == "INVALID" and r.reason == "truncated/malformed packet"


def test_icmp_echo_pair():
    fw = FW()
    r = fw.send(icmp())
    assert r.state == "NEW"
    assert r.line == (f"icmp     1 30 src={C4} dst={S4} type=8 code=0 id=7 [UNREPLIED] "
                      f"src={S4} dst={C4} type=0 code=0 id=7 mark=0 use=1")
    r = fw.send(icmp(S4, C4, type=0), dt=1)
    assert r.state == "ESTABLISHED" and r.ctinfo == 3
    assert r.line.startswith("icmp     1 30 ") and "[UNREPLIED]" not in r.line
    # the entry is not removed on reply (2.4 did), and never ASSURED
    assert len(fw.table()) == 1 and not r.ct.status & IPS_ASSURED


def test_icmp_types_that_cannot_start_an_entry():
    fw = FW()
    assert fw.send(icmp(type=0)).state == "INVALID"            # unsolicited echo reply
    assert fw.send(icmp(type=9)).state == "INVALID"            # router advertisement
    r = fw.send(icmp(type=19))
    assert r.state == "INVALID" and r.reason == "invalid icmp type"
    for t in (13, 15, 17):
        assert fw.send(icmp(type=t, id=t)).state == "NEW"
    assert len(fw.table()) == 3


def test_icmp_error_related_both_directions():
    fw = FW()
    q = udp()
    fw.send(q)
    # the server's stack answers port unreachable about the client's datagram: reply dir
    err = IP(src=S4, dst=C4) / ICMP(type=3, code=3) / raw(q)[:28]
    r = fw.send(err)
    assert r.state == "RELATED" and r.ctinfo == 4
    # an error sent toward the server about a server->client packet: original direction
    rq = udp(S4, C4, 53, 1032)
    err2 = IP(src="192.0.2.9", dst=S4) / ICMP(type=11, code=0) / raw(rq)[:28]
    r = fw.send(err2)
    assert r.state == "RELATED" and r.ctinfo == 1
    # the error neither refreshes nor marks the entry as replied
    assert not r.ct.status & IPS_SEEN_REPLY


def test_icmp_error_wrong_outer_destination_and_unknown():
    fw = FW()
    q = udp()
    fw.send(q)
    bogus = IP(src=S4, dst="192.0.2.77") / ICMP(type=3, code=3) / raw(q)[:28]
    r = fw.send(bogus)
    assert r.state == "INVALID" and "outer daddr" in r.reason
    unknown = IP(src=S4, dst=C4) / ICMP(type=3, code=3) / raw(udp(sport=999))[:28]
    r = fw.send(unknown)
    assert r.state == "INVALID" and r.reason == "no connection for ICMP error"


def test_icmp_error_about_tcp_and_icmp():
    fw = FW()
    syn = tcp()
    fw.send(syn)
    r = fw.send(IP(src="192.0.2.1", dst=C4) / ICMP(type=11) / raw(syn)[:28])
    assert r.state == "RELATED" and r.ctinfo == 4
    ping = icmp(id=99)
    fw.send(ping)
    r = fw.send(IP(src=S4, dst=C4) / ICMP(type=3, code=1) / raw(ping)[:28])
    assert r.state == "RELATED"


def test_icmpv6_untracked_echo_and_error():
    fw = FW()
    r = fw.send(IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=S6))
    assert r.state == "UNTRACKED" and fw.table() == []
    r = fw.send(IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(id=5))
    assert r.state == "NEW"
    assert r.line == (f"icmpv6   58 30 src={C6} dst={S6} type=128 code=0 id=5 [UNREPLIED] "
                      f"src={S6} dst={C6} type=129 code=0 id=5 mark=0 use=1")
    q = udp(C6, S6)
    fw.send(q)
    err = IPv6(src=S6, dst=C6) / ICMPv6DestUnreach(code=4) / raw(q)
    assert fw.send(err).state == "RELATED"


def test_generic_protocol():
    fw = FW()
    r = fw.send(IP(src=C4, dst=S4, proto=50) / (b"\x00" * 16))
    assert r.state == "NEW"
    assert r.line == (f"unknown  50 600 src={C4} dst={S4} [UNREPLIED] src={S4} dst={C4} "
                      "mark=0 use=1")
    r = fw.send(IP(src=S4, dst=C4, proto=50) / (b"\x00" * 16))
    assert r.state == "ESTABLISHED" and r.ctinfo == 3


def test_gre_ipv4_only():
    fw = FW()
    r = fw.send(IP(src=C4, dst=S4, proto=47) / b"\x00\x00\x08\x00")
    assert r.line.startswith("gre      47 30 ") and "srckey=0x0 dstkey=0x0" in r.line
    fw.send(IP(src=S4, dst=C4, proto=47) / b"\x00\x00\x08\x00")
    r = fw.send(IP(src=C4, dst=S4, proto=47) / b"\x00\x00\x08\x00")
    assert r.line.startswith("gre      47 180 ") and "[ASSURED]" in r.line
    r = fw.send(IPv6(src=C6, dst=S6, nh=47) / b"\x00\x00\x86\xdd")
    assert r.state == "INVALID"


def test_linux24_udp_and_icmp():
    fw = FW("linux-2.4")
    fw.send(udp())
    assert fw.table(11) == [f"udp      17 19 src={C4} dst={S4} sport=1032 dport=53 [UNREPLIED] "
                            f"src={S4} dst={C4} sport=53 dport=1032 mark=0 use=1"]
    r = fw.send(udp(S4, C4, 53, 1032))
    assert r.line.startswith("udp      17 30 ") and "[ASSURED]" not in r.line
    r = fw.send(udp(), dt=0.1)           # 2.4: any packet after the reply -> 180 s, ASSURED
    assert r.line.startswith("udp      17 180 ") and "[ASSURED]" in r.line
    fw.send(icmp(id=3))
    fw.send(icmp(S4, C4, type=0, id=3))
    assert not [line for line in fw.table() if line.startswith("icmp")]
