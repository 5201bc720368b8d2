"""The seed text (../shared/seed/connection-tracking.txt), reproduced with --profile linux-2.4:
its /proc/net/ip_conntrack lines, numbers and classifications, on captures recorded from the
kernel (corpus/demo_udp_dns) and on crafted handshakes with time as a parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import C4, FW, S4, icmp, tcp, udp
from statewall.cli.main import main
from statewall.conntrack.format import ip_conntrack_line

DNS = str(Path(__file__).resolve().parent.parent / "corpus" / "demo_udp_dns" / "capture.pcapng")
U = (f"src={C4} dst={S4} sport=1032 dport=53 ", f"src={S4} dst={C4} sport=53 dport=1032 ")


def table24(fw: FW, dt: float = 0.0) -> list[str]:
    fw.now += dt
    t = fw.fw.tracker
    return [ip_conntrack_line(ct, fw.now, t.l4[ct.proto]) for ct in t.entries(fw.now)]


@pytest.mark.parametrize("now, expected", [
    # "where we have 19 seconds left, 11 seconds have already elapsed without a reply"
    ("11", f"udp      17 19 {U[0]}[UNREPLIED] {U[1]}use=1 "),
    # "a couple of seconds after": reset to 30, UNREPLIED gone
    ("13", f"udp      17 28 {U[0]}{U[1]}use=1 "),
    # "a stream ... 180 seconds ... ASSURED", "a few seconds after"
    ("17.1", f"udp      17 177 {U[0]}{U[1]}[ASSURED] use=1 "),
])
def test_seed_udp_lines(capsys: pytest.CaptureFixture[str], now: str, expected: str) -> None:
    rc = main(["replay", DNS, "--profile", "linux-2.4", "--now", now, "--table",
               "--format", "ip_conntrack"])
    assert rc == 0
    assert capsys.readouterr().out.splitlines() == [expected]


def test_seed_tcp_handshake_lines() -> None:
    fw = FW("linux-2.4")
    c, s = (f"src={C4} dst={S4} sport=1311 dport=80 ", f"src={S4} dst={C4} sport=80 dport=1311 ")
    assert fw.send(tcp(sport=1311, flags="S", seq=100)).state == "NEW"
    assert table24(fw, 1) == [f"tcp      6 119 SYN_SENT {c}[UNREPLIED] {s}use=1 "]
    # "the SYN+ACK ... this is an ESTABLISHED connection"
    assert fw.send(tcp(S4, C4, 80, 1311, "SA", seq=500, ack=101)).state == "ESTABLISHED"
    assert table24(fw, 3) == [f"tcp      6 57 SYN_RECV {c}{s}use=1 "]
    assert fw.send(tcp(sport=1311, flags="A", seq=101, ack=501)).state == "ESTABLISHED"
    assert table24(fw, 5) == [f"tcp      6 431995 ESTABLISHED {c}{s}[ASSURED] use=1 "]


def test_seed_ack_creates_unassured_entry() -> None:
    """'sending an ACK packet through your firewall to a non-existent machine ... will create
    a state table entry no problem because it is ... treated as NEW (not ASSURED)'."""
    for profile in ("linux-2.4", "linux"):
        fw = FW(profile)
        r = fw.send(tcp(flags="A", seq=5, ack=9))
        assert r.state == "NEW" and "[ASSURED]" not in r.line, profile


def test_seed_close_and_rst_timeouts() -> None:
    fw = FW("linux-2.4")
    fw.send(tcp(sport=1311, flags="S", seq=100))
    fw.send(tcp(S4, C4, 80, 1311, "SA", seq=500, ack=101))
    fw.send(tcp(sport=1311, flags="A", seq=101, ack=501))
    fw.send(tcp(sport=1311, flags="R", seq=101, ack=501))
    # "the state table connection status changes to CLOSE and times out ... after 10 seconds"
    assert table24(fw)[0].startswith("tcp      6 10 CLOSE ")
    assert table24(fw, 10) == []


def test_seed_icmp_request_reply() -> None:
    """'The request in each case is classified as NEW and the reply as ESTABLISHED.'"""
    for t, r in ((8, 0), (13, 14), (15, 16), (17, 18)):
        fw = FW("linux-2.4")
        assert fw.send(icmp(type=t, id=t)).state == "NEW"
        assert fw.send(icmp(S4, C4, type=r, id=t)).state == "ESTABLISHED"
    # "An echo reply cannot be allowed ... a reply has to be in response to a request"
    assert FW("linux-2.4").send(icmp(type=0)).state == "INVALID"


def test_seed_icmp_error_related() -> None:
    """'an icmp redirect ... is RELATED ... provided there is already a tcp or udp
    connection in the state table'."""
    from scapy.layers.inet import ICMP, IP
    from scapy.packet import raw
    fw = FW("linux-2.4")
    q = udp()
    fw.send(q)
    assert fw.send(IP(src="192.0.2.1", dst=C4) / ICMP(type=5, code=1, gw="192.0.2.1")
                   / raw(q)[:28]).state == "RELATED"
