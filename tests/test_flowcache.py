"""The flow cache (statewall/flowcache.py) and the C ``Firewall.process`` / ``conntrack_in``
against the full Python path.

Differential property tests: the same packets through a firewall with the flow cache and
the C accelerator, and through the reference (``process_py`` / ``conntrack_in_py`` /
``walk_py`` / ``run_py``, flow cache off), compared after every packet: the decision (verdict, reason, source, hooks,
output interface, ctinfo), every entry, every rule and policy counter, events. The rule
sets mix flow-stable rules (ports, addresses, ctstate, interfaces) with ones that must
never be replayed (limit, length, TCP flags, marks, LOG, MARK, CT), REJECT and DROP of
established packets; traffic mixes several TCP and UDP flows on two interfaces, INVALID
segments, reopens, expiry, and a host whose addresses change half-way.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from statewall import firewall as F
from statewall.conntrack import core
from statewall.conntrack.core import Tracker
from statewall.conntrack.sysctl import Settings
from statewall.host import HostModel, parse_iface
from statewall.packet.checksum import inet_checksum, l4_checksum
from statewall.packet.decode import decode_ip
from statewall.rules import engine as E
from statewall.rules.parse import parse_ruleset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from rules import RULES as BENCH_RULES  # noqa: E402


class PureTracker(Tracker):
    """The reference: conntrack_in in Python."""
    __slots__ = ()
    conntrack_in = core.conntrack_in_py     # type: ignore[assignment]


class PureEngine(E.Engine):
    """The reference: the chain walk in Python (no C path: the class is not the bound one)."""
    __slots__ = ()
    walk = E.walk_py                        # type: ignore[assignment]
    run = E.run_py                          # type: ignore[assignment]


class PureFirewall(F.Firewall):
    """The reference: process in Python (no C path: the class is not the bound one)."""
    __slots__ = ()
    process = F.process_py                  # type: ignore[assignment]


HEAD = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
"""
RULESETS = {
    "bench": BENCH_RULES,                  # bench/rules.py: what make bench replays
    # established packets meet volatile rules before the ESTABLISHED accept
    "volatile": HEAD + """:count - [0:0]
-A FORWARD -j count
-A FORWARD -m length --length 0:60 -j ACCEPT
-A FORWARD -p tcp --tcp-flags FIN FIN -j LOG --log-prefix "fin "
-A FORWARD -m limit --limit 3/second --limit-burst 2 -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -m state --state NEW -j ACCEPT
-A count -i eth0 -p tcp --sport 40000:40001
-A count -o eth0 -j RETURN
-A count -p udp
COMMIT
""",
    # established packets of some flows are dropped or rejected, by stable rules
    "drops": HEAD + """-A FORWARD -p tcp --dport 81 -m conntrack --ctstate ESTABLISHED -j DROP
-A FORWARD -p tcp --sport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -j ACCEPT
COMMIT
""",
    # marks and CONNMARK change what later packets see
    "marks": """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m connmark --mark 0x2 -j ACCEPT
-A PREROUTING -p tcp --dport 80 -m conntrack --ctstate ESTABLISHED -j CONNMARK --set-mark 0x2
COMMIT
""" + HEAD + """-A FORWARD -m mark --mark 0x0 -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -m connmark --mark 0x2 -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -j ACCEPT
COMMIT
""",
}

C = (bytes([198, 51, 100, 2]), bytes([198, 51, 100, 3]))
S = (bytes([203, 0, 113, 2]), bytes([203, 0, 113, 3]))


def datagram(src: bytes, dst: bytes, proto: int, sport: int, dport: int, seq: int, ack: int,
             flags: int, payload: bytes, tos: int = 0) -> bytes:
    if proto == 6:
        seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF,
                                    ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0) + payload)
        struct.pack_into("!H", seg, 16, l4_checksum(bytes(seg), 0, src, dst, 6))
    else:
        seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
        struct.pack_into("!H", seg, 6, l4_checksum(bytes(seg), 0, src, dst, 17) or 0xFFFF)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(seg), 1, 0x4000, 64, proto, 0, src,
                    dst)
    return h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:] + bytes(seg)


def host() -> HostModel:
    return HostModel([parse_iface("eth0=198.51.100.254/24"),
                      parse_iface("eth1=203.0.113.254/24")])


def counters(fw: F.Firewall) -> Any:
    return fw.engine4.counters()


def entry(ct: Any) -> Any:
    if ct is None:
        return None
    return (ct.orig, ct.reply, ct.state, ct.status, ct.timeout, list(ct.acct), ct.mark,
            list(ct.l4) if hasattr(ct.l4, "__iter__") else ct.l4, ct.events)


def decision(d: Any) -> Any:
    return (d.verdict, d.reason, d.source, tuple(d.path), d.out_iface, d.ctinfo, entry(d.ct),
            [(e.kind, e.data) for e in d.emitted if hasattr(e, "kind")],
            None if d.pkt is None else (d.pkt.ctinfo, d.pkt.mark, entry(d.pkt.ct)))


class Pair:
    """``sinks``: both trackers deliver events (compared); without, nobody hears them (the C
    confirm drops the events of a confirmed entry itself)."""

    def __init__(self, rules: str, sinks: bool = True) -> None:
        self.events: tuple[list[Any], list[Any]] = ([], [])
        s = Settings()
        self.fast = F.Firewall(s, Tracker(s, (lambda n, b, ct: self.events[0].append(
            (n, b, entry(ct)))) if sinks else None), rules4=parse_ruleset(rules, "t.rules", 4),
            host=host())
        self.slow = PureFirewall(s, PureTracker(s, (lambda n, b, ct: self.events[1].append(
            (n, b, entry(ct)))) if sinks else None), rules4=parse_ruleset(rules, "t.rules", 4),
            host=host(), flow_cache=False)
        self.slow.engine4 = PureEngine(parse_ruleset(rules, "t.rules", 4))
        self.hits = 0

    def send(self, data: bytes, iface: str, now: float) -> None:
        pf, ps = decode_ip(data), decode_ip(data)
        pf.iface = ps.iface = iface
        calls = []
        orig = F.Firewall._after_conntrack

        def spy(*a: Any) -> Any:
            calls.append(1)
            return orig(*a)
        F.Firewall._after_conntrack = spy        # type: ignore[method-assign]
        try:
            df = self.fast.process(pf, now)
        finally:
            F.Firewall._after_conntrack = orig   # type: ignore[method-assign]
        self.hits += not calls and df.verdict != F.HOLD
        ds = self.slow.process(ps, now)
        assert decision(df) == decision(ds)
        assert counters(self.fast) == counters(self.slow)
        assert [entry(c) for c in self.fast.tracker.table.entries()] == \
            [entry(c) for c in self.slow.tracker.table.entries()]
        assert self.fast.tracker.stats == self.slow.tracker.stats
        assert self.events[0] == self.events[1]

    def rehost(self) -> None:
        """The host's addresses are read again (routes may have changed): records go stale."""
        for fw in (self.fast, self.slow):
            fw.host.__init__([parse_iface("eth0=198.51.100.254/24"),   # type: ignore[misc]
                              parse_iface("eth1=203.0.113.254/24")])


# one step: flow (0..5), from the server?, flags, payload, seq skew, time step, tos/special
step = st.tuples(st.integers(0, 5), st.booleans(),
                 st.sampled_from([0x10, 0x10, 0x18, 0x18, 0x11, 0x02, 0x12, 0x04, 0x01]),
                 st.sampled_from([0, 0, 10, 300]),
                 st.sampled_from([0, 0, 0, 0, 1, 100000, -100000]),
                 st.sampled_from([0.0, 0.0, 0.1, 1.0, 30.0, 200.0]),
                 st.integers(0, 30))
FLOWS = [(6, 40000, 80), (6, 40001, 22), (6, 40002, 81), (17, 5353, 53), (6, 40003, 443),
         (17, 5000, 123)]


@pytest.mark.parametrize("sinks", [True, False])
@pytest.mark.parametrize("name", sorted(RULESETS))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(step, min_size=5, max_size=60))
def test_flow_cache_differential(name: str, sinks: bool, steps: list[Any]) -> None:
    pair = Pair(RULESETS[name], sinks)
    seqs = {f: [1000 * (f + 1), 90000 * (f + 1)] for f in range(len(FLOWS))}
    now = 100.0
    for i, (f, from_s, flags, plen, skew, dt, special) in enumerate(steps):
        proto, cport, sport = FLOWS[f]
        ci = special % 2                       # which client / server address
        c, s = C[ci], S[ci]
        d = int(from_s)
        if special == 29:
            pair.rehost()
        now += dt
        src, dst, a, b = (s, c, sport, cport) if from_s else (c, s, cport, sport)
        iface = ("eth1" if from_s else "eth0") if special != 28 else "eth9"
        tos = 4 if special == 27 else 0
        sq = seqs[f]
        data = datagram(src, dst, proto, a, b, sq[d] + skew, sq[1 - d], flags, bytes(plen), tos)
        pair.send(data, iface, now)
        if skew == 0 and proto == 6:
            sq[d] = (sq[d] + plen + (flags & 1) + ((flags >> 1) & 1)) & 0xFFFFFFFF


def test_flow_cache_is_used_and_exact() -> None:
    """A long established session: only its first (NEW) packet takes the full path, the
    rest are recorded and replayed; counters stay exact."""
    pair = Pair(RULESETS["bench"])
    c, s = C[0], S[0]
    seq = [1, 1000]
    now = 10.0
    script = [(0, 0x02, 0), (1, 0x12, 0), (0, 0x10, 0)] + [(i % 2, 0x18, 100)
                                                            for i in range(40)]
    for d, flags, plen in script:
        src, dst, a, b = (s, c, 80, 40000) if d else (c, s, 40000, 80)
        now += 0.01
        pair.send(datagram(src, dst, 6, a, b, seq[d], seq[1 - d], flags, bytes(plen)),
                  "eth1" if d else "eth0", now)
        seq[d] += plen + ((flags >> 1) & 1)
    # the SYN takes the full path; the SYN/ACK and the first ACK are walked without
    # effects (Engine.walk) and recorded; every later packet replays its direction's record
    assert pair.hits == 42
    ((ppk, _), rules) = counters(pair.fast)[("filter", "FORWARD")]
    assert rules[0][0] == 42                   # ESTABLISHED,RELATED: all but the SYN


@pytest.mark.skipif(not F.ACCELERATED, reason="statewall._speedups not built")
def test_accelerated_paths_are_installed() -> None:
    assert F.Firewall.process is not F.process_py
    assert core.Tracker.conntrack_in is not core.conntrack_in_py
    assert F.process_py.__module__ == F.__name__ and core.conntrack_in_py.__module__ == \
        core.__name__
