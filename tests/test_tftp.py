"""The TFTP helper (nf_conntrack_tftp.c semantics) through ``HelperFW``; the same exchanges
were compared with the kernel in ``test_helpers_kernel.py``."""

from __future__ import annotations

from typing import Any

from flows import C4, C6, S4, S6, udp
from statewall.conntrack.helpers import Registry
from statewall.conntrack.helpers.tftp import Tftp
from statewall.conntrack.sysctl import Settings
from test_expect import HelperFW

RRQ = b"\x00\x01hello.txt\x00octet\x00"
WRQ = b"\x00\x02up.txt\x00octet\x00"


def data(block: int = 1, payload: bytes = b"d" * 512) -> bytes:
    return b"\x00\x03" + block.to_bytes(2, "big") + payload


def ack(block: int = 1) -> bytes:
    return b"\x00\x04" + block.to_bytes(2, "big")


def test_read_request_expects_the_server_from_any_port() -> None:
    fw = HelperFW()
    r = fw.send(udp(C4, S4, 3333, 69, RRQ))
    assert (r.verdict, r.state) == ("ACCEPT", "NEW") and r.ct.helper == "tftp"
    assert fw.expectations() == [
        f"300 proto=17 src={S4} dst={C4} sport=0 dport=3333 mask-src=255.255.255.255 "
        f"mask-dst=255.255.255.255 sport=0 dport=65535 master-src={C4} master-dst={S4} "
        "sport=3333 dport=69 class=0 helper=tftp"]
    r = fw.send(udp(S4, C4, 4444, 3333, data()), dt=0.01)
    assert (r.state, r.ctinfo) == ("RELATED", 1) and r.ct.master is not None
    assert fw.expectations() == []
    assert fw.send(udp(C4, S4, 3333, 4444, ack())).state == "ESTABLISHED"
    assert fw.send(udp(S4, C4, 4444, 3333, data(2, b"end"))).state == "ESTABLISHED"
    # the expectation is used up: another port of the server is NEW
    assert fw.send(udp(S4, C4, 5555, 3333, data())).state == "NEW"


def test_write_request_and_repeated_request() -> None:
    fw = HelperFW()
    fw.send(udp(C4, S4, 3334, 69, WRQ))
    fw.send(udp(C4, S4, 3334, 69, WRQ), dt=1)          # retransmitted: replaces it
    assert len(fw.expectations()) == 1 and fw.expectations()[0].startswith("300 ")
    assert [e.split()[0] for e in fw.exp_events] == ["[NEW]", "[DESTROY]", "[NEW]"]
    assert fw.send(udp(S4, C4, 4445, 3334, ack(0))).state == "RELATED"


def test_other_opcodes_and_short_payloads_are_ignored() -> None:
    fw = HelperFW()
    for i, payload in enumerate((ack(1), data(), b"\x00\x05\x00\x01oops\x00", b"\x00",
                                 b"\x01", b"\x00\x06opt")):
        fw.send(udp(C4, S4, 3340 + i, 69, payload))
    assert fw.expectations() == []


def test_request_from_the_server_side_expects_too() -> None:
    # the helper looks at every packet of the entry, whatever its direction
    fw = HelperFW()
    fw.send(udp(C4, S4, 3350, 69, ack(0)))
    assert fw.expectations() == []
    fw.send(udp(S4, C4, 69, 3350, RRQ))
    assert len(fw.expectations()) == 1


def test_ipv6() -> None:
    fw = HelperFW()
    fw.send(udp(C6, S6, 3333, 69, RRQ))
    assert fw.expectations()[0].startswith(f"300 proto=17 src={S6} dst={C6} sport=0 "
                                           "dport=3333 mask-src=ffff:")
    assert fw.send(udp(S6, C6, 4444, 3333, data())).state == "RELATED"


def test_headline_ruleset_new_only_to_69() -> None:
    fw = HelperFW(new_ports={(17, 69)})
    assert fw.send(udp(C4, S4, 3333, 69, RRQ)).verdict == "ACCEPT"
    assert fw.send(udp(S4, C4, 4444, 3333, data())).verdict == "ACCEPT"     # RELATED
    assert fw.send(udp(C4, S4, 3333, 4444, ack())).verdict == "ACCEPT"
    r = fw.send(udp(S4, C4, 5555, 3333, data()))
    assert (r.verdict, r.state) == ("DROP", "NEW")
    assert fw.send(udp(C4, S4, 3333, 5353, b"x")).verdict == "DROP"
    # the rule dropped the request before the helper: no expectation
    fw2 = HelperFW(new_ports=set())
    assert fw2.send(udp(C4, S4, 3333, 69, RRQ)).verdict == "DROP"
    assert fw2.expectations() == [] and len(fw2.tracker.table) == 0


def test_refused_expectation_drops_the_request_and_its_new_entry() -> None:
    fw = HelperFW(nf_conntrack_expect_max=1)
    fw.send(udp(C4, S4, 3333, 69, RRQ))
    count = fw.tracker.table.count
    r = fw.send(udp(C4, S4, 3334, 69, RRQ))
    assert r.verdict == "DROP" and r.reason == "nf_ct_tftp: dropping packet: cannot add expectation"
    assert fw.tracker.table.count == count and len(fw.tracker.table) == 1
    assert len(fw.expectations()) == 1


def test_names_for_other_ports() -> None:
    r = Registry(Settings("linux", [("nf_conntrack_tftp.ports", "69,1069,2069")]))
    assert [h.name for h in (r.find("tftp", 2, 17), r.find("tftp-1", 2, 17),
                             r.find("tftp-2", 10, 17))] == ["tftp", "tftp-1", "tftp-2"]
    t: Any = r.find("tftp", 2, 17)
    assert isinstance(t, Tftp) and t.port == 69 and t.policy[0].timeout == 300
