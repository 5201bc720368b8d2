"""The rule engine: chain traversal, counters, TRACE, hot-drops, every match and target
against real packets (scapy-built, decoded by statewall, tracked by statewall's conntrack).

Expected behaviour follows net/ipv4/netfilter/ip_tables.c ``ipt_do_table`` and the x_tables
modules cited in each extension; time always comes from the test.
"""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.packet import Packet as ScapyPacket, raw

from statewall.conntrack.core import Tracker
from statewall.packet.decode import decode_ip
from statewall.packet.packet import Packet
from statewall.rules.context import Context
from statewall.rules.engine import Engine, Verdict
from statewall.rules.parse import load
from statewall.rules.result import (CtTemplate, LogRecord, NatRequest, NflogRecord,
                                    RejectRecord, TraceRecord)
from statewall.rules.save import save

A = "198.51.100.2"
B = "203.0.113.2"
HOOK_NUM = {"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3, "POSTROUTING": 4}


def pk(p: ScapyPacket | bytes) -> Packet:
    return decode_ip(raw(p) if not isinstance(p, bytes) else p)


class Box:
    """A tracker plus an engine and a clock: packets go raw PREROUTING -> conntrack ->
    TABLE HOOK (-> confirm when accepted), the order the kernel uses."""

    def __init__(self, rules: str, family: int = 4, local: set[bytes] | None = None) -> None:
        self.engine = Engine(load(rules, "box.rules", family))
        self.tracker = Tracker()
        self.now = 1000.0
        self.local = local or set()

    def ctx(self, in_iface: str | None = "eth0", out_iface: str | None = "eth1",
            **kw: Any) -> Context:
        return Context(self.now, in_iface, out_iface, local_addrs=self.local,
                       tracker=self.tracker, **kw)

    def send(self, p: ScapyPacket | bytes, dt: float = 0.0, table: str = "filter",
             hook: str = "FORWARD", trace: bool = False, ctx: Context | None = None,
             **kw: Any) -> Any:
        self.now += dt
        pkt = pk(p)
        c = ctx or self.ctx(**kw)
        raw_res = self.engine.run("raw", "PREROUTING", pkt, c)
        self.tracker.conntrack_in(pkt, self.now, HOOK_NUM["PREROUTING"])
        res = self.engine.run(table, hook, pkt, c, trace=trace)
        if res.verdict == Verdict.ACCEPT:
            self.tracker.confirm(pkt, self.now)
        return Sent(res, pkt, raw_res)


class Sent:
    """A RunResult plus the packet and the raw table's result."""

    def __init__(self, res: Any, pkt: Packet, raw_res: Any) -> None:
        self.res = res
        self.pkt = pkt
        self.raw = raw_res

    def __getattr__(self, name: str) -> Any:
        return getattr(self.res, name)


def filt(*rules: str, chains: str = "", policy: str = "ACCEPT") -> str:
    body = "\n".join(rules)
    return f"*filter\n:FORWARD {policy} [0:0]\n{chains}{body}\nCOMMIT\n"


def syn(sport: int = 40000, dport: int = 80, src: str = A, dst: str = B) -> ScapyPacket:
    return IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=1000)


# ----------------------------------------------------------------------- traversal
def test_no_table_or_chain_accepts() -> None:
    e = Engine(load("*filter\nCOMMIT\n"))
    res = e.run("nat", "PREROUTING", pk(syn()), Context())
    assert res.verdict == Verdict.ACCEPT and "no such chain" in res.source
    res = e.run("filter", "PREROUTING", pk(syn()), Context())
    assert res.verdict == Verdict.ACCEPT


def test_policy_counters_and_bytes() -> None:
    box = Box(filt("-A FORWARD -p udp -j ACCEPT", "-A FORWARD -p tcp", policy="DROP"))
    r1 = box.send(syn())
    assert r1.verdict == Verdict.DROP and r1.source == "filter/FORWARD policy"
    r2 = box.send(IP(src=A, dst=B) / UDP(sport=1, dport=2) / b"xyz")
    assert r2.verdict == Verdict.ACCEPT and r2.source == "filter/FORWARD#1"
    c = box.engine.counters()
    assert c[("filter", "FORWARD")] == ((1, 40), [(1, 31), (1, 40)])
    text = save(box.engine.ruleset, counters=True, live=c)
    assert ":FORWARD DROP [1:40]" in text and "[1:31] -A FORWARD -p udp -j ACCEPT" in text
    box.engine.zero()
    assert box.engine.counters()[("filter", "FORWARD")] == ((0, 0), [(0, 0), (0, 0)])


def test_jump_goto_return() -> None:
    rules = filt(
        "-A FORWARD -p tcp -j a",              # 1
        "-A FORWARD -j ACCEPT",                # 2
        "-A a -g b",                           # a1: goto: no return point
        "-A a -j DROP",                        # a2: never reached
        "-A b -p tcp --dport 22 -j RETURN",    # b1: back to FORWARD#2, not to a
        "-A b -p tcp --dport 23 -j DROP",      # b2
        chains=":a - [0:0]\n:b - [0:0]\n", policy="DROP")
    box = Box(rules)
    assert box.send(syn(dport=22)).source == "filter/FORWARD#2"
    assert box.send(syn(dport=23)).source == "filter/b#2"
    assert box.send(syn(dport=24)).source == "filter/FORWARD#2"      # fell off b
    assert box.send(IP(src=A, dst=B) / UDP()).source == "filter/FORWARD#2"


def test_return_from_builtin_chain_runs_policy() -> None:
    box = Box(filt("-A FORWARD -j RETURN", "-A FORWARD -j ACCEPT", policy="DROP"))
    res = box.send(syn())
    assert res.verdict == Verdict.DROP and res.source == "filter/FORWARD policy"
    assert box.engine.counters()[("filter", "FORWARD")] == ((1, 40), [(1, 40), (0, 0)])


def test_trace_records_and_why_list() -> None:
    rules = ("*raw\n-A PREROUTING -p tcp -j TRACE\nCOMMIT\n" +
             filt("-A FORWARD -j web", "-A web -p tcp --dport 443 -j ACCEPT",
                  "-A web -p udp", chains=":web - [0:0]\n", policy="DROP"))
    box = Box(rules)
    c = box.ctx()
    res = box.send(syn(), ctx=c, trace=True)
    assert c.nf_trace
    assert [str(r) for r in res.emitted] == ["TRACE: filter:FORWARD:rule:1",
                                            "TRACE: filter:web:return:3",
                                            "TRACE: filter:FORWARD:policy:2"]
    assert res.matched == [("filter", "FORWARD", 1, "-A FORWARD -j web")]
    plain = box.send(IP(src=A, dst=B) / UDP())
    assert plain.matched == [] and plain.emitted == []


def test_hotdrop_tcp_fragment_at_offset_8() -> None:
    box = Box(filt("-A FORWARD -p tcp --dport 80 -j ACCEPT"))
    frag = IP(src=A, dst=B, proto=6, frag=1, flags=0) / (b"\0" * 16)
    res = box.engine.run("filter", "FORWARD", pk(frag), box.ctx())
    assert res.verdict == Verdict.DROP and "hot-drop" in res.source
    frag2 = IP(src=A, dst=B, proto=6, frag=2, flags=0) / (b"\0" * 16)
    assert box.engine.run("filter", "FORWARD", pk(frag2), box.ctx()).verdict == Verdict.ACCEPT


# -------------------------------------------------------------------------- matches
def test_ip_part() -> None:
    box = Box(filt("-A FORWARD -s 198.51.100.0/24 ! -d 203.0.113.2 -j DROP",
                   "-A FORWARD -i eth+ ! -o eth1 -j DROP",
                   "-A FORWARD -s 10.1.0.0/255.255.0.255 -j DROP",
                   "-A FORWARD -f -j DROP",
                   "-A FORWARD ! -p tcp -j REJECT"))
    assert box.send(IP(src=A, dst="203.0.113.3") / TCP()).source == "filter/FORWARD#1"
    assert box.send(IP(src=A, dst=B) / TCP()).verdict == Verdict.ACCEPT
    assert box.send(IP(src=B, dst=A) / TCP(), out_iface="eth2").source == "filter/FORWARD#2"
    assert box.send(IP(src=B, dst=A) / TCP(), in_iface="ppp0",
                    out_iface="eth2").verdict == Verdict.ACCEPT
    assert box.send(IP(src="10.1.7.0", dst=B) / TCP()).source == "filter/FORWARD#3"
    assert box.send(IP(src="10.1.7.1", dst=B) / TCP()).verdict == Verdict.ACCEPT
    f = IP(src=B, dst=A, proto=6, frag=100) / (b"x" * 8)
    assert box.engine.run("filter", "FORWARD", pk(f), box.ctx()).source == "filter/FORWARD#4"
    assert box.send(IP(src=B, dst=A) / UDP()).source == "filter/FORWARD#5"


def test_tcp_udp_icmp_multiport() -> None:
    box = Box(filt(
        "-A FORWARD -p tcp --tcp-flags SYN,ACK SYN,ACK -j LOG --log-prefix synack",
        "-A FORWARD -p tcp --sport 1:1023 ! --dport 80:90 -j DROP",
        "-A FORWARD -p tcp --tcp-option 2 --dport 99 -j DROP",
        "-A FORWARD -p udp -m multiport --ports 53,5000:5010 -j DROP",
        "-A FORWARD -p icmp --icmp-type port-unreachable -j DROP",
        "-A FORWARD -p icmp ! --icmp-type echo-request -j REJECT"))
    r = box.send(IP(src=A, dst=B) / TCP(sport=80, dport=5, flags="SA"))
    assert r.source == "filter/FORWARD#2" and isinstance(r.emitted[0], LogRecord)
    assert box.send(IP(src=A, dst=B) / TCP(sport=80, dport=85)).verdict == Verdict.ACCEPT
    mss = IP(src=A, dst=B) / TCP(sport=5000, dport=99, options=[("MSS", 1460)])
    assert box.send(mss).source == "filter/FORWARD#3"
    assert box.send(IP(src=A, dst=B) / TCP(sport=5000, dport=99)).verdict == Verdict.ACCEPT
    assert box.send(IP(src=A, dst=B) / UDP(sport=5005, dport=1)).source == "filter/FORWARD#4"
    assert box.send(IP(src=A, dst=B) / UDP(sport=1, dport=53)).source == "filter/FORWARD#4"
    assert box.send(IP(src=A, dst=B) / UDP(sport=1, dport=54)).verdict == Verdict.ACCEPT
    err = IP(src=A, dst=B) / ICMP(type=3, code=3) / IP(src=B, dst=A) / UDP()
    assert box.send(err).source == "filter/FORWARD#5"
    assert box.send(IP(src=A, dst=B) / ICMP(type=8)).verdict == Verdict.ACCEPT
    assert box.send(IP(src=A, dst=B) / ICMP(type=13)).source == "filter/FORWARD#6"


def test_state_and_conntrack_with_the_tracker() -> None:
    rules = ("*raw\n-A PREROUTING -p udp --dport 123 -j CT --notrack\nCOMMIT\n" + filt(
        "-A FORWARD -m state --state INVALID -j DROP",
        "-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT",
        "-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j ACCEPT",
        "-A FORWARD -m conntrack --ctstate NEW --ctorigsrc 198.51.100.0/24 --ctproto tcp "
        "--ctorigdstport 80 -j ACCEPT",
        "-A FORWARD -m conntrack --ctstatus SEEN_REPLY --ctexpire 400000:500000 -j ACCEPT",
        policy="DROP"))
    box = Box(rules)
    assert box.send(syn()).source == "filter/FORWARD#4"
    reply = IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001)
    assert box.send(reply, dt=0.1).source == "filter/FORWARD#3"
    ack = IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="A", seq=1001, ack=5001)
    res = box.send(ack, dt=0.1)
    assert res.source == "filter/FORWARD#5"          # ESTABLISHED, original dir, SEEN_REPLY
    bad = IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="FSR")
    assert box.send(bad).source == "filter/FORWARD#1"
    ntp = box.send(IP(src=A, dst=B) / UDP(sport=123, dport=123))
    assert ntp.pkt.untracked and ntp.raw.ct_template is not None
    assert ntp.source == "filter/FORWARD#2"
    assert box.send(syn(dport=81)).source == "filter/FORWARD policy"


def test_conntrack_without_entry_matches_whenever_state_is_tested() -> None:
    # xt_conntrack: "if (ct == NULL) return info->match_flags & XT_CONNTRACK_STATE"
    box = Box(filt("-A FORWARD -m conntrack --ctstate INVALID --ctproto udp -j DROP"))
    bad = IP(src=A, dst=B) / TCP(sport=1, dport=2, flags="FSR")
    assert box.send(bad).source == "filter/FORWARD#1"


def test_marks() -> None:
    rules = ("*mangle\n-A FORWARD -m mark --mark 0 -j MARK --set-mark 0x12\n"
             "-A FORWARD -j CONNMARK --save-mark --nfmask 0xf0 --ctmask 0xff\n"
             "-A FORWARD -m connmark --mark 0x10/0xf0 -j MARK --xor-mark 0x1\nCOMMIT\n")
    box = Box(rules)
    pkt = pk(syn())
    box.tracker.conntrack_in(pkt, box.now, 0)
    box.engine.run("mangle", "FORWARD", pkt, box.ctx())
    assert pkt.mark == 0x13 and pkt.ct.mark == 0x10 and pkt.ct.events & 0x80
    box2 = Box("*mangle\n-A PREROUTING -j CONNMARK --restore-mark --mask 0xf\nCOMMIT\n")
    res = box2.send(syn(), table="mangle", hook="PREROUTING")
    res.pkt.ct.mark = 0x35
    res.pkt.mark = 0x100
    box2.engine.run("mangle", "PREROUTING", res.pkt, box2.ctx())
    assert res.pkt.mark == 0x105


def test_limit_token_bucket() -> None:
    box = Box(filt("-A FORWARD -m limit --limit 1/sec --limit-burst 2 -j ACCEPT",
                   policy="DROP"))
    got = [box.send(IP(src=A, dst=B) / UDP(), dt=dt).verdict
           for dt in (0, 0, 0, 0.5, 0.5, 0, 3.0, 0, 0, 0)]
    D, A_ = Verdict.DROP, Verdict.ACCEPT
    assert got == [A_, A_, D, D, A_, D, A_, A_, D, D]


def test_hashlimit_per_source() -> None:
    box = Box(filt("-A FORWARD -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 2 "
                   "--hashlimit-mode srcip --hashlimit-name h -j ACCEPT", policy="DROP"))
    v = [box.send(IP(src=s, dst=B) / UDP()).verdict for s in (A, A, A, "192.0.2.9", A)]
    assert v == [Verdict.ACCEPT, Verdict.ACCEPT, Verdict.DROP, Verdict.ACCEPT, Verdict.DROP]
    assert box.send(IP(src=A, dst=B) / UDP(), dt=30).verdict == Verdict.DROP
    assert box.send(IP(src=A, dst=B) / UDP(), dt=30).verdict == Verdict.ACCEPT


def test_recent_lists() -> None:
    box = Box(filt(
        "-A FORWARD -p tcp --dport 22 -m recent --name ssh --rcheck --seconds 60 "
        "--hitcount 3 -j DROP",
        "-A FORWARD -p tcp --dport 22 -m recent --name ssh --set -j ACCEPT"))
    v = [box.send(syn(sport=p, dport=22), dt=1).verdict for p in range(1, 6)]
    assert v == [Verdict.ACCEPT] * 3 + [Verdict.DROP] * 2
    assert box.send(syn(sport=9, dport=22), dt=120).verdict == Verdict.ACCEPT
    assert box.send(syn(sport=9, dport=22, src="192.0.2.1"), dt=1).verdict == Verdict.ACCEPT


def test_connlimit_counts_tracked_connections() -> None:
    box = Box(filt("-A FORWARD -p tcp --syn -m connlimit --connlimit-above 2 -j REJECT "
                   "--reject-with tcp-reset"))
    v = [box.send(syn(sport=p), dt=0.1).verdict for p in (1, 2, 3)]
    assert v == [Verdict.ACCEPT, Verdict.ACCEPT, Verdict.DROP]
    assert box.send(syn(sport=4, src="192.0.2.1")).verdict == Verdict.ACCEPT


def test_other_matches() -> None:
    local = {bytes([203, 0, 113, 2])}
    box = Box(filt(
        "-A FORWARD -m addrtype --dst-type LOCAL -p udp -j LOG --log-prefix local",
        "-A FORWARD -m pkttype --pkt-type multicast -j DROP",
        "-A FORWARD -m length --length 1000:2000 -j DROP",
        "-A FORWARD -m ttl --ttl-lt 2 -j DROP",
        "-A FORWARD -m iprange --src-range 192.0.2.10-192.0.2.20 -j DROP",
        "-A FORWARD -m tos --tos Minimize-Delay -j DROP",
        "-A FORWARD -m dscp --dscp-class EF -j DROP",
        "-A FORWARD -m comment --comment nothing -m quota --quota 100 -j ACCEPT",
        policy="DROP"), local=local)
    r = box.send(IP(src=A, dst=B) / UDP())
    assert isinstance(r.emitted[0], LogRecord) and r.emitted[0].prefix == "local"
    assert box.send(IP(src=A, dst="224.0.0.5") / UDP()).source == "filter/FORWARD#2"
    assert box.send(IP(src=A, dst=B) / UDP() / (b"x" * 1000)).source == "filter/FORWARD#3"
    assert box.send(IP(src=A, dst=B, ttl=1) / UDP()).source == "filter/FORWARD#4"
    assert box.send(IP(src="192.0.2.15", dst=B) / UDP()).source == "filter/FORWARD#5"
    assert box.send(IP(src=A, dst=B, tos=0x10) / UDP()).source == "filter/FORWARD#6"
    assert box.send(IP(src=A, dst=B, tos=0xb8) / UDP()).source == "filter/FORWARD#7"
    assert box.send(IP(src=A, dst=B) / UDP()).source == "filter/FORWARD#8"    # 28 bytes
    r = box.send(IP(src=A, dst=B) / UDP() / (b"y" * 60))
    assert r.source == "filter/FORWARD policy"                               # quota spent


def test_statistic_nth() -> None:
    box = Box(filt("-A FORWARD -m statistic --mode nth --every 3 --packet 0 -j DROP"))
    v = [box.send(IP(src=A, dst=B) / UDP()).verdict for _ in range(6)]
    assert v == [Verdict.DROP, Verdict.ACCEPT, Verdict.ACCEPT] * 2


# -------------------------------------------------------------------------- targets
def test_reject_log_nflog_records() -> None:
    box = Box(filt("-A FORWARD -j NFLOG --nflog-group 5 --nflog-prefix n --nflog-size 64",
                   "-A FORWARD -j LOG --log-prefix \"x: \" --log-level debug --log-uid",
                   "-A FORWARD -p tcp -j REJECT --reject-with tcp-reset",
                   "-A FORWARD -j REJECT"))
    r = box.send(syn())
    assert r.verdict == Verdict.DROP and r.source == "filter/FORWARD#3"
    nf, log, rej = r.emitted
    assert isinstance(nf, NflogRecord) and (nf.group, nf.prefix, nf.size) == (5, "n", 64)
    assert isinstance(log, LogRecord) and (log.prefix, log.level, log.flags) == ("x: ", 7, 8)
    assert (log.table, log.chain, log.rulenum, log.hook) == ("filter", "FORWARD", 2, "FORWARD")
    assert isinstance(rej, RejectRecord) and rej.with_ == "tcp-reset"
    r = box.send(IP(src=A, dst=B) / UDP())
    assert isinstance(r.emitted[-1], RejectRecord)
    assert r.emitted[-1].with_ == "icmp-port-unreachable"


def test_ct_templates_and_notrack() -> None:
    box = Box("*raw\n-A PREROUTING -p tcp --dport 21 -j CT --helper ftp --zone 7\n"
              "-A PREROUTING -p tcp --dport 21 -j CT --zone 9\n"
              "-A PREROUTING -p udp -j NOTRACK\nCOMMIT\n")
    pkt = pk(syn(dport=21))
    res = box.engine.run("raw", "PREROUTING", pkt, box.ctx())
    t = res.ct_template
    assert isinstance(t, CtTemplate) and (t.helper, t.zone, t.notrack) == ("ftp", 7, False)
    assert not pkt.untracked
    pkt = pk(IP(src=A, dst=B) / UDP())
    res = box.engine.run("raw", "PREROUTING", pkt, box.ctx())
    assert pkt.untracked and res.ct_template is not None and res.ct_template.notrack


def test_nat_requests() -> None:
    box = Box("*nat\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination "
              "10.0.0.1-10.0.0.3:8080-8090\n-A POSTROUTING -o eth1 -j MASQUERADE --random\n"
              "-A POSTROUTING -j NETMAP --to 192.0.2.0/24\nCOMMIT\n")
    res = box.engine.run("nat", "PREROUTING", pk(syn()), box.ctx())
    n = res.nat
    assert res.verdict == Verdict.ACCEPT and isinstance(n, NatRequest) and n.kind == "DNAT"
    assert n.ranges == ((bytes([10, 0, 0, 1]), bytes([10, 0, 0, 3]), 8080, 8090, None),)
    res = box.engine.run("nat", "POSTROUTING", pk(syn()), box.ctx())
    assert res.nat is not None and res.nat.kind == "MASQUERADE"
    assert res.nat.flags == frozenset({"random"})
    res = box.engine.run("nat", "POSTROUTING", pk(syn()), box.ctx(out_iface="eth9"))
    assert res.nat is not None and res.nat.kind == "NETMAP" and res.nat.prefix_len == 24


def test_nfqueue_and_queue() -> None:
    box = Box(filt("-A FORWARD -p udp -j NFQUEUE --queue-num 7 --queue-bypass",
                   "-A FORWARD -j QUEUE"))
    r = box.send(IP(src=A, dst=B) / UDP())
    assert r.verdict == Verdict.QUEUE and r.queue_num == 7 and r.queue_bypass
    r = box.send(syn())
    assert r.verdict == Verdict.QUEUE and r.queue_num == 0


def test_ipv6() -> None:
    rules = ("*filter\n:FORWARD DROP [0:0]\n"
             "-A FORWARD -s 2001:db8:1::/48 -p ipv6-icmp --icmpv6-type echo-request "
             "-m hl --hl-gt 10 -j ACCEPT\n"
             "-A FORWARD ! -p udp -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n")
    box = Box(rules, family=6)
    ok = IPv6(src="2001:db8:1::2", dst="2001:db8:2::2", hlim=64) / ICMPv6EchoRequest()
    assert box.send(ok).source == "filter/FORWARD#1"
    low = IPv6(src="2001:db8:1::2", dst="2001:db8:2::2", hlim=5) / ICMPv6EchoRequest()
    r = box.send(low)
    assert r.source == "filter/FORWARD#2" and r.emitted[0].with_ == "icmp6-adm-prohibited"
    assert box.send(IPv6(src="2001:db8:9::1", dst="2001:db8:2::2") / UDP()).source == \
        "filter/FORWARD policy"


def test_emitted_trace_type() -> None:
    assert str(TraceRecord("raw", "PREROUTING", "policy", 3)) == "TRACE: raw:PREROUTING:policy:3"


@pytest.mark.parametrize("n", [1, 10])
def test_engine_is_reusable_and_deterministic(n: int) -> None:
    rules = filt(*[f"-A FORWARD -p udp --dport {k} -j DROP" for k in range(n)])
    a, b = Box(rules), Box(rules)
    for k in range(12):
        p = IP(src=A, dst=B) / UDP(dport=k)
        assert a.send(p).source == b.send(p).source


def test_string_match_searches_from_the_network_header() -> None:
    """xt_string: offsets count from the IP header, the whole pattern must end before
    --to, --icase folds through the kernel's toupper (Latin-1 too), ! inverts; the kernel's
    answers for the same cases are in corpus/rules_string (recorded in a namespace)."""
    from statewall.rules.errors import OptionError
    from statewall.rules.ext.string import parse_hex_string
    eng = Engine(load(
        "*filter\n:FORWARD DROP [0:0]\n"
        "-A FORWARD -m string --string edge --algo bm --from 28 --to 40 -j ACCEPT\n"
        "-A FORWARD -m string --hex-string |e9| --algo kmp --icase -j ACCEPT\n"
        "-A FORWARD -m string ! --string x --algo bm -j ACCEPT\nCOMMIT\n", "t", 4))
    cases = [(b"12345678edgex", "filter/FORWARD#1"),        # "edge" ends at 40
             (b"123456789edgex", "filter/FORWARD policy"),  # ends at 41, and has an x
             (b"x\xc9", "filter/FORWARD#2"),                # 0xC9: the upper case of 0xE9
             (b"plain", "filter/FORWARD#3")]
    for payload, source in cases:
        p = decode_ip(raw(IP(src="198.51.100.2", dst="203.0.113.2") /
                          UDP(sport=1000, dport=9) / payload))
        assert eng.run("filter", "FORWARD", p, Context(now=1.0)).source == source, payload
    assert parse_hex_string("a|41 42|b\\|c") == b"aABb|c"   # \\ escapes one byte
    with pytest.raises(OptionError, match="Invalid hex block"):
        parse_hex_string("|0|")               # (iptables 1.8.9 says the same)
