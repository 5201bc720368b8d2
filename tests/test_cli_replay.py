"""The `statewall replay` contract: trace fields, tables in every format, events, --now,
settings, damaged captures, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import raw

from flows import C4, S4, tcp, udp
from statewall.cli.main import main
from statewall.io.capture import PcapngWriter, PcapWriter

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
TCP_SESSION = str(CORPUS / "demo_tcp_session" / "capture.pcapng")
ETH = bytes.fromhex("020000000101020000000102" "0800")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def write_pcap(path: Path, packets: list[bytes], t0: float = 1000.0, dt: float = 1.0) -> None:
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i, p in enumerate(packets):
            w.write(ETH + p, int((t0 + i * dt) * 1e9))


def test_trace_fields(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--trace", "-")
    assert rc == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 11
    first = lines[0]
    assert set(first) >= {"n", "ts", "iface", "verdict", "ctstate", "dir", "conntrack", "reason"}
    assert (first["n"], first["iface"], first["verdict"], first["ctstate"], first["dir"]) == \
        (1, "c0", "ACCEPT", "NEW", "original")
    assert first["conntrack"].startswith("tcp      6 120 SYN_SENT src=198.51.100.2 ")
    assert lines[1]["dir"] == "reply" and lines[1]["ctstate"] == "ESTABLISHED"
    assert lines[-1]["conntrack"].startswith("tcp      6 120 TIME_WAIT ")


def test_table_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, err = run(capsys, "replay", TCP_SESSION, "--table")
    assert rc == 0 and out.startswith("tcp      6 120 TIME_WAIT ") and "1 flow entries" in err
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--table", "--format", "proc")
    assert out.startswith("ipv4     2 tcp      6 120 TIME_WAIT ") and out.rstrip().endswith(
        "[ASSURED] mark=0 zone=0 use=2")
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--table", "--format", "json")
    entry = json.loads(out)[0]
    assert entry["state"] == "TIME_WAIT" and "ASSURED" in entry["status"]
    assert entry["original"]["dport"] == 80
    dest = tmp_path / "table.txt"
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--table", str(dest))
    assert out == "" and dest.read_text().startswith("tcp      6 120 TIME_WAIT")


def test_now_relative_and_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--table", "--now", "60")
    assert out.startswith("tcp      6 61 TIME_WAIT ") or out.startswith("tcp      6 60 TIME_WAIT ")
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--table", "--now", "200")
    assert out == ""
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--table", "--now", "0.05")
    assert out.startswith("tcp      6 119 SYN_SENT ") or out.startswith("tcp      6 120 SYN_SENT ")


def test_events_with_timestamps(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "replay", TCP_SESSION, "--events", "-", "--now", "500")
    lines = out.splitlines()
    kinds = [x.split("\t")[1].split()[0] for x in lines]
    assert kinds == ["[NEW]"] + ["[UPDATE]"] * 6 + ["[DESTROY]"]
    assert lines[0].startswith("[") and "]\t    [NEW] tcp      6 120 SYN_SENT" in lines[0]
    assert "TIME_WAIT" in lines[-1]


def test_sysctl_options_and_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cap = tmp_path / "u.pcap"
    write_pcap(cap, [raw(udp())])
    rc, out, _ = run(capsys, "replay", str(cap), "--table",
                     "--sysctl", "net.netfilter.nf_conntrack_udp_timeout=7")
    assert out.startswith("udp      17 7 ")
    conf = tmp_path / "s.conf"
    conf.write_text("# comment\nnet.netfilter.nf_conntrack_udp_timeout = 9\n")
    rc, out, _ = run(capsys, "replay", str(cap), "--table", "--sysctl", f"@{conf}")
    assert out.startswith("udp      17 9 ")
    conf.write_text("net.netfilter.nf_conntrack_udp_timeout = 9\nnet.bogus = 1\n")
    rc, out, err = run(capsys, "replay", str(cap), "--sysctl", f"@{conf}")
    assert rc == 2 and f"{conf}:2: unknown sysctl 'net.bogus'" in err
    rc, _, err = run(capsys, "replay", str(cap), "--sysctl", "nf_conntrack_udp_timeout=abc")
    assert rc == 2 and "not an integer" in err


def test_damaged_capture_processes_up_to_damage(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    cap = tmp_path / "d.pcap"
    write_pcap(cap, [raw(udp(sport=1)), raw(udp(sport=2)), raw(udp(sport=3))])
    data = cap.read_bytes()
    cap.write_bytes(data[:-10])
    rc, out, err = run(capsys, "replay", str(cap), "--trace", "-")
    assert rc == 1
    assert [json.loads(x)["n"] for x in out.splitlines()] == [1, 2]
    assert "damaged after packet 2" in err


def test_not_a_capture_and_missing_file(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello world, not a capture")
    rc, _, err = run(capsys, "replay", str(bad))
    assert rc == 2 and "not a pcap or pcapng file" in err
    rc, _, err = run(capsys, "replay", str(tmp_path / "nope.pcap"))
    assert rc == 2 and "nope.pcap" in err


def test_non_ip_bad_ip_and_local_output(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    cap = tmp_path / "m.pcapng"
    with open(cap, "wb") as f:
        w = PcapngWriter(f)
        eth = w.interface("eth0", 1)
        raw_if = w.interface(None, 101)
        w.write(raw(Ether() / ARP()), 10**9, eth)
        bad = bytearray(raw(IP(src=C4, dst=S4) / UDP()))
        bad[10] ^= 0xFF                                 # IPv4 header checksum
        w.write(ETH + bytes(bad), 2 * 10**9, eth)
        p = bytearray(raw(udp(src="192.0.2.1", dst=S4)))
        p[26] ^= 0xFF                                   # bad UDP checksum, but locally sent
        w.write(bytes(p), 3 * 10**9, raw_if)
    rc, out, _ = run(capsys, "replay", str(cap), "--trace", "-", "--iface", "eth0=192.0.2.1/24")
    t = [json.loads(x) for x in out.splitlines()]
    assert t[0]["verdict"] == "ACCEPT" and t[0]["ctstate"] is None and "not an IP" in t[0]["reason"]
    assert t[0]["iface"] == "eth0"
    assert t[1]["verdict"] == "DROP" and "checksum" in t[1]["reason"]
    assert t[2]["ctstate"] == "NEW" and t[2]["iface"] is None


def test_invalid_packet_has_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cap = tmp_path / "i.pcap"
    write_pcap(cap, [raw(tcp(flags="SF"))])
    rc, out, _ = run(capsys, "replay", str(cap), "--trace", "-")
    t = json.loads(out)
    assert t["ctstate"] == "INVALID" and t["verdict"] == "ACCEPT" and t["conntrack"] is None
    assert t["reason"]


def test_stdin_capture(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> None:
    import io
    import sys
    cap = tmp_path / "s.pcap"
    write_pcap(cap, [raw(udp())])

    class FakeStdin:
        buffer = io.BytesIO(cap.read_bytes())
    monkeypatch.setattr(sys, "stdin", FakeStdin)
    rc, out, _ = run(capsys, "replay", "-", "--table")
    assert rc == 0 and out.startswith("udp      17 30 ")


def test_expectations_listing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The FTP helper's expectation after a PORT command, as `conntrack -L expect` and
    /proc/net/nf_conntrack_expect show it (formats checked against the kernel by the
    helper_* corpus recordings); gone once the data connection used it."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("scn", CORPUS / "helper_ftp_crafted.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rules = tmp_path / "ftp.rules"
    rules.write_text(mod.RULES)
    cap = str(CORPUS / "helper_ftp_crafted" / "capture.pcapng")
    rc, out, err = run(capsys, "replay", cap, "--rules", str(rules), "--expect", "--now", "1.0")
    assert rc == 0 and "1 expectations have been shown" in err
    assert out.startswith("299 proto=6 src=203.0.113.2 dst=198.51.100.2 sport=0 dport=40000 ")
    assert out.rstrip().endswith("class=0 helper=ftp")
    rc, out, _ = run(capsys, "replay", cap, "--rules", str(rules), "--expect", "--now", "1.0",
                     "--format", "proc")
    assert out.startswith("299 l3proto = 2 proto=6 src=203.0.113.2 dst=198.51.100.2 ")
    rc, out, _ = run(capsys, "replay", cap, "--rules", str(rules), "--expect", "--now", "1.1")
    assert out == ""
    rc, out, _ = run(capsys, "replay", cap, "--rules", str(rules), "--expect-events", "-",
                     "--now", "1.1")
    kinds = [line.split("\t")[1].split()[0] for line in out.splitlines()]
    assert kinds == ["[NEW]", "[DESTROY]"] and " 300 proto=6 " in out.splitlines()[0]
