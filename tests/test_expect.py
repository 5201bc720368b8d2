"""Expectations (nf_conntrack_expect.c semantics) through the tracker, plus the test harness
the helper tests share: ``HelperFW`` plays a firewall whose raw table attaches helpers by
port (``-p tcp --dport 21 -j CT --helper ftp``, ``-p udp --dport 69 -j CT --helper tftp``)
and, optionally, whose filter table accepts ESTABLISHED,RELATED and NEW only to given ports
- the conntrack side of the issue's headline ruleset, without the rule engine."""

from __future__ import annotations

from typing import Any

import pytest

from flows import C4, C6, FW, S4, S6, dec, tcp, udp
from statewall.conntrack.conn import (IP_CT_RELATED, IPS_EXPECTED, IPS_HELPER,
                                      ctinfo_state)
from statewall.conntrack.core import VERDICT_DROP
from statewall.conntrack.expect import (EBUSY, EMFILE, IPEXP_DESTROY, IPEXP_NEW,
                                        NF_CT_EXPECT_INACTIVE, NF_CT_EXPECT_PERMANENT,
                                        Expectation, ExpectPolicy)
from statewall.conntrack.format import (conntrack_line, conntrack_use, expect_event_line,
                                        expect_line, expect_origin, expect_proc_line,
                                        ip_conntrack_expect_line)
from statewall.conntrack.helpers import Help, helper_match
from statewall.conntrack.template import CtTemplate
from statewall.firewall import ACCEPT, DROP, Decision
from statewall.lab.craft import TcpFlow

# the raw-table rules of the tests: (protocol, destination port) -> helper
RAW_HELPERS = {(6, 21): "ftp", (17, 69): "tftp"}


class Res:
    """One packet's outcome: verdict, xt_state name, ctinfo, reason, the entry."""

    def __init__(self, d: Decision) -> None:
        self.verdict = d.verdict
        pkt = d.pkt
        self.ct = None if pkt is None else pkt.ct
        self.state = None if pkt is None else ctinfo_state(pkt.ct, pkt.ctinfo)
        self.ctinfo = None if pkt is None else pkt.ctinfo
        self.reason = d.reason

    def __repr__(self) -> str:
        return f"<{self.verdict} {self.state} {self.reason}>"


class HelperFW(FW):
    """``FW`` whose packets pass raw (CT --helper by port), conntrack, an optional filter
    (``new_ports``: accept ESTABLISHED,RELATED, NEW only to these (proto, port); drop the
    rest) and the helpers + confirm - the order of the kernel's hooks."""

    def __init__(self, profile: str = "linux", raw: dict[tuple[int, int], str] | None = None,
                 new_ports: set[tuple[int, int]] | None = None, **sysctls: Any) -> None:
        super().__init__(profile, **sysctls)
        self.raw = RAW_HELPERS if raw is None else raw
        self.new_ports = new_ports
        self.exp_events: list[str] = []
        t = self.fw.tracker

        def esink(now: float, bits: int, exp: Expectation) -> None:
            self.exp_events.append(expect_event_line(bits, exp, now))
        t.expect_sink = esink

    @property
    def tracker(self) -> Any:
        return self.fw.tracker

    def template(self, pkt: Any) -> CtTemplate | None:
        name = self.raw.get((pkt.proto, pkt.dport))
        return None if name is None or self.profile_24 else CtTemplate(helper=name)

    @property
    def profile_24(self) -> bool:
        return bool(self.tracker.is_24)

    def send(self, p: Any, dt: float = 0.0, hook: int = 0) -> Res:  # type: ignore[override]
        self.now += dt
        now = self.now
        pkt = dec(p)
        t = self.tracker
        t.expire(now)
        if t.conntrack_in(pkt, now, hook, self.template(pkt)) == VERDICT_DROP:
            t.release(pkt)
            return Res(Decision(DROP, pkt, pkt.reason))
        if self.new_ports is not None:
            state = ctinfo_state(pkt.ct, pkt.ctinfo)
            if not (state in ("ESTABLISHED", "RELATED")
                    or (state == "NEW" and (pkt.proto, pkt.dport) in self.new_ports)):
                t.release(pkt)
                r = Res(Decision(DROP, pkt, "filter"))
                r.state = state
                return r
        if t.confirm(pkt, now) == VERDICT_DROP:
            return Res(Decision(DROP, pkt, pkt.reason))
        d = Decision(ACCEPT, pkt, pkt.reason)
        return Res(d)

    def step(self, step: Any, dt: float = 0.0) -> Res:
        """Send a ``lab.scenario.Send`` (from ``TcpFlow``)."""
        return self.send(step.packet, dt)

    def expectations(self) -> list[str]:
        t = self.tracker
        return [expect_line(e, self.now) for e in t.expect.entries(self.now)]


def ftp_login(fw: HelperFW, f: TcpFlow) -> None:
    """Handshake and a greeting/USER/331 exchange: both directions have a line end."""
    for s in f.handshake():
        assert fw.step(s).verdict == ACCEPT
    for s in (f.data("server", b"220 hi\r\n"), f.data("client", b"USER ftp\r\n"),
              f.data("server", b"331 pw\r\n"), f.data("client", b"PASS x\r\n"),
              f.data("server", b"230 ok\r\n")):
        r = fw.step(s)
        assert r.verdict == ACCEPT, r


def flow(cport: int = 40001, v6: bool = False, sport: int = 21) -> TcpFlow:
    return TcpFlow(client=(C6 if v6 else C4, cport), server=(S6 if v6 else S4, sport))


def data_syn(src: str, sport: int, dst: str, dport: int) -> Any:
    return tcp(src, dst, sport, dport, "S", seq=5000)


# -- the expectation table ---------------------------------------------------------------

def test_port_command_expects_server_to_client_and_relates_it() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n")).verdict == ACCEPT
    assert fw.expectations() == [
        f"300 proto=6 src={S4} dst={C4} sport=0 dport=40000 mask-src=255.255.255.255 "
        f"mask-dst=255.255.255.255 sport=0 dport=65535 master-src={C4} master-dst={S4} "
        "sport=40001 dport=21 class=0 helper=ftp"]
    r = fw.send(data_syn(S4, 20, C4, 40000), dt=1)
    assert (r.verdict, r.state, r.ctinfo) == (ACCEPT, "RELATED", IP_CT_RELATED)
    assert r.ct.status & IPS_EXPECTED and r.ct.master is not None
    assert r.ct.helper is None and not r.ct.status & IPS_HELPER
    assert fw.expectations() == []               # used up
    assert expect_origin(r.ct) is not None and "dport=40000" in expect_origin(r.ct)
    # the reply is ESTABLISHED_REPLY, then the data connection is ESTABLISHED
    r2 = fw.send(tcp(C4, S4, 40000, 20, "SA", seq=9000, ack=5001))
    assert r2.state == "ESTABLISHED" and r2.ctinfo == 3
    r3 = fw.send(tcp(S4, C4, 20, 40000, "A", seq=5001, ack=9001))
    assert r3.state == "ESTABLISHED" and r3.ctinfo == 0
    # the master counts its child: conntrack -L shows use=2
    master = r.ct.master
    assert conntrack_use(master) == 2 and conntrack_use(r.ct) == 1
    # events: NEW then DESTROY (used) of the expectation
    assert [e.split()[0] for e in fw.exp_events] == ["[NEW]", "[DESTROY]"]
    assert fw.exp_events[1].split()[1] == "299"


def test_expected_connection_copies_the_mark_and_is_not_another_port() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    master = fw.tracker.lookup((bytes([198, 51, 100, 2]), bytes([203, 0, 113, 2]), 6, 40001,
                                21, 0), fw.now)
    master.mark = 7
    assert fw.send(data_syn(S4, 20, C4, 40001)).state == "NEW"      # wrong port
    r = fw.send(data_syn(S4, 33333, C4, 40000))     # any source port
    assert r.state == "RELATED" and r.ct.mark == 7


def test_expectation_expires_after_300_seconds() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    assert fw.tracker.next_deadline() is not None
    fw.now += 299.9
    assert len(fw.expectations()) == 1 and fw.expectations()[0].startswith("0 proto=6")
    fw.now += 0.1
    fw.tracker.expire(fw.now)
    assert fw.expectations() == []
    assert fw.exp_events[-1].startswith("[DESTROY] 0 proto=6")
    assert fw.send(data_syn(S4, 20, C4, 40000)).state == "NEW"


def test_expectations_die_with_the_master() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    assert len(fw.expectations()) == 1
    fw.step(f.rst("client"))                 # CLOSE: the entry lives 10 s more
    assert len(fw.expectations()) == 1
    fw.now += 10
    fw.tracker.expire(fw.now)
    assert fw.expectations() == []
    assert fw.exp_events[-1].startswith("[DESTROY] 290 proto=6")
    assert fw.send(data_syn(S4, 20, C4, 40000)).state == "NEW"


def test_new_command_replaces_the_expectation_max_expected_one() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    fw.step(f.data("server", b"200 ok\r\n"))
    fw.step(f.data("client", b"PORT 198,51,100,2,156,65\r\n"))
    ex = fw.expectations()
    assert len(ex) == 1 and "dport=40001 mask-src" in ex[0]
    assert [e.split()[0] for e in fw.exp_events] == ["[NEW]", "[DESTROY]", "[NEW]"]
    assert fw.send(data_syn(S4, 20, C4, 40000)).state == "NEW"


def test_same_expectation_from_another_master_is_refused_and_dropped() -> None:
    fw = HelperFW()
    a, b = flow(40001), flow(40002)
    ftp_login(fw, a)
    ftp_login(fw, b)
    assert fw.step(a.data("client", b"PORT 198,51,100,2,156,64\r\n")).verdict == ACCEPT
    r = fw.step(b.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    assert r.verdict == DROP and r.reason == "nf_ct_ftp: dropping packet: cannot add expectation"
    assert len(fw.expectations()) == 1 and "sport=40001 dport=21" in fw.expectations()[0]


def test_global_expect_max_refuses_and_drops() -> None:
    fw = HelperFW(nf_conntrack_expect_max=2)
    flows_ = [flow(40001 + i) for i in range(3)]
    for f in flows_:
        ftp_login(fw, f)
    for i, f in enumerate(flows_[:2]):
        assert fw.step(f.data("client", f"PORT 198,51,100,2,156,{i}\r\n".encode())).verdict \
            == ACCEPT
    r = fw.step(flows_[2].data("client", b"PORT 198,51,100,2,156,9\r\n"))
    assert r.verdict == DROP
    assert len(fw.expectations()) == 2
    # a master replacing its own expectation still fits in a full table
    fw.step(flows_[0].data("server", b"200 ok\r\n"))
    assert fw.step(flows_[0].data("client", b"PORT 198,51,100,2,156,99\r\n")).verdict \
        == ACCEPT
    assert len(fw.expectations()) == 2


def test_flood_of_commands_stays_bounded_by_max_expected() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    for i in range(500):
        r = fw.step(f.data("client", f"PORT 198,51,100,2,{100 + i // 256},{i % 256}\r\n"
                           .encode()))
        assert r.verdict == ACCEPT
    assert len(fw.expectations()) == 1
    assert len(fw.tracker.expect.heap) <= 64 + 4     # dead timer entries are compacted


def test_table_bookkeeping_unit() -> None:
    """ExpectTable directly: clash under intersected masks, INACTIVE/PERMANENT, eviction."""
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    t = fw.tracker
    master = next(ct for ct in t.entries(fw.now) if ct.orig[4] == 21)
    c, s = bytes([198, 51, 100, 2]), bytes([203, 0, 113, 2])
    e1 = Expectation(master, 0, 2, s, c, 6, None, 5000)
    assert t.expect.related(e1, fw.now) == 0
    # another master, same destination, any source: clashes (masks intersect)
    b = flow(40002)
    ftp_login(fw, b)
    m2 = next(ct for ct in t.entries(fw.now) if ct.orig[3] == 40002)
    e2 = Expectation(m2, 0, 2, None, c, 6, None, 5000)
    assert t.expect.related(e2, fw.now) == EBUSY
    e3 = Expectation(m2, 0, 2, bytes([203, 0, 113, 9]), c, 6, None, 5000)
    assert t.expect.related(e3, fw.now) == 0      # different exact sources: no clash
    # INACTIVE expectations are not found; PERMANENT ones stay after use
    e3.flags |= NF_CT_EXPECT_INACTIVE
    assert fw.send(data_syn("203.0.113.9", 1, C4, 5000)).state == "NEW"
    e1.flags |= NF_CT_EXPECT_PERMANENT
    assert fw.send(data_syn(S4, 2, C4, 5000)).state == "RELATED"
    assert fw.send(data_syn(S4, 3, C4, 5000)).state == "RELATED"
    assert e1.live


def test_expectation_of_unconfirmed_or_dying_master_is_not_used() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    t = fw.tracker
    master = next(ct for ct in t.entries(fw.now) if ct.orig[4] == 21)
    e = Expectation(master, 0, 2, bytes([203, 0, 113, 2]), bytes([198, 51, 100, 2]), 6, None,
                    6000)
    assert t.expect.related(e, fw.now) == 0
    master.status |= 1 << 9                          # DYING
    assert fw.send(data_syn(S4, 20, C4, 6000)).state == "NEW"
    assert e.live                                    # not consumed


def test_max_expected_eviction_and_emfile() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    t = fw.tracker
    master = next(ct for ct in t.entries(fw.now) if ct.orig[4] == 21)
    h = master.help
    assert isinstance(h, Help)

    class TwoPolicy:
        name, l3num, proto, port = "two", 2, 6, 0
        policy = (ExpectPolicy(2, 10),)

        def help(self, *a: Any) -> int:
            return 1

        def new_data(self) -> None:
            return None
    h.helper = TwoPolicy()                           # type: ignore[assignment]
    c, s = bytes([198, 51, 100, 2]), bytes([203, 0, 113, 2])
    es = [Expectation(master, 0, 2, s, c, 6, None, 7000 + i) for i in range(3)]
    for e in es:
        assert t.expect.related(e, fw.now) == 0
    assert [e.live for e in es] == [False, True, True]   # the oldest was evicted
    h.helper.policy = (ExpectPolicy(0, 10),)          # type: ignore[union-attr,misc]
    assert t.expect.related(Expectation(master, 0, 2, s, c, 6, None, 7100), fw.now) == 0
    assert len(h.expectations) == 3
    fw.settings.nf_conntrack_expect_max = 3
    assert t.expect.related(Expectation(master, 0, 2, s, c, 6, None, 7200), fw.now) == EMFILE


def test_expect_listing_formats_ipv6_and_proc() -> None:
    fw = HelperFW()
    f = flow(v6=True)
    ftp_login(fw, f)
    fw.step(f.data("client", b"EPRT |2|2001:db8:1::2|40000|\r\n"))
    t = fw.tracker
    (e,) = t.expect.entries(fw.now)
    assert expect_line(e, fw.now) == (
        f"300 proto=6 src={S6} dst={C6} sport=0 dport=40000 "
        "mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535 "
        f"master-src={C6} master-dst={S6} sport=40001 dport=21 class=0 helper=ftp")
    assert expect_proc_line(e, fw.now + 0.5) == (
        "299 l3proto = 10 proto=6 src=2001:0db8:0002:0000:0000:0000:0000:0002 "
        "dst=2001:0db8:0001:0000:0000:0000:0000:0002 sport=0 dport=40000 ftp")
    assert fw.exp_events[0].startswith("    [NEW] 300 proto=6 src=2001:db8:2::2")


def test_helper_match_is_about_the_master() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    r = fw.send(data_syn(S4, 20, C4, 40000))
    master = r.ct.master
    assert helper_match(r.ct, "ftp") and helper_match(r.ct, "")
    assert helper_match(r.ct, "ftp-2121")          # strncmp on the helper's length
    assert not helper_match(r.ct, "ft") and not helper_match(r.ct, "tftp")
    assert not helper_match(master, "ftp")          # the control connection has no master
    assert not helper_match(None, "ftp")
    line = conntrack_line(master, fw.now, fw.tracker.l4[6])
    assert "helper=ftp" in line


def test_linux_24_profile_attaches_by_port_and_lists_expecting() -> None:
    fw = HelperFW("linux-2.4")
    f = flow()
    ftp_login(fw, f)
    t = fw.tracker
    master = next(ct for ct in t.entries(fw.now) if ct.orig[4] == 21)
    assert master.helper == "ftp" and not master.status & IPS_HELPER
    # 2.4.0: "PORT " with a third-party address still expects (to that address)
    assert fw.step(f.data("client", b"PORT 192,0,2,9,156,64\r\n")).verdict == ACCEPT
    (e,) = t.expect.entries(fw.now)
    assert ip_conntrack_expect_line(e) == (
        f"EXPECTING: proto=6 src={S4} dst=192.0.2.9 sport=0 dport=40000 ")
    assert e.timeout is None                           # no timer in 2.4.0
    fw.now += 10000
    assert t.expect.entries(fw.now) == [e]
    # one per master: the next command replaces it
    fw.step(f.data("server", b"200 ok\r\n"))
    fw.step(f.data("client", b"PORT 198,51,100,2,156,65\r\n"))
    (e2,) = t.expect.entries(fw.now)
    assert e2.dport == 40001 and e2.dst == bytes([198, 51, 100, 2])


@pytest.mark.parametrize("bits,kind", [(IPEXP_NEW, "[NEW]"), (IPEXP_DESTROY, "[DESTROY]")])
def test_event_kinds(bits: int, kind: str) -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    (e,) = fw.tracker.expect.entries(fw.now)
    assert expect_event_line(bits, e, fw.now).split()[0] == kind


def test_udp_tftp_through_harness_smoke() -> None:
    fw = HelperFW()
    assert fw.send(udp(C4, S4, 3333, 69, b"\x00\x01f\x00octet\x00")).state == "NEW"
    assert fw.send(udp(S4, C4, 4444, 3333, b"\x00\x03\x00\x01data")).state == "RELATED"
