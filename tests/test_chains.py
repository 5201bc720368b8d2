"""The C chain walk (statewall/_chains.c: ``Engine.walk`` / ``Engine.run`` with native
match specs, rules/native.py) against the Python reference (``walk_py`` / ``run_py``).

Differential property tests: random rule sets drawn from rules that use every native spec
(addresses under whole-byte, odd and empty masks, interfaces with ``+`` and ``!``,
protocols, tcp/udp ports, ranges and flags, multiport, state and conntrack states with
SNAT/DNAT), rules the C walk must call into Python for (length, mark, limit, tcp options),
targets (LOG, MARK, CONNMARK, TRACE, REJECT, CT), user chains with jumps, gotos and RETURN;
random packets (TCP, UDP, ICMP, fragments, cut-short headers that make matches hot-drop)
with and without a conntrack entry. Every run and walk result, counter, emitted record and
the context's flags must be the same.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from statewall.conntrack.conn import IPS_DST_NAT, IPS_SRC_NAT
from statewall.conntrack.core import Tracker
from statewall.conntrack.sysctl import Settings
from statewall.packet.checksum import inet_checksum, l4_checksum
from statewall.packet.decode import decode_ip
from statewall.rules import engine as E
from statewall.rules.context import Context
from statewall.rules.parse import parse_ruleset

MATCHES = [
    "", "-s 198.51.100.0/24", "! -s 198.51.100.2", "-d 203.0.113.0/255.255.255.128",
    "-d 203.0.113.3/255.0.255.1", "! -d 0.0.0.0/0", "-s 198.51.100.2/31",
    "-i eth0", "! -i eth+", "-i eth+", "-o eth1", "! -o eth0", "-o +", "-i e+",
    "-p tcp", "! -p udp", "-p icmp", "-p tcp --dport 80", "-p tcp ! --sport 1000:50000",
    "-p tcp --syn", "-p tcp ! --syn", "-p tcp --tcp-flags SYN,ACK ACK", "-p udp --dport 53",
    "-p udp ! --dport 50:60 --sport 5353", "-p tcp -m multiport --dports 22,80,443",
    "-p tcp -m multiport ! --ports 1000:40001", "-p udp -m multiport --sports 5000:5353,7",
    "-m state --state NEW", "-m state ! --state ESTABLISHED,RELATED",
    "-m conntrack --ctstate INVALID,UNTRACKED", "-m conntrack --ctstate SNAT",
    "-m conntrack ! --ctstate DNAT,NEW", "-m conntrack --ctstate ESTABLISHED --ctdir REPLY",
    "-m length --length 0:60", "-m mark --mark 0x1", "-p tcp --tcp-option 2",
    "-m limit --limit 2/second --limit-burst 1", "-f", "! -f", "-p tcp -f",
]
TARGETS = ["-j ACCEPT", "-j DROP", "-j RETURN", "-j sub", "-g sub", "-j LOG",
           "-j MARK --set-mark 0x1", "-j CONNMARK --save-mark", "", "-j sub2",
           "-j REJECT"]
SUB_TARGETS = ["-j ACCEPT", "-j DROP", "-j RETURN", "", "-j sub2", "-j MARK --set-mark 0x2"]

rule = st.tuples(st.sampled_from(MATCHES), st.sampled_from(MATCHES), st.sampled_from(TARGETS))
sub_rule = st.tuples(st.sampled_from(MATCHES), st.sampled_from(SUB_TARGETS))


GENERIC = {"-p", "-s", "-d", "-i", "-o", "-f"}


def both_matches(m1: str, m2: str) -> str:
    """The two matches in one rule, or the first alone when both use a generic option."""
    if GENERIC & set(m1.split()) & set(m2.split()) or \
            (GENERIC & set(m1.split()) and "-p" in m2) or ("-p" in m1 and "-p" in m2):
        return m1
    return f"{m1} {m2}"


def ruleset(main: list[Any], sub: list[Any], sub2: list[Any], raw: list[Any]) -> str:
    out = ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    for m, t in raw:
        out.append(f"-A PREROUTING {m} {t}".rstrip())
    out += ["COMMIT", "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]",
            ":OUTPUT ACCEPT [0:0]", ":sub - [0:0]", ":sub2 - [0:0]"]
    for m1, m2, t in main:
        if t == "-j REJECT":
            m1, m2 = "-p tcp", ""
        out.append(f"-A FORWARD {both_matches(m1, m2)} {t}".rstrip())
    for m, t in sub:
        out.append(f"-A sub {m} {t}".rstrip())
    for m, t in sub2:
        out.append(f"-A sub2 {m} {t.replace('-j sub2', '-j RETURN')}".rstrip())
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def datagram(proto: int, sport: int, dport: int, flags: int, plen: int, frag: int,
             cut: int, src: bytes, dst: bytes, opts: bool) -> bytes:
    if proto == 6:
        o = bytes.fromhex("020405b4") if opts else b""
        seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, 1, 1, (5 + len(o) // 4) << 4,
                                    flags, 65535, 0, 0) + o + bytes(plen))
        struct.pack_into("!H", seg, 16, l4_checksum(bytes(seg), 0, src, dst, 6))
    elif proto == 17:
        seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + plen, 0) + bytes(plen))
        struct.pack_into("!H", seg, 6, l4_checksum(bytes(seg), 0, src, dst, 17) or 0xFFFF)
    else:
        seg = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 1) + bytes(plen))
        struct.pack_into("!H", seg, 2, inet_checksum(bytes(seg)))
    if cut:
        seg = seg[:cut]
    fl = 0x4000 if not frag else frag
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, fl, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:] + bytes(seg)


packet = st.tuples(st.sampled_from([6, 6, 17, 1]), st.sampled_from([80, 1000, 40000, 5353, 22]),
                   st.sampled_from([80, 53, 443, 22, 55, 40001]),
                   st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04]),
                   st.sampled_from([0, 10, 100]),
                   st.sampled_from([0, 0, 0, 1, 0x2000]),       # fragment offset 8 / MF
                   st.sampled_from([0, 0, 0, 0, 6, 14]),         # header cut short
                   st.booleans(), st.booleans(),                 # direction, tcp options
                   st.sampled_from([0, 0, 1]),                   # mark
                   st.sampled_from([0, 0, IPS_SRC_NAT, IPS_DST_NAT]),
                   st.sampled_from(["eth0", "eth1", "lo", None]),
                   st.sampled_from(["eth1", "eth0", None]),
                   st.booleans())                                # tracked at all


def both(rules: str) -> tuple[Any, Any]:
    rs = parse_ruleset(rules, "t.rules", 4)
    return E.Engine(rs), E.Engine(parse_ruleset(rules, "t.rules", 4))


def summary(res: Any) -> Any:
    if res is None:
        return None
    if isinstance(res, tuple):
        return res
    return (res.verdict, res.source, repr(res.emitted), repr(res.ct_template), repr(res.nat),
            res.queue_num, res.queue_bypass)


def ctx_state(c: Context) -> Any:
    return (c.hook, c.volatile, c.nf_trace)


@pytest.mark.skipif(not E.ACCELERATED, reason="statewall._speedups not built")
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(main=st.lists(rule, max_size=8), sub=st.lists(sub_rule, max_size=4),
       sub2=st.lists(sub_rule, max_size=3),
       raw=st.lists(st.tuples(st.sampled_from([m for m in MATCHES if "-o" not in m]),
                              st.sampled_from(["-j TRACE", "-j CT --notrack", "", "-j ACCEPT",
                                               "-j DROP"])), max_size=2),
       pkts=st.lists(packet, min_size=1, max_size=12))
def test_c_walk_and_run_equal_python(main: Any, sub: Any, sub2: Any, raw: Any,
                                     pkts: Any) -> None:
    fast, slow = both(ruleset(main, sub, sub2, raw))
    tracker = Tracker(Settings())
    now = 100.0
    for (proto, sport, dport, flags, plen, frag, cut, rev, opts, mark, nat, iin, iout,
         tracked) in pkts:
        src, dst = bytes([198, 51, 100, 2]), bytes([203, 0, 113, 3])
        if rev:
            src, dst, sport, dport = dst, src, dport, sport
        data = datagram(proto, sport, dport, flags, plen, frag, cut, src, dst, opts)
        pf, ps = decode_ip(data), decode_ip(data)
        if tracked:
            now += 0.3
            tracker.conntrack_in(pf, now, 0)
            ps.ct, ps.ctinfo = pf.ct, pf.ctinfo
            if pf.ct is not None:
                pf.ct.status |= nat
        pf.mark = ps.mark = mark
        for table, hook in (("raw", "PREROUTING"), ("filter", "FORWARD"),
                            ("filter", "INPUT"), ("nat", "PREROUTING")):
            for c_method, reference in ((fast.walk, E.walk_py), (fast.run, E.run_py)):
                cf = Context(now=now, in_iface=iin, out_iface=iout)
                cs = Context(now=now, in_iface=iin, out_iface=iout)
                got = c_method(table, hook, pf, cf)
                want = reference(slow, table, hook, ps, cs)
                assert summary(got) == summary(want)
                assert ctx_state(cf) == ctx_state(cs)
                assert (pf.mark, pf.ctinfo) == (ps.mark, ps.ctinfo)
                assert fast.counters() == slow.counters()


@pytest.mark.skipif(not E.ACCELERATED, reason="statewall._speedups not built")
def test_c_walk_and_run_are_installed_and_native() -> None:
    """The accelerated methods are in place and the bench's rules are native specs."""
    assert E.Engine.walk is not E.walk_py and E.Engine.run is not E.run_py
    eng = E.Engine(parse_ruleset("*filter\n:FORWARD DROP [0:0]\n"
                                 "-A FORWARD -s 192.0.2.0/24 -i eth0 -p tcp --dport 80 "
                                 "-m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n", "t", 4))
    tab = eng.tables["filter"]
    prog = tab.progs[tab.entry["FORWARD"]][0]
    assert [spec[1] for spec in prog] == [3, 4, 2, 6, 5]   # addr, iface, proto, ports, state
