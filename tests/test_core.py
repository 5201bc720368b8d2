"""Core: confirm-on-accept, expiry, table limit and early drop, events, counters."""

from __future__ import annotations

from flows import C4, FW, S4, tcp, udp
from statewall.conntrack.core import Tracker
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Firewall


def test_unconfirmed_entry_dies_with_dropped_packet():
    fw = Firewall()
    from flows import dec
    pkt = dec(udp())
    fw.tracker.conntrack_in(pkt, 1.0, 0)
    assert fw.tracker.table.count == 1 and len(fw.tracker.table) == 0
    fw.tracker.release(pkt)
    assert fw.tracker.table.count == 0 and fw.tracker.entries(1.0) == []


def test_table_full_early_drops_oldest_unassured():
    fw = FW(nf_conntrack_max=2)
    fw.send(udp(sport=1))
    fw.send(udp(sport=2), dt=1)
    r = fw.send(udp(sport=3), dt=1)
    assert r.verdict == "ACCEPT" and r.state == "NEW"
    ports = sorted(int(line.split("sport=")[1].split()[0]) for line in fw.table())
    assert ports == [2, 3]
    assert fw.fw.tracker.stats["early_drop"] == 1


def test_table_full_of_assured_drops_packet():
    fw = FW(nf_conntrack_max=1)
    fw.send(udp())
    fw.send(udp(S4, C4, 53, 1032), dt=0.1)
    fw.send(udp(), dt=3)                 # ASSURED now
    r = fw.send(udp(sport=5000))
    assert r.verdict == "DROP" and r.reason == "table full"
    assert fw.fw.tracker.stats["drop"] == 1
    # packets of the existing entry still pass
    assert fw.send(udp()).state == "ESTABLISHED"


def test_linux24_table_full_passes_untracked():
    fw = FW("linux-2.4", nf_conntrack_max=1)
    fw.send(udp())
    fw.send(udp(S4, C4, 53, 1032))
    fw.send(udp())
    r = fw.send(udp(sport=5000))
    assert r.verdict == "ACCEPT" and r.state == "INVALID"


def test_expire_sweeps_in_order_and_next_deadline():
    fw = FW(nf_conntrack_udp_timeout=5)
    fw.send(udp(sport=1))
    fw.send(udp(sport=2), dt=2)
    t = fw.fw.tracker
    assert t.next_deadline() is not None and t.next_deadline() <= fw.now + 3
    assert t.expire(fw.now + 3.5) == 1
    assert t.expire(fw.now + 10) == 1
    assert t.table.count == 0 and t.entries(fw.now + 10) == []


def test_expiry_buckets_bounded_under_refresh():
    fw = FW()
    fw.send(tcp(flags="A", seq=1, ack=1))          # pickup -> ESTABLISHED (capped 300 s)
    t = fw.fw.tracker
    for i in range(2000):
        fw.send(tcp(flags="A", seq=1, ack=1), dt=1)
    refs = sum(len(v) for v in t.table.buckets.values())
    assert refs <= 4, refs


def test_events_new_update_destroy():
    fw = FW(nf_conntrack_udp_timeout=3)
    fw.send(udp())
    fw.send(udp(S4, C4, 53, 1032), dt=1)
    fw.table(10)
    lines = [e[2] for e in fw.events]
    assert lines[0] == (f"    [NEW] udp      17 3 src={C4} dst={S4} sport=1032 dport=53 "
                        f"[UNREPLIED] src={S4} dst={C4} sport=53 dport=1032")
    assert lines[1] == (f" [UPDATE] udp      17 3 src={C4} dst={S4} sport=1032 dport=53 "
                        f"src={S4} dst={C4} sport=53 dport=1032")
    assert lines[2].startswith("[DESTROY] udp      17 src=")


def test_stats_and_invalid_reasons():
    t = Tracker(Settings())
    fw = Firewall(tracker=t)
    from flows import dec, icmp
    fw.process(dec(icmp(type=0)), 1.0)
    fw.process(dec(udp()), 1.0)
    fw.process(dec(udp(S4, C4, 53, 1032)), 1.1)
    # like the current kernel: found and insert stay 0
    assert t.stats["invalid"] == 1 and t.stats["insert"] == 0 and t.stats["found"] == 0
    assert sum(t.invalid_reasons.values()) == 1
