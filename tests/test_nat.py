"""NAT without a kernel: bindings and tuple selection, packet rewriting and checksums, ICMP
errors, helpers (FTP payload rewrite + sequence adjustment, TFTP), MASQUERADE / REDIRECT /
NETMAP address choice, ``replay --write``.  The same behaviours are checked against the
real kernel by the corpus (``corpus/nat_*``, tests/test_kernel_corpus.py) and by
tests/test_nat_kernel.py (the emitted packets, header by header)."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6
from scapy.packet import raw

from flows import dec
from statewall.conntrack.conn import IPS
from statewall.conntrack.format import conntrack_line
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Emitted, Firewall
from statewall.host import HostModel, parse_iface, parse_route
from statewall.nat import core, manip, seqadj, targets
from statewall.nat.forward import forwarded, refragment
from statewall.packet.checksum import inet_checksum, l4_checksum_ok
from statewall.rules.parse import parse_ruleset

C, C2, C3, S, PUB = "198.51.100.2", "198.51.100.3", "198.51.100.4", "203.0.113.2", "203.0.113.1"
HOST = [parse_iface("c0=198.51.100.1/24,2001:db8:1::1/64"),
        parse_iface("s0=203.0.113.1/24,2001:db8:2::1/64")]
CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def nat_rules(*lines: str, filt: str = "") -> str:
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n" + "".join(x + "\n" for x in lines) + "COMMIT\n"
            + filt)


def make(rules4: str, rules6: str | None = None, host: list[Any] | None = None,
         **kw: Any) -> Firewall:
    return Firewall(Settings(), rules4=parse_ruleset(rules4, "t4", 4),
                    rules6=parse_ruleset(rules6, "t6", 6) if rules6 else None,
                    host=HostModel(host or HOST), want_output=True, **kw)


def send(fw: Firewall, p: Any, now: float, iface: str | None = "c0", hook: int = 0) -> Any:
    pkt = dec(p)
    pkt.iface = iface
    return fw.process(pkt, now, hook)


def out_pkt(d: Any) -> Any:
    assert d.verdict == "ACCEPT", d.reason
    assert len(d.out) == 1
    b = d.out[0][1]
    return IPv6(b) if b[0] >> 4 == 6 else IP(b)


def checks_ok(b: bytes) -> bool:
    p = dec(b)
    if p.l3num == 2 and inet_checksum(b, 0, (b[0] & 15) * 4) != 0:
        return False
    proto = -1 if p.proto == 1 else p.proto
    return l4_checksum_ok(b, p.l4off, p.src, p.dst, proto)


def line(fw: Firewall, ct: Any, now: float = 10.0) -> str:
    return conntrack_line(ct, now, fw.tracker.l4[ct.proto])


# -- checksum arithmetic -------------------------------------------------------------------
def test_incremental_checksum_equals_full_and_never_0xffff() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        data = bytearray(rnd.randbytes(rnd.choice((20, 40, 64))))
        data[10:12] = b"\0\0"
        c = inet_checksum(data)
        data[10:12] = c.to_bytes(2, "big")
        i = rnd.randrange(0, len(data) // 2 - 1) * 2
        if i in (8, 10):                 # not the checksum field itself
            continue
        old = bytes(data[i:i + 4])
        new = rnd.randbytes(4) if rnd.random() < 0.9 else b"\0\0\0\0"
        c2 = manip.csum_replace(c, old, new)
        assert c2 != 0xFFFF
        data[i:i + 4] = new
        data[10:12] = c2.to_bytes(2, "big")
        assert inet_checksum(data) == 0


def test_ip_decrease_ttl_is_the_kernels() -> None:
    p = raw(IP(src=C, dst=S, ttl=64) / UDP(sport=1, dport=2))
    b = forwarded(p)
    assert b[8] == 63 and inet_checksum(b, 0, 20) == 0
    # the x86 update: 0xFFFE (little-endian view) becomes 0x0000, 0xFFFF becomes 0x0001
    for le, want in ((0xFFFE, 0x0000), (0xFFFF, 0x0001), (0x1234, 0x1235)):
        buf = bytearray(p)
        buf[10], buf[11] = le & 0xFF, le >> 8
        manip.ip_decrease_ttl(buf)
        assert buf[10] | buf[11] << 8 == want


# -- jhash2 and address choice ----------------------------------------------------------------
def test_jhash2_is_deterministic_and_32_bit() -> None:
    assert core.jhash2((1, 2, 3, 4), 0) == core.jhash2((1, 2, 3, 4), 0)
    assert core.jhash2((1, 2, 3, 4), 0) != core.jhash2((1, 2, 3, 5), 0)
    assert 0 <= core.jhash2((0xFFFFFFFF,) * 4, 0xFFFFFFFF) < 2 ** 32


def test_dnat_address_range_choice_is_the_kernels() -> None:
    """corpus/nat_dnat_portfwd: the kernel's jhash2 choice of address, reproduced."""
    k = json.loads((CORPUS / "nat_dnat_portfwd" / "kernel.json").read_text())
    want = {}
    for entry in k["final"]["conntrack"]:
        f = entry.split()
        kv = [x.split("=", 1) for x in f if "=" in x]
        d = dict(kv[:4])
        if d["dport"] in ("9000", "9001"):
            want[(d["src"], int(d["dport"]))] = kv[4][1]       # reply src
    assert len(want) == 10
    rng_lo = ipaddress.ip_address("198.51.100.2").packed
    rng_hi = ipaddress.ip_address("198.51.100.9").packed
    for (src, dport), reply_src in want.items():
        flags = core.NF_NAT_RANGE_MAP_IPS | (core.NF_NAT_RANGE_PERSISTENT if dport == 9001
                                             else 0)
        t = (ipaddress.ip_address(src).packed, ipaddress.ip_address(PUB).packed, 6, 1,
             dport, 0)
        got = core.find_best_ips_proto(0, t, core.NatRange(flags, rng_lo, rng_hi),
                                       core.NF_NAT_MANIP_DST)
        assert str(ipaddress.ip_address(got[1])) == reply_src, (src, dport)


# -- bindings ------------------------------------------------------------------------------
def test_snat_keeps_ports_then_searches_then_clashes() -> None:
    fw = make(nat_rules("-A POSTROUTING -o s0 -p tcp -j SNAT --to-source 203.0.113.1:30000-30001"))
    ds = [send(fw, IP(src=c, dst=S) / TCP(sport=30000, dport=80, flags="S"), 1.0 + i)
          for i, c in enumerate((C, C2, C3))]
    assert out_pkt(ds[0])[TCP].sport == 30000 and out_pkt(ds[0]).src == PUB
    assert out_pkt(ds[1])[TCP].sport == 30001
    assert ds[2].verdict == "DROP" and "clash" in ds[2].reason
    assert fw.tracker.stats["insert_failed"] == 1
    ct = ds[1].ct
    assert ct.status & IPS.SRC_NAT and ct.status & IPS.SRC_NAT_DONE and ct.status & IPS.DST_NAT_DONE
    assert not ct.status & IPS.DST_NAT
    assert "src=203.0.113.2 dst=203.0.113.1 sport=80 dport=30001" in line(fw, ct)
    # the answer goes back to the second client, checksums right
    d = send(fw, IP(src=S, dst=PUB) / TCP(sport=80, dport=30001, flags="SA"), 5.0, "s0")
    p = out_pkt(d)
    assert (p.dst, p[TCP].dport, p.ttl) == (C2, 30000, 63) and checks_ok(d.out[0][1])


def test_a_source_keeps_its_mapping_across_destinations() -> None:
    """find_appropriate_src: a source port outside the range reuses its existing mapping."""
    fw = make(nat_rules("-A POSTROUTING -o s0 -p udp -j SNAT --to-source 203.0.113.1:40000-40999"))
    d1 = send(fw, IP(src=C, dst=S) / UDP(sport=5000, dport=53), 1.0)
    port = out_pkt(d1)[UDP].sport
    assert 40000 <= port <= 40999
    d2 = send(fw, IP(src=C, dst="203.0.113.9") / UDP(sport=5000, dport=53), 1.1)
    assert out_pkt(d2)[UDP].sport == port


def test_null_binding_moves_a_clashing_source_port() -> None:
    """Two public addresses forwarded to one server: the second flow's reply would be the
    first's, so the null binding of POSTROUTING moves its source port."""
    fw = make(nat_rules(
        "-A PREROUTING -i s0 -d 203.0.113.1 -p udp -j DNAT --to-destination 198.51.100.2",
        "-A PREROUTING -i s0 -d 203.0.113.7 -p udp -j DNAT --to-destination 198.51.100.2"))
    d1 = send(fw, IP(src=S, dst=PUB) / UDP(sport=999, dport=53), 1.0, "s0")
    d2 = send(fw, IP(src=S, dst="203.0.113.7") / UDP(sport=999, dport=53), 1.1, "s0")
    assert out_pkt(d1)[UDP].sport == 999
    p2 = out_pkt(d2)
    assert p2.dst == C and p2[UDP].sport != 999 and 600 <= p2[UDP].sport <= 1023
    assert d2.ct.status & IPS.SRC_NAT and d2.ct.status & IPS.DST_NAT


def test_dnat_port_range_starts_at_its_first_port_and_base_maps_by_offset() -> None:
    fw = make(nat_rules(
        "-A PREROUTING -p udp --dport 5000:5001 -j DNAT --to-destination 198.51.100.2:6000-6009",
        "-A PREROUTING -p tcp --dport 7000:7009 -j DNAT --to-destination 198.51.100.2:8000-8009/7000"))
    d = send(fw, IP(src=S, dst=PUB) / UDP(sport=1, dport=5000), 1.0, "s0")
    assert out_pkt(d)[UDP].dport == 6000
    d = send(fw, IP(src=S, dst=PUB) / UDP(sport=1, dport=5001), 1.1, "s0")
    assert out_pkt(d)[UDP].dport == 6001
    d = send(fw, IP(src=S, dst=PUB) / TCP(sport=1, dport=7005, flags="S"), 1.2, "s0")
    assert out_pkt(d)[TCP].dport == 8005


def test_random_fully_is_deterministic_and_in_range() -> None:
    rules = nat_rules("-A POSTROUTING -o s0 -p udp -j SNAT --to-source 203.0.113.1:20000-20999 "
                      "--random-fully")
    ports = []
    for _ in range(2):
        fw = make(rules)
        ports.append(out_pkt(send(fw, IP(src=C, dst=S) / UDP(sport=20500, dport=53), 1.0))[UDP].sport)
    assert ports[0] == ports[1] and 20000 <= ports[0] <= 20999


def test_time_wait_snat_entry_is_evicted_for_a_new_syn() -> None:
    """nf_nat_used_tuple_harder: in the last attempts, a SNAT entry in TIME_WAIT whose
    sequence the new SYN has passed is killed and its port reused."""
    fw = make(nat_rules("-A POSTROUTING -o s0 -p tcp -j SNAT "
                        "--to-source 203.0.113.1:30000-30001"))
    send(fw, IP(src=C3, dst=S) / TCP(sport=30001, dport=80, flags="S", seq=100), 0.5)
    send(fw, IP(src=C, dst=S) / TCP(sport=30000, dport=80, flags="S", seq=100), 1.0)
    send(fw, IP(src=S, dst=PUB) / TCP(sport=80, dport=30000, flags="SA", seq=5, ack=101), 1.1, "s0")
    send(fw, IP(src=C, dst=S) / TCP(sport=30000, dport=80, flags="A", seq=101, ack=6), 1.2)
    send(fw, IP(src=C, dst=S) / TCP(sport=30000, dport=80, flags="FA", seq=101, ack=6), 1.3)
    send(fw, IP(src=S, dst=PUB) / TCP(sport=80, dport=30000, flags="FA", seq=6, ack=102), 1.4, "s0")
    send(fw, IP(src=C, dst=S) / TCP(sport=30000, dport=80, flags="A", seq=102, ack=7), 1.5)
    old = fw.tracker.entries(1.5)[1]
    assert old.state == 7                            # TIME_WAIT
    # another client, same server port: both ports are taken (one by an entry in
    # SYN_SENT, which stays); the TIME_WAIT entry is evicted and its port reused
    d = send(fw, IP(src=C2, dst=S) / TCP(sport=30000, dport=80, flags="S", seq=5000), 2.0)
    assert out_pkt(d)[TCP].sport == 30000
    assert fw.nat.core.stats["timewait_evicted"] == 1
    assert [e.orig[0] for e in fw.tracker.entries(2.0)] == \
        [ipaddress.ip_address(a).packed for a in (C3, C2)]


def test_nat_table_sees_first_packet_only_and_ctstate_sees_the_binding() -> None:
    filt = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A FORWARD -m conntrack --ctstate DNAT --ctorigdst 203.0.113.1 "
            "--ctrepldst 203.0.113.2 -j ACCEPT\n"
            "-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\nCOMMIT\n")
    fw = make(nat_rules("-A PREROUTING -i s0 -p tcp --dport 8080 -j DNAT "
                        "--to-destination 198.51.100.2:80", filt=filt))
    d = send(fw, IP(src=S, dst=PUB) / TCP(sport=4000, dport=8080, flags="S"), 1.0, "s0")
    assert d.verdict == "ACCEPT" and d.nat and d.nat[0].kind == "DNAT"
    d = send(fw, IP(src=C, dst=S) / TCP(sport=80, dport=4000, flags="SA"), 1.1)
    p = out_pkt(d)
    assert (p.src, p[TCP].sport) == (PUB, 8080) and not d.nat


# -- the targets --------------------------------------------------------------------------
def test_masquerade_source_is_the_output_interface_address_toward_the_next_hop() -> None:
    host = HostModel([parse_iface("c0=198.51.100.1/24"),
                      parse_iface("s0=203.0.113.1/24,192.0.2.1/24,203.0.113.9/24")],
                     [parse_route("default via 192.0.2.254 dev s0")])
    assert targets.select_addr_v4(host, "s0", targets.next_hop(host, b"\x08\x08\x08\x08")) \
        == bytes((192, 0, 2, 1))
    assert targets.select_addr_v4(host, "s0", bytes((203, 0, 113, 50))) == bytes((203, 0, 113, 1))
    assert targets.select_addr_v4(host, "nothing", bytes((1, 2, 3, 4))) == bytes((198, 51, 100, 1))


def test_masquerade_entry_dies_when_its_flow_leaves_elsewhere() -> None:
    host = [parse_iface("c0=198.51.100.1/24"), parse_iface("s0=203.0.113.1/24"),
            parse_iface("s1=192.0.2.1/24")]
    fw = make(nat_rules("-A POSTROUTING -o s0 -j MASQUERADE"), host=host)
    d = send(fw, IP(src=C, dst=S) / UDP(sport=1, dport=2), 1.0)
    assert out_pkt(d).src == PUB and d.ct.nat.masq_iface == "s0"
    # the route changes: the same flow now leaves through s1
    fw.host.routes.insert(0, parse_route("203.0.113.2/32 dev s1"))
    fw.host.routes_changed()
    d = send(fw, IP(src=C, dst=S) / UDP(sport=1, dport=2), 1.1)
    assert d.verdict == "DROP" and "interface changed" in d.reason
    assert len(fw.tracker.entries(1.1)) == 0


def test_redirect_and_netmap() -> None:
    fw = make(nat_rules("-A PREROUTING -i c0 -p tcp --dport 80 -j REDIRECT --to-ports 3128",
                        "-A OUTPUT -p udp --dport 53 -j REDIRECT",
                        "-A POSTROUTING -o s0 -s 198.51.100.0/24 -j NETMAP --to 192.0.2.0/24"))
    d = send(fw, IP(src=C, dst=S) / TCP(sport=9, dport=80, flags="S"), 1.0)
    assert d.path == ["PREROUTING", "INPUT"] and not d.out
    assert "src=198.51.100.1 dst=198.51.100.2 sport=3128 dport=9" in line(fw, d.ct)
    d = send(fw, IP(src=PUB, dst=S) / UDP(sport=9, dport=53), 1.1, None, hook=3)
    assert "src=127.0.0.1 dst=203.0.113.1 sport=53 dport=9" in line(fw, d.ct)
    d = send(fw, IP(src="198.51.100.77", dst=S) / UDP(sport=9, dport=99), 1.2)
    assert out_pkt(d).src == "192.0.2.77"
    assert targets.netmap_addr(bytes((10, 1, 2, 3)), bytes((192, 0, 2, 0)), 24) == bytes((192, 0, 2, 3))
    six = ipaddress.ip_address("2001:db8:ffff::1:2").packed
    net = ipaddress.ip_address("2001:db8:1::").packed
    assert targets.netmap_addr(six, net, 48) == ipaddress.ip_address("2001:db8:1::1:2").packed


def test_dnat_in_output_reroutes() -> None:
    fw = make(nat_rules("-A OUTPUT -d 192.0.2.50 -p udp -j DNAT --to-destination 203.0.113.2"),
              host=HOST + [parse_iface("x0=192.0.2.1/24")])
    d = send(fw, IP(src=PUB, dst="192.0.2.50") / UDP(sport=5, dport=7), 1.0, None, hook=3)
    assert d.out_iface == "s0" and out_pkt(d).dst == S and out_pkt(d).ttl == 64


def test_ipv6_snat_and_icmpv6_echo() -> None:
    six = nat_rules("-A POSTROUTING -o s0 -j MASQUERADE")
    fw = make(nat_rules(), six)
    d = send(fw, IPv6(src="2001:db8:1::2", dst="2001:db8:2::2") / TCP(sport=7, dport=80,
                                                                      flags="S"), 1.0)
    p = out_pkt(d)
    assert p.src == "2001:db8:2::1" and p.hlim == 63 and checks_ok(d.out[0][1])
    d = send(fw, IPv6(src="2001:db8:1::2", dst="2001:db8:2::2") / ICMPv6EchoRequest(id=9), 1.1)
    assert checks_ok(d.out[0][1])


# -- ICMP errors ---------------------------------------------------------------------------
def test_icmp_error_about_a_snat_flow_is_translated_inside_and_out() -> None:
    fw = make(nat_rules("-A POSTROUTING -o s0 -j MASQUERADE"))
    u = IP(src=C, dst=S) / UDP(sport=1111, dport=53) / b"query"
    d = send(fw, u, 1.0)
    left = d.out[0][1]
    err = IP(src=S, dst=PUB) / ICMP(type=3, code=3) / left
    d = send(fw, err, 1.1, "s0")
    p = out_pkt(d)
    assert p.dst == C and checks_ok(d.out[0][1])
    inner = IP(raw(p[ICMP].payload))
    assert inner.src == C and inner[UDP].sport == 1111
    # the quoted datagram is the client's own, byte for byte (TTL as it left aside)
    assert raw(inner)[12:] == raw(IP(src=C, dst=S, ttl=63) / UDP(sport=1111, dport=53)
                                   / b"query")[12:]


def test_icmpv6_error_about_a_dnat_flow() -> None:
    six = nat_rules("-A PREROUTING -i s0 -p udp --dport 53 -j DNAT --to-destination "
                    "[2001:db8:1::2]:5353")
    fw = make(nat_rules(), six)
    d = send(fw, IPv6(src="2001:db8:2::2", dst="2001:db8:2::1") / UDP(sport=9, dport=53), 1.0,
             "s0")
    inside = d.out[0][1]
    err = IPv6(src="2001:db8:1::2", dst="2001:db8:2::2") / ICMPv6DestUnreach(code=4) / inside
    d = send(fw, err, 1.1, "c0")
    p = out_pkt(d)
    assert p.src == "2001:db8:2::1" and checks_ok(d.out[0][1])
    q = IPv6(raw(p[ICMPv6DestUnreach].payload))
    assert q.dst == "2001:db8:2::1" and q[UDP].dport == 53


def test_reject_answer_leaves_translated() -> None:
    filt = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            "-A FORWARD -p tcp --dport 81 -j REJECT --reject-with tcp-reset\nCOMMIT\n")
    fw = make(nat_rules("-A PREROUTING -i s0 -p tcp --dport 8081 -j DNAT "
                        "--to-destination 198.51.100.2:81", filt=filt))
    d = send(fw, IP(src=S, dst=PUB) / TCP(sport=5, dport=8081, flags="S", seq=1), 1.0, "s0")
    assert d.verdict == "DROP"
    rej = [e for e in d.emitted if isinstance(e, Emitted)]
    assert len(rej) == 1
    rst = IP(rej[0].data)
    assert (rst.src, rst[TCP].sport, rst[TCP].flags) == (PUB, 8081, "RA")
    assert rej[0].decision.out[0][1] == rej[0].data and checks_ok(rej[0].data)


# -- helpers ---------------------------------------------------------------------------------
FTP_RULES = ("*raw\n-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\nCOMMIT\n"
             + nat_rules("-A POSTROUTING -o s0 -j MASQUERADE"))


def _ftp_session(fw: Firewall, cmd: bytes) -> tuple[Any, int, int]:
    """Handshake + a banner line each way, then ``cmd`` from the client."""
    send(fw, IP(src=C, dst=S) / TCP(sport=4000, dport=21, flags="S", seq=100), 1.0)
    send(fw, IP(src=S, dst=PUB) / TCP(sport=21, dport=4000, flags="SA", seq=500, ack=101), 1.1, "s0")
    send(fw, IP(src=C, dst=S) / TCP(sport=4000, dport=21, flags="A", seq=101, ack=501), 1.2)
    send(fw, IP(src=S, dst=PUB) / TCP(sport=21, dport=4000, flags="PA", seq=501, ack=101)
         / b"220 hi\r\n", 1.3, "s0")
    send(fw, IP(src=C, dst=S) / TCP(sport=4000, dport=21, flags="PA", seq=101, ack=509)
         / b"USER x\r\n", 1.4)
    send(fw, IP(src=S, dst=PUB) / TCP(sport=21, dport=4000, flags="PA", seq=509, ack=109)
         / b"331 ok\r\n", 1.5, "s0")
    d = send(fw, IP(src=C, dst=S) / TCP(sport=4000, dport=21, flags="PA", seq=109, ack=517)
             / cmd, 1.6)
    return d, 109 + len(cmd), 517


def test_ftp_port_command_is_rewritten_and_sequence_adjusted() -> None:
    fw = make(FTP_RULES)
    d, nxt, ack = _ftp_session(fw, b"PORT 198,51,100,2,39,16\r\n")
    p = out_pkt(d)
    assert bytes(p[TCP].payload) == b"PORT 203,0,113,1,39,16\r\n"
    assert p.len == 40 + 24 and checks_ok(d.out[0][1])
    assert d.ct.status & IPS.SEQ_ADJUST
    # the next client segment's sequence number is one lower on the wire
    d = send(fw, IP(src=C, dst=S) / TCP(sport=4000, dport=21, flags="PA", seq=nxt, ack=ack)
             / b"LIST\r\n", 1.7)
    assert out_pkt(d)[TCP].seq == nxt - 1 and checks_ok(d.out[0][1])
    # the server acknowledges in its numbering; the client gets its own
    d = send(fw, IP(src=S, dst=PUB) / TCP(sport=21, dport=4000, flags="PA", seq=ack,
                                          ack=nxt + 6 - 1) / b"200 ok\r\n", 1.8, "s0")
    p = out_pkt(d)
    assert p[TCP].ack == nxt + 6 and checks_ok(d.out[0][1])
    # the data connection arrives at the mapped address and is sent to the client
    data = IP(src=S, dst=PUB) / TCP(sport=20, dport=39 * 256 + 16, flags="S", seq=9)
    d = send(fw, data, 1.9, "s0")
    p = out_pkt(d)
    assert (p.dst, p[TCP].dport) == (C, 39 * 256 + 16) and d.ctinfo == 1    # RELATED
    assert d.ct.status & IPS.DST_NAT and d.ct.status & IPS.SRC_NAT_DONE


@pytest.mark.parametrize("cmd,want", [
    (b"EPRT |1|198.51.100.2|10000|\r\n", b"EPRT |1|203.0.113.1|10000|\r\n"),
    (b"PORT 198,51,100,2,1,2\r\n", b"PORT 203,0,113,1,1,2\r\n"),
])
def test_ftp_active_commands(cmd: bytes, want: bytes) -> None:
    fw = make(FTP_RULES)
    d, _, _ = _ftp_session(fw, cmd)
    assert bytes(out_pkt(d)[TCP].payload) == want and checks_ok(d.out[0][1])


def test_ftp_227_through_dnat_is_rewritten_to_the_public_address() -> None:
    rules = ("*raw\n-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\nCOMMIT\n"
             + nat_rules("-A PREROUTING -i c0 -d 192.0.2.21 -p tcp --dport 21 -j DNAT "
                         "--to-destination 203.0.113.2"))
    fw = make(rules, host=HOST + [parse_iface("x0=10.0.0.1/8")])
    pub = "192.0.2.21"
    send(fw, IP(src=C, dst=pub) / TCP(sport=4000, dport=21, flags="S", seq=100), 1.0)
    send(fw, IP(src=S, dst=C) / TCP(sport=21, dport=4000, flags="SA", seq=500, ack=101), 1.1, "s0")
    send(fw, IP(src=C, dst=pub) / TCP(sport=4000, dport=21, flags="PA", seq=101, ack=501)
         / b"PASV\r\n", 1.2)
    send(fw, IP(src=S, dst=C) / TCP(sport=21, dport=4000, flags="PA", seq=501, ack=107)
         / b"200 x\r\n", 1.3, "s0")
    d = send(fw, IP(src=S, dst=C) / TCP(sport=21, dport=4000, flags="PA", seq=508, ack=107)
             / b"227 Entering Passive Mode (203,0,113,2,117,49).\r\n", 1.4, "s0")
    p = out_pkt(d)
    assert bytes(p[TCP].payload) == b"227 Entering Passive Mode (192,0,2,21,117,49).\r\n"
    assert (p.src, checks_ok(d.out[0][1])) == (pub, True)
    d = send(fw, IP(src=C, dst=pub) / TCP(sport=4001, dport=117 * 256 + 49, flags="S"), 1.5)
    assert out_pkt(d).dst == S and d.ctinfo == 1


def test_tftp_answer_follows_the_master_back_to_the_client() -> None:
    rules = ("*raw\n-A PREROUTING -p udp --dport 69 -j CT --helper tftp\nCOMMIT\n"
             + nat_rules("-A POSTROUTING -o s0 -j MASQUERADE"))
    fw = make(rules)
    send(fw, IP(src=C, dst=S) / UDP(sport=3000, dport=69) / b"\x00\x01f\x00octet\x00", 1.0)
    d = send(fw, IP(src=S, dst=PUB) / UDP(sport=50000, dport=3000) / b"\x00\x03\x00\x01x", 1.1,
             "s0")
    p = out_pkt(d)
    assert (p.dst, p[UDP].dport, d.ctinfo) == (C, 3000, 1) and checks_ok(d.out[0][1])


def test_sack_blocks_are_adjusted() -> None:
    fw = make(FTP_RULES)
    d, nxt, ack = _ftp_session(fw, b"PORT 198,51,100,2,39,16\r\n")
    opts = [("NOP", None), ("NOP", None), ("SAck", (nxt + 10 - 1, nxt + 20 - 1))]
    # (SACK permitted was not negotiated: the blocks are still rewritten on the wire)
    d = send(fw, IP(src=S, dst=PUB) / TCP(sport=21, dport=4000, flags="A", seq=ack, ack=nxt - 1,
                                          options=opts), 1.7, "s0")
    p = out_pkt(d)
    assert dict(p[TCP].options)["SAck"] == (nxt + 10, nxt + 20) and checks_ok(d.out[0][1])
    assert seqadj.seq_offset(d.ct, 0, nxt + 5) == (-1) & 0xFFFFFFFF


# -- fragments and --write -------------------------------------------------------------------
def test_reassembled_datagram_leaves_in_the_same_fragments() -> None:
    from scapy.layers.inet import fragment
    fw = make(nat_rules("-A POSTROUTING -o s0 -j MASQUERADE"))
    big = IP(src=C, dst=S, id=77) / UDP(sport=5, dport=6) / (b"z" * 1500)
    frs = fragment(big, fragsize=600)
    ds = [send(fw, f, 1.0 + i / 10) for i, f in enumerate(frs)]
    assert [d.verdict for d in ds] == ["HOLD", "HOLD", "ACCEPT"]
    outs = [IP(b) for _, b in ds[-1].out]
    assert [(o.frag, bool(o.flags.MF), len(o.payload)) for o in outs] == \
        [(f.frag, bool(f.flags.MF), len(f.payload)) for f in frs]
    assert {(o.id, o.src, o.ttl) for o in outs} == {(77, PUB, 63)}
    assert all(inet_checksum(raw(o), 0, 20) == 0 for o in outs)
    whole = refragment(b"".join([ds[-1].out[0][1]]), [0], 1)
    assert len(whole) == 1


def test_replay_write_cli(tmp_path: Path) -> None:
    from statewall.cli.main import main
    from statewall.io.capture import PcapngWriter, open_capture
    pcap = tmp_path / "in.pcapng"
    with open(pcap, "wb") as f:
        w = PcapngWriter(f)
        c0 = w.interface("c0", 101)
        s0 = w.interface("s0", 101)
        w.write(raw(IP(src=C, dst=S) / TCP(sport=4, dport=81, flags="S")), 1_000_000_000, c0)
        w.write(raw(IP(src=C, dst=S) / TCP(sport=5, dport=80, flags="S")), 1_100_000_000, c0)
        w.write(raw(IP(src=S, dst=PUB) / TCP(sport=80, dport=5, flags="SA")), 1_200_000_000, s0)
    rules = tmp_path / "rules"
    rules.write_text(nat_rules("-A POSTROUTING -o s0 -j MASQUERADE", filt=(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A FORWARD -p tcp --dport 81 -j REJECT --reject-with tcp-reset\nCOMMIT\n")))
    out = tmp_path / "out.pcapng"
    rc = main(["replay", str(pcap), "--rules", str(rules), "--iface", "c0=198.51.100.1/24",
               "--iface", "s0=203.0.113.1/24", "--write", str(out)])
    assert rc == 0
    with open_capture(out) as cap:
        frames = list(cap)
    got = [(fr.iface_name, IP(fr.data).summary(), fr.ts_ns) for fr in frames]
    assert got == [
        ("c0", "IP / TCP 203.0.113.2:81 > 198.51.100.2:4 RA", 1_000_000_000),
        ("s0", "IP / TCP 203.0.113.1:5 > 203.0.113.2:http S", 1_100_000_000),
        ("c0", "IP / TCP 203.0.113.2:http > 198.51.100.2:5 SA", 1_200_000_000),
    ]
    assert all(checks_ok(fr.data) for fr in frames) and all(fr.flags == 2 for fr in frames)


def test_nat_is_sans_io() -> None:
    """statewall/nat is core code: no I/O, clocks, sockets, front ends, capture files."""
    from test_boundaries import FORBIDDEN_MODULES, FORBIDDEN_PACKAGES, SRC, _imports
    bad = []
    for path in (SRC / "nat").rglob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN_MODULES or name.startswith(FORBIDDEN_PACKAGES):
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)
