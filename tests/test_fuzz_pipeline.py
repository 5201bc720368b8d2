"""Property tests: random and mutated packets never raise from the core (decode errors are
ParseError; everything after decoding is a Decision), and the table stays consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.packet import raw

from flows import C4, S4, icmp, tcp, udp
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Firewall
from statewall.packet.decode import decode_ip
from statewall.packet.packet import ParseError

SEEDS = [raw(p) for p in (
    tcp(), tcp(S4, C4, 80, 40000, "SA", seq=5000, ack=1001), tcp(flags="A", seq=1001, ack=5001),
    tcp(flags="PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.0\r\n\r\n"),
    tcp(flags="FA"), tcp(flags="R"), udp(), udp(S4, C4, 53, 1032), icmp(), icmp(S4, C4, type=0),
    tcp(options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 0))]),
    udp("2001:db8:1::2", "2001:db8:2::2"), tcp("2001:db8:1::2", "2001:db8:2::2"),
)]


def _check(fw: Firewall, data: bytes, now: float) -> None:
    try:
        pkt = decode_ip(data)
    except ParseError:
        return
    d = fw.process(pkt, now)
    assert d.verdict in ("ACCEPT", "DROP", "HOLD")
    t = fw.tracker
    assert t.table.count >= len(t.table)


mutation = st.tuples(st.integers(0, 200), st.integers(0, 255))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(range(len(SEEDS))), st.lists(mutation, max_size=6),
                          st.floats(0, 200)), min_size=1, max_size=30))
def test_mutated_packet_sequences_never_raise(seq) -> None:
    fw = Firewall(Settings("linux", [("nf_conntrack_max", "8")]))
    now = 0.0
    for idx, muts, dt in seq:
        b = bytearray(SEEDS[idx])
        for pos, val in muts:
            if pos < len(b):
                b[pos] = val
        now += dt
        _check(fw, bytes(b), now)
    fw.expire(now + 10**6)
    assert fw.tracker.table.count == 0 and len(fw.tracker.table) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check(Firewall(), data, 1.0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["linux", "linux-2.4"]), st.lists(st.sampled_from(range(len(SEEDS))),
                                                          max_size=40))
def test_profiles_never_raise(profile: str, idxs: list[int]) -> None:
    fw = Firewall(Settings(profile))
    for i, idx in enumerate(idxs):
        _check(fw, SEEDS[idx], float(i))
