"""The netfilter path with rules: hook order, routing between INPUT/FORWARD/OUTPUT, confirm
on accept, REJECT replies through OUTPUT as RELATED, NOTRACK, marks, the nat table seeing
only first packets, LOG lines, counters (the kernel-recorded corpus/rules_* scenarios
check the same against the real kernel)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP
from scapy.packet import raw

from flows import C4, S4, dec, tcp, udp
from statewall.conntrack.conn import ctinfo_state
from statewall.conntrack.proto.base import NF_INET_LOCAL_OUT
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Emitted, Firewall
from statewall.host import HostModel, parse_iface
from statewall.rules.parse import parse_ruleset

FW_ADDR_C = "198.51.100.1"
HOST = [parse_iface(f"c0={FW_ADDR_C}/24,2001:db8:1::1/64"),
        parse_iface("s0=203.0.113.1/24,2001:db8:2::1/64")]

SEED = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -j ACCEPT
-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m state --state INVALID -j DROP
-A FORWARD -i c0 -p tcp ! --syn -m state --state NEW -j DROP
-A FORWARD -i c0 -p tcp --dport 80 -m state --state NEW -j ACCEPT
-A FORWARD -i c0 -p udp --dport 53 -m state --state NEW -j ACCEPT
-A FORWARD -p udp -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
COMMIT
"""


def make(rules: str = SEED, **kw: object) -> Firewall:
    return Firewall(Settings(), rules4=parse_ruleset(rules, "test.rules", 4),
                    host=HostModel(HOST), trace=True, **kw)  # type: ignore[arg-type]


def send(fw: Firewall, p: object, now: float, iface: str | None = "c0", hook: int = 0):
    pkt = dec(p)
    pkt.iface = iface
    return fw.process(pkt, now, hook)


def test_forward_accept_confirms_and_reply_is_established() -> None:
    fw = make()
    d = send(fw, tcp(flags="S", seq=1), 1.0)
    assert d.verdict == "ACCEPT" and d.path == ["PREROUTING", "FORWARD", "POSTROUTING"]
    assert d.out_iface == "s0" and d.source == "filter/FORWARD#4"
    assert len(fw.tracker.table) == 1
    d = send(fw, tcp(S4, C4, 80, 40000, "SA", seq=9, ack=2), 1.1, "s0")
    assert d.verdict == "ACCEPT" and ctinfo_state(d.pkt.ct, d.pkt.ctinfo) == "ESTABLISHED"


def test_dropped_new_leaves_no_entry() -> None:
    fw = make()
    d = send(fw, tcp(dport=22, flags="S"), 1.0)
    assert d.verdict == "DROP" and d.source == "filter/FORWARD#7"
    assert len(fw.tracker.table) == 0 and fw.tracker.table.count == 0
    assert ctinfo_state(d.pkt.ct, d.pkt.ctinfo) == "NEW"


def test_not_syn_new_is_dropped_seed_rule() -> None:
    fw = make()
    d = send(fw, tcp(flags="A", seq=5, ack=7), 1.0)
    assert d.verdict == "DROP" and d.source == "filter/FORWARD#3"
    assert len(fw.tracker.table) == 0


def test_reject_tcp_reset_goes_out_related() -> None:
    fw = make()
    d = send(fw, tcp(dport=25, flags="S", seq=100), 1.0)
    assert d.verdict == "DROP"
    replies = [e for e in d.emitted if isinstance(e, Emitted) and e.data]
    assert len(replies) == 1
    rst = dec(replies[0].data)
    assert rst.flags & 0x04 and rst.src == dec(tcp()).dst and rst.dport == 40000
    assert rst.ack == 101                                # SYN without ACK: ack = seq + 1
    sub = replies[0].decision
    assert sub.verdict == "ACCEPT" and sub.path == ["OUTPUT", "POSTROUTING"]
    assert ctinfo_state(sub.pkt.ct, sub.pkt.ctinfo) == "RELATED"


def test_reject_icmp_port_unreachable_from_router_address() -> None:
    fw = make()
    d = send(fw, udp(dport=5000), 1.0)
    reply = [e for e in d.emitted if isinstance(e, Emitted) and e.data][0]
    icmp = dec(reply.data)
    assert icmp.icmp_type == 3 and icmp.icmp_code == 3
    assert icmp.src == dec(IP(src=FW_ADDR_C, dst=C4)).src     # the c0 address, toward sender
    assert icmp.ttl == 64


def test_input_and_output_paths() -> None:
    fw = make()
    d = send(fw, IP(src=C4, dst=FW_ADDR_C) / ICMP(type=8, id=3), 1.0)
    assert d.verdict == "ACCEPT" and d.path == ["PREROUTING", "INPUT"]
    assert d.source == "filter/INPUT#2"
    d = send(fw, IP(src=FW_ADDR_C, dst=C4) / ICMP(type=0, id=3), 1.1, None, NF_INET_LOCAL_OUT)
    assert d.verdict == "ACCEPT" and d.path == ["OUTPUT", "POSTROUTING"]
    assert ctinfo_state(d.pkt.ct, d.pkt.ctinfo) == "ESTABLISHED"
    d = send(fw, tcp(dst=FW_ADDR_C, dport=22), 1.2)
    assert d.verdict == "DROP" and d.source == "filter/INPUT policy"


def test_notrack_and_marks() -> None:
    rules = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 123 -j CT --notrack
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j MARK --set-mark 0x7
-A PREROUTING -j CONNMARK --save-mark
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state UNTRACKED -j ACCEPT
-A FORWARD -m connmark --mark 0x7 -j ACCEPT
-A FORWARD -j DROP
COMMIT
"""
    fw = make(rules)
    d = send(fw, udp(dport=123), 1.0)
    assert d.verdict == "ACCEPT" and ctinfo_state(d.pkt.ct, d.pkt.ctinfo) == "UNTRACKED"
    assert len(fw.tracker.table) == 0
    d = send(fw, tcp(flags="S"), 1.1)
    assert d.verdict == "ACCEPT" and d.pkt.mark == 7 and d.pkt.ct.mark == 7
    assert "mark=7" in fw.tracker.entries(1.1)[0].__repr__() or fw.tracker.entries(1.1)[0].mark == 7
    d = send(fw, tcp(dport=81, flags="S"), 1.2)
    assert d.verdict == "DROP"


def test_nat_table_sees_only_first_packet() -> None:
    rules = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j LOG --log-prefix "nat-pre "
COMMIT
"""
    fw = make(rules)
    d1 = send(fw, tcp(flags="S", seq=1), 1.0)
    d2 = send(fw, tcp(S4, C4, 80, 40000, "SA", seq=9, ack=2), 1.1, "s0")
    d3 = send(fw, tcp(flags="A", seq=2, ack=10), 1.2)
    assert [len([e for e in d.emitted if type(e).__name__ == "LogRecord"])
            for d in (d1, d2, d3)] == [1, 0, 0]


def test_counters_and_listing() -> None:
    from statewall.rules import listing
    fw = make()
    send(fw, tcp(flags="S", seq=1), 1.0)
    send(fw, tcp(dport=22, flags="S"), 1.1)
    text = listing.list_all(fw.engine4, 4)
    assert "Chain FORWARD (policy DROP 0 packets, 0 bytes)" in text
    lines = [x for x in text.splitlines() if "dpt:80" in x]
    assert lines and lines[0].split()[0] == "1"


def test_ipv6_without_rules6_sees_empty_tables() -> None:
    fw = make()
    d = send(fw, udp("2001:db8:1::2", "2001:db8:2::2", dport=5000), 1.0)
    assert d.verdict == "ACCEPT"
