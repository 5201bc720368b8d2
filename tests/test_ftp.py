"""The FTP helper (nf_conntrack_ftp.c semantics): the command parsers cell by cell, line
tracking, the address check, and whole control connections through ``HelperFW``. The
parsers were also checked against a C transcription of the kernel's (random and
grammar-built inputs, no difference) and the flows against the kernel itself
(``test_helpers_kernel.py``)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from flows import C4, C6, S4, S6
from statewall.conntrack.helpers import Registry
from statewall.conntrack.helpers.ftp import (Ftp, find_command, in6_pton, update_nl_seq)
from statewall.conntrack.sysctl import SettingError, Settings
from statewall.lab.craft import TcpFlow
from test_expect import HelperFW, data_syn, flow, ftp_login

OWN4 = bytes([198, 51, 100, 2])


def a4(s: str) -> bytes:
    return ipaddress.ip_address(s).packed


# (direction, family, payload) -> (found, address or None, port); found: 1 command,
# 0 nothing, -1 partial (the packet is dropped)
CASES = [
    (0, 2, b"PORT 198,51,100,2,156,64\r\n", 1, a4("198.51.100.2"), 40000),
    (0, 2, b"port 198,51,100,2,156,64\r\n", 1, a4("198.51.100.2"), 40000),
    (0, 2, b"PoRt   198,51,100,2,156,64\r\n", -1, None, 0),       # one space only, then digits
    (0, 2, b"PORT 198,51,100,2,156,64", -1, None, 0),             # no '\r'
    (0, 2, b"PORT 198,51,100,2,156,64\n", -1, None, 0),           # '\n' is not the terminator
    (0, 2, b"PORT 198,51,100,2,156\r\n", -1, None, 0),            # five numbers
    (0, 2, b"PORT 198,51,100,2,156,64,1\r\n", -1, None, 0),       # seven
    (0, 2, b"PORT ,,,,,\r\n", 1, a4("0.0.0.0"), 0),               # empty numbers are 0
    (0, 2, b"PORT 198,51,99,258,156,64\r\n", 1, a4("198.51.99.2"), 40000),   # 258 spills
    (0, 2, b"PORT 4294967494,51,100,2,0,0\r\n", 1, a4("198.51.100.2"), 0),   # u32 wraps
    (0, 2, b"PORT 198,51,100,2,300,64\r\n", 1, a4("198.51.100.2"), 11328),   # u16 port
    (0, 2, b"PORT\r\n", -1, None, 0),                             # no ' '
    (0, 2, b"PORTS list\r\n", -1, None, 0),
    (0, 2, b"POR", -1, None, 0),                                  # a prefix: partial
    (0, 2, b"P", -1, None, 0),
    (0, 2, b"E", -1, None, 0),                                    # prefix of EPRT
    (0, 2, b"PORT", -1, None, 0),
    (0, 2, b"NOOP\r\nPORT 198,51,100,2,156,64\r\n", 0, None, 0),  # not at the start
    (0, 2, b"X" * 1400 + b"\r\n", 0, None, 0),
    (0, 2, b"EPRT |1|198.51.100.2|5000|\r\n", 1, a4("198.51.100.2"), 5000),
    (0, 2, b"EPRT !1!198.51.100.2!5000!\r\n", 1, a4("198.51.100.2"), 5000),
    (0, 2, b"EPRT |2|2001:db8::1|5000|\r\n", -1, None, 0),        # family of the connection
    (0, 2, b"EPRT |1|198.51.100.2|0|\r\n", -1, None, 0),          # port 0 refused
    (0, 2, b"EPRT |1|198.51.100.2|65536|\r\n", -1, None, 0),      # wraps to 0
    (0, 2, b"EPRT |1|198.51.100.2|65537|\r\n", 1, a4("198.51.100.2"), 1),
    (0, 2, b"EPRT 1|1|198.51.100.2|5|\r\n", -1, None, 0),         # a digit delimiter
    (0, 2, b"EPRT \x01|1|\r\n", -1, None, 0),
    (0, 2, b"EPRT |1|198.51.100.2|5000", -1, None, 0),            # no closing delimiter
    (0, 10, b"EPRT |2|2001:db8:1::2|40000|\r\n", 1, a4("2001:db8:1::2"), 40000),
    (0, 10, b"EPRT |2|2001:db8:1:0:0:0:0:2|40000|\r\n", 1, a4("2001:db8:1::2"), 40000),
    (0, 10, b"EPRT |2|::ffff:1.2.3.4|40000|\r\n", 1, a4("::ffff:1.2.3.4"), 40000),
    (0, 10, b"EPRT |2|1::2::3|40000|\r\n", -1, None, 0),
    (0, 10, b"EPRT |1|198.51.100.2|5000|\r\n", -1, None, 0),
    (1, 2, b"227 Entering Passive Mode (203,0,113,2,117,48).\r\n", 1, a4("203.0.113.2"),
     30000),
    (1, 2, b"227 =203,0,113,2,117,48\r\n", 1, a4("203.0.113.2"), 30000),    # RFC 1123
    (1, 2, b"227 Entering Passive Mode\r\n", -1, None, 0),        # no digits
    (1, 2, b"227 =203,0,113,2,117,48", -1, None, 0),              # nothing after
    (1, 2, b"227 ", -1, None, 0),
    (1, 2, b"2", -1, None, 0),
    (1, 2, b"229", -1, None, 0),
    (1, 2, b"226 done\r\n", 0, None, 0),
    (1, 2, b"229 Entering Extended Passive Mode (|||30001|)\r\n", 1, None, 30001),
    (1, 2, b"229 Extended |||1234|\r\n", -1, None, 0),            # no '('
    (1, 2, b"229 (|||0|)\r\n", -1, None, 0),
    (1, 2, b"229 (1231234|)\r\n", -1, None, 0),
    (1, 2, b"229 (||1234|)\r\n", -1, None, 0),
    (1, 10, b"229 (|||30001|)\r\n", 1, None, 30001),
    (1, 2, b"PORT 198,51,100,2,156,64\r\n", 0, None, 0),          # wrong direction
    (0, 2, b"227 Entering Passive Mode (203,0,113,2,117,48).\r\n", 0, None, 0),
]


@pytest.mark.parametrize("dir,l3,payload,found,addr,port", CASES)
def test_find_command(dir: int, l3: int, payload: bytes, found: int, addr: bytes | None,
                      port: int) -> None:
    f, _name, got_addr, got_port = find_command(payload, dir, l3)
    assert f == found
    if found == 1:
        assert (got_addr, got_port) == (addr, port)


@pytest.mark.parametrize("text,addr", [
    (b"::|", "::"), (b"1::|", "1::"), (b"::1|", "::1"), (b"1:2:3:4:5:6:7:8|", "1:2:3:4:5:6:7:8"),
    (b"1:2:3:4:5:6:7::|", "1:2:3:4:5:6:7:0"), (b"::1.2.3.4|", "::1.2.3.4"),
    (b"1:2:3:4:5:6:1.2.3.4|", "1:2:3:4:5:6:102:304"), (b"fFfF::|", "ffff::"),
    (b"1:2:3:4:5:6:7:8:9|", None), (b"12345::|", None), (b"1:::2|", None), (b":1::|", None),
    (b"::1.2.3.256|", None), (b"::1.2.3|", None), (b"1:2:3:4:5:6:7::8|", None), (b"|", None),
])
def test_in6_pton(text: bytes, addr: str | None) -> None:
    n, got = in6_pton(text, 0, len(text), ord("|"))
    if addr is None:
        assert got is None and n == 0
    else:
        assert got == ipaddress.ip_address(addr).packed and text[n:n + 1] == b"|"


def test_update_nl_seq_keeps_two_and_replaces_the_older_by_a_later() -> None:
    lst: list[int] = []
    update_nl_seq(lst, 100)
    update_nl_seq(lst, 100)
    assert lst == [100]
    update_nl_seq(lst, 200)
    assert lst == [100, 200]
    update_nl_seq(lst, 50)                    # before both: ignored
    assert lst == [100, 200]
    update_nl_seq(lst, 300)                   # replaces the older (100)
    assert lst == [300, 200]
    update_nl_seq(lst, 0xFFFFFFF0)            # sequence space: before 200 (wraps) - ignored
    assert lst == [300, 200]
    lst2 = [0xFFFFFFF0, 0xFFFFFFF8]
    update_nl_seq(lst2, 5)                    # after both, across the wrap
    assert lst2 == [5, 0xFFFFFFF8]


# -- whole connections -----------------------------------------------------------------

def test_first_segment_each_way_is_never_parsed() -> None:
    fw = HelperFW()
    f = flow()
    for s in f.handshake():
        fw.step(s)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))    # nothing before it
    assert fw.expectations() == []
    fw.step(f.data("server", b"227 (203,0,113,2,117,48)\r\n"))   # nor on the server side
    assert fw.expectations() == []
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))    # now after a line end
    assert len(fw.expectations()) == 1


def test_passive_and_extended_passive() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PASV\r\n"))
    fw.step(f.data("server", b"227 Entering Passive Mode (203,0,113,2,117,48).\r\n"))
    assert fw.expectations()[0].startswith(
        f"300 proto=6 src={C4} dst={S4} sport=0 dport=30000 ")
    assert fw.send(data_syn(C4, 45000, S4, 30000)).state == "RELATED"
    fw.step(f.data("client", b"EPSV\r\n"))
    fw.step(f.data("server", b"229 Entering Extended Passive Mode (|||30001|)\r\n"))
    assert "dport=30001" in fw.expectations()[0]
    assert fw.send(data_syn(C4, 45001, S4, 30001)).state == "RELATED"


def test_partial_command_is_dropped_and_its_retransmission_accepted() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    r = fw.step(f.data("client", b"POR", advance=False))
    assert (r.verdict, r.state) == ("DROP", "ESTABLISHED")
    assert r.reason == "nf_ct_ftp: dropping packet: partial matching of `PORT'"
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n")).verdict == "ACCEPT"
    assert len(fw.expectations()) == 1


def test_command_split_after_its_start_is_dropped_rest_not_parsed() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156", advance=False)).verdict == "DROP"
    # the sender retransmits in two pieces after all: the first piece is dropped again,
    # the second one does not start a line
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156")).verdict == "DROP"
    assert fw.step(f.data("client", b",64\r\n")).verdict == "ACCEPT"
    assert fw.expectations() == []


def test_out_of_order_and_retransmitted_segments() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    a = f.data("client", b"NOOP\r\n")
    b = f.data("client", b"PORT 198,51,100,2,156,64\r\n")
    fw.step(b)                     # before A: its sequence number is not a known line start
    assert fw.expectations() == []
    fw.step(a)
    fw.step(b)                     # retransmitted after A: parsed
    assert len(fw.expectations()) == 1
    fw.step(b)                     # again: the same expectation replaces itself
    assert len(fw.expectations()) == 1
    assert [e.split()[0] for e in fw.exp_events] == ["[NEW]", "[DESTROY]", "[NEW]"]


def test_third_party_address_needs_loose() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    assert fw.step(f.data("client", b"PORT 192,0,2,9,156,64\r\n")).verdict == "ACCEPT"
    assert fw.expectations() == []
    fw2 = HelperFW()
    fw2.settings.ftp_loose = 1
    fw2.fw.tracker.helpers = Registry(fw2.settings)
    f2 = flow()
    ftp_login(fw2, f2)
    fw2.step(f2.data("client", b"PORT 192,0,2,9,156,64\r\n"))
    (line,) = fw2.expectations()
    assert f"src={S4} dst=192.0.2.9 sport=0 dport=40000 " in line
    assert fw2.send(data_syn(S4, 20, "192.0.2.9", 40000)).state == "RELATED"


def test_port_zero_and_privileged_ports_are_expected_as_the_kernel_does() -> None:
    fw = HelperFW()
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,0,22\r\n"))     # port 22: no range check
    assert "dport=22 mask-src" in fw.expectations()[0]
    fw.step(f.data("server", b"200 ok\r\n"))
    fw.step(f.data("client", b"PORT 198,51,100,2,0,0\r\n"))
    assert "dport=0 mask-src" in fw.expectations()[0]


def test_ipv6_eprt_epsv_and_the_port_command_quirk() -> None:
    fw = HelperFW()
    f = flow(v6=True)
    ftp_login(fw, f)
    fw.step(f.data("client", b"EPRT |2|2001:db8:1::99|40001|\r\n"))   # another host
    assert fw.expectations() == []
    fw.step(f.data("server", b"200 ok\r\n"))
    fw.step(f.data("client", b"EPRT |2|2001:db8:1::2|40000|\r\n"))
    assert f"src={S6} dst={C6} sport=0 dport=40000 " in fw.expectations()[0]
    fw.step(f.data("server", b"200 ok\r\n"))
    # PORT on IPv6: the four numbers overwrite the first four bytes of the sender's own
    # address in the kernel's 16-byte union; 32,1,13,184 = 2001:0db8 matches
    fw.step(f.data("client", b"PORT 32,1,13,184,156,70\r\n"))
    assert "dport=40006 mask-src" in fw.expectations()[0]
    fw.step(f.data("server", b"200 ok\r\n"))
    r = fw.step(f.data("client", b"EPRT |1|198.51.100.2|5000|\r\n"))   # wrong family
    assert r.verdict == "DROP"


def test_template_zone_and_unknown_helper_name() -> None:
    from statewall.conntrack.format import conntrack_line
    from statewall.conntrack.template import CtTemplate
    fw = HelperFW()
    fw.template = lambda pkt: CtTemplate(helper="ftp", zone=5)   # type: ignore[method-assign]
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    (line,) = fw.expectations()
    assert line.endswith(" class=0 helper=ftp") and "zone" not in line   # as the kernel
    ct = next(iter(fw.tracker.entries(fw.now)))
    assert ct.zone == 5 and "zone=5 helper=ftp" in conntrack_line(ct, fw.now, fw.tracker.l4[6])
    # the data connection is looked up in the template's zone (raw marks it too)
    r = fw.send(data_syn(S4, 20, C4, 40000))
    assert r.state == "RELATED" and r.ct.zone == 5
    fw2 = HelperFW()
    fw2.template = lambda pkt: CtTemplate(helper="nosuch")        # type: ignore[method-assign]
    ftp_login(fw2, flow())
    assert next(iter(fw2.tracker.entries(fw2.now))).helper is None


def test_helper_needs_the_template() -> None:
    fw = HelperFW(raw={})
    f = flow()
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    assert fw.expectations() == []


def test_helper_names_and_module_parameters() -> None:
    s = Settings("linux", [("nf_conntrack_ftp.ports", "21,2121"),
                           ("/sys/module/nf_conntrack_tftp/parameters/ports", "69,1069"),
                           ("ip_conntrack_ftp.loose", "Y")])
    assert s.ftp_ports == (21, 2121) and s.tftp_ports == (69, 1069) and s.ftp_loose == 1
    r = Registry(s)
    assert r.names() == ["ftp", "ftp-2121", "tftp", "tftp-1"]
    assert r.find("ftp-2121", 10, 6) is not None and r.find("ftp-2121", 2, 17) is None
    assert Registry(Settings("linux", [("nf_conntrack_tftp.ports", "1069")])).names() == \
        ["ftp", "tftp-0"]
    # a port given twice: the module fails to load, no FTP helper at all
    assert Registry(Settings("linux", [("nf_conntrack_ftp.ports", "21,21")])).names() == \
        ["tftp"]
    assert Settings("linux", [("nf_conntrack_ftp.ports", "0x15")]).ftp_ports == (21,)
    for bad in ("1,2,3,4,5,6,7,8,9", "65536", "", "x"):
        with pytest.raises(SettingError):
            Settings("linux", [("nf_conntrack_ftp.ports", bad)])
    with pytest.raises(SettingError):
        Settings("linux", [("nf_conntrack_ftp.loose", "maybe")])


def test_ftp_on_another_port() -> None:
    fw = HelperFW(raw={(6, 2121): "ftp-2121"}, **{})
    fw.settings.ftp_ports = (21, 2121)
    fw.fw.tracker.helpers = Registry(fw.settings)
    f = flow(sport=2121)
    ftp_login(fw, f)
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    assert fw.expectations()[0].endswith("sport=40001 dport=2121 class=0 helper=ftp-2121")


# -- linux-2.4 -------------------------------------------------------------------------

def test_linux_24_ftp() -> None:
    fw = HelperFW("linux-2.4")
    f = flow()
    ftp_login(fw, f)
    # only "PORT " with a space and '\r'; EPRT and 229 unknown; partial drops
    fw.step(f.data("client", b"EPRT |1|198.51.100.2|5000|\r\n"))
    assert fw.expectations() == []
    fw.step(f.data("server", b"200 ok\r\n"))
    assert fw.step(f.data("client", b"PORT", advance=False)).verdict == "DROP"
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156,64)\r\n",
                          advance=False)).verdict == "DROP"
    # 2.4.0 moved its line mark before parsing: the dropped segment ended in '\n', so its
    # retransmission (same sequence number) is no longer at a line start: not parsed,
    # accepted
    assert fw.step(f.data("client", b"PORT 198,51,100,2,156,64)\r\n")).verdict == "ACCEPT"
    t = fw.tracker
    assert t.expect.entries(fw.now) == []
    fw.step(f.data("client", b"PORT 198,51,100,2,156,64\r\n"))
    assert [e.dport for e in t.expect.entries(fw.now)] == [40000]
    fw.step(f.data("server", b"200 ok\r\n"))
    fw.step(f.data("client", b"PASV\r\n"))
    fw.step(f.data("server", b"227 Entering Passive Mode (203,0,113,2,117,48)\r\n"))
    assert [e.dport for e in t.expect.entries(fw.now)] == [30000]   # one per master
    assert fw.send(data_syn(C4, 45000, S4, 30000)).state == "RELATED"


def test_linux_24_ignores_segments_with_a_bad_checksum() -> None:
    from scapy.layers.inet import TCP
    fw = HelperFW("linux-2.4")
    f = flow()
    ftp_login(fw, f)
    p = f.data("client", b"PORT 198,51,100,2,156,64\r\n").packet
    p[TCP].chksum = 0x1234
    fw.send(p)          # 2.4 conntrack does not verify checksums; its FTP helper does
    assert fw.tracker.expect.entries(fw.now) == []


# -- hostile input never crashes and stays bounded -----------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["client", "server"]),
                          st.one_of(st.binary(max_size=80),
                                    st.sampled_from([b"PORT 198,51,100,2,156,64\r\n",
                                                     b"227 (203,0,113,2,1,2)\r\n",
                                                     b"EPRT |1|198.51.100.2|9|\r\n",
                                                     b"229 (|||7|)\r\n", b"\r\n", b"POR",
                                                     b"EPRT |2|::|1|\r\n"]))),
                max_size=25),
       st.booleans())
def test_random_control_traffic_is_bounded(msgs: list[tuple[str, bytes]], v6: bool) -> None:
    fw = HelperFW()
    f = TcpFlow(client=(C6 if v6 else C4, 40001), server=(S6 if v6 else S4, 21))
    ftp_login(fw, f)
    for side, data in msgs:
        if data:
            fw.step(f.data(side, data))      # type: ignore[arg-type]
        assert len(fw.tracker.expect) <= 1
    master = next(ct for ct in fw.tracker.entries(fw.now) if ct.orig[4] == 21)
    assert master.help is not None and len(master.help.data[0]) <= 2


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 1), st.sampled_from([2, 10]))
def test_parser_never_raises(payload: bytes, dir: int, l3: int) -> None:
    found, _name, addr, port = find_command(payload or b"x", dir, l3)
    assert found in (-1, 0, 1) and 0 <= port <= 0xFFFF
    assert addr is None or len(addr) in (4, 16)


def test_ftp_helper_object() -> None:
    h = Ftp("ftp", 2)
    assert h.policy[0].max_expected == 1 and h.policy[0].timeout == 300
    assert h.new_data() == ([], [])
