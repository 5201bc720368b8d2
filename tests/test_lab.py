"""The kernel lab and the recorded corpus.

Always: every scenario file loads and only uses documentation addresses; every recording is
self-consistent (``kernel.json`` packets <-> ``capture.pcapng`` frames, order, timestamps,
interfaces, ctstate vocabulary, entry lines found in the listings); the pcapng writer and
reader agree; importing the lab does not import scapy.
As root with working ``ip netns``: record a TCP handshake live and check the kernel's
classification and table, and that the namespaces are gone afterwards.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("statewall") is None:  # not installed: use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from statewall.lab import pktinfo  # noqa: E402
from statewall.lab.netns import is_doc_address, lab_available, list_lab_namespaces  # noqa: E402
from statewall.lab.pcapng import DIR_INBOUND, read_pcapng, write_pcapng  # noqa: E402
from statewall.lab.scenario import (Scenario, Send, corpus_files, l3_bytes,  # noqa: E402
                                    load_scenario)

CORPUS = ROOT / "corpus"
SCENARIOS = corpus_files(CORPUS)
RECORDED = sorted(n for n in SCENARIOS if (CORPUS / n / "kernel.json").exists())
CTSTATES = {"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", None}


def test_corpus_is_not_empty() -> None:
    assert len(SCENARIOS) >= 20
    assert "demo_tcp_session" in RECORDED and "demo_udp_dns" in RECORDED


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_file_loads(name: str) -> None:
    scn = load_scenario(SCENARIOS[name])
    assert scn.name == name and scn.description and scn.steps
    for step in scn.steps:
        if isinstance(step, Send):
            info = pktinfo.parse(l3_bytes(step.packet))
            assert info is not None, step
            for p in (info, info.inner):
                if p is not None:
                    assert is_doc_address(p.src) and is_doc_address(p.dst), info.summary()


@pytest.mark.parametrize("name", RECORDED)
def test_recording_is_consistent(name: str) -> None:
    d = CORPUS / name
    k = json.loads((d / "kernel.json").read_text())
    frames = read_pcapng((d / "capture.pcapng").read_bytes())
    assert k["scenario"] == name and k["capture"] == "capture.pcapng"
    assert k["versions"]["kernel"]
    pk = k["packets"]
    assert [p["n"] for p in pk] == list(range(1, len(pk) + 1))
    assert len(frames) == len(pk) > 0
    last = 0
    for p, fr in zip(pk, frames):
        assert fr.ts_ns == p["ts_ns"] and fr.iface == p["iface"] and fr.direction == DIR_INBOUND
        assert fr.ts_ns >= last, "capture out of time order"
        last = fr.ts_ns
        info = pktinfo.parse(fr.data[14:])
        assert info is not None and info.summary() == p["summary"]
        assert p["ctstate"] in CTSTATES
        assert p["dir"] in {"ORIGINAL", "REPLY", None}
        assert (p["dir"] is None) == (p["ctstate"] in {"INVALID", "UNTRACKED", None})
        assert p["nflog"] == (p["ctstate"] is not None)
        if p["ctstate"] is None:  # only fragments held by defrag go unclassified
            assert "frag" in p, p
        if p["conntrack"] is not None:
            assert p["entry"] is None or p["entry"] in p["conntrack"]
            assert len(p["proc"]) == len(p["conntrack"])
        if p["ctstate"] in {"NEW", "ESTABLISHED"} and p["snapshot_exact"]:
            # a tracked packet's connection is in the table right after it, unless the
            # packet itself ended it (RST before any reply) or it expired
            assert p["entry"] is not None or "R" in p["summary"].split("[")[-1][:3], p
    assert k["final"] is not None and "conntrack" in k["final"]
    # kernel.json of a recording stays small enough to commit
    assert (d / "kernel.json").stat().st_size < 64_000


def test_demo_udp_dns_matches_the_seed_walkthrough() -> None:
    if "demo_udp_dns" not in RECORDED:
        pytest.skip("demo_udp_dns not recorded")
    k = json.loads((CORPUS / "demo_udp_dns" / "kernel.json").read_text())
    states = [(p["ctstate"], p["dir"]) for p in k["packets"]]
    assert states == [("NEW", "ORIGINAL"), ("ESTABLISHED", "REPLY"),
                      ("ESTABLISHED", "ORIGINAL"), ("ESTABLISHED", "REPLY")]
    first, second, third = (s["conntrack"][0] for s in k["snapshots"])
    assert first.split()[2] == "19" and "[UNREPLIED]" in first
    assert "[UNREPLIED]" not in second and "[ASSURED]" not in second
    assert "[ASSURED]" in third


def test_pcapng_roundtrip() -> None:
    buf = io.BytesIO()
    pkts = [(1_700_000_000_123_456_789, "c0", b"\x02" * 60, DIR_INBOUND),
            (1_700_000_000_223_456_789, "s0", b"\x03" * 61, DIR_INBOUND)]
    assert write_pcapng(buf, ("c0", "s0"), pkts) == 2
    back = read_pcapng(buf.getvalue())
    assert [(p.ts_ns, p.iface, p.data, p.direction) for p in back] == pkts


def test_listing_tuples_and_entry_match() -> None:
    line = ("ipv6     10 udp      17 29 src=2001:0db8:0001:0000:0000:0000:0000:0002 "
            "dst=2001:0db8:0002:0000:0000:0000:0000:0002 sport=1 dport=2 [UNREPLIED] "
            "src=2001:0db8:0002:0000:0000:0000:0000:0002 dst=2001:0db8:0001:0000:0000:0000:0000:0002 "
            "sport=2 dport=1 mark=0 zone=0 use=2")
    proto, orig, reply = pktinfo.line_tuples(line)
    assert proto == 17 and orig["src"] == "2001:db8:1::2" and reply["sport"] == "2"
    info = pktinfo.PacketInfo(6, "2001:db8:2::2", "2001:db8:1::2", 17, 48, sport=2, dport=1)
    assert pktinfo.find_entry(info, [line]) == line


def test_importing_the_lab_does_not_import_scapy() -> None:
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import statewall.lab, statewall.lab.record, statewall.lab.craft\n"
            "assert not [m for m in sys.modules if m.startswith('scapy')]\n") % str(ROOT / "src")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------
LAB_OK, LAB_WHY = lab_available()


@pytest.mark.skipif(not LAB_OK, reason=f"live kernel lab unavailable: {LAB_WHY}")
def test_live_tcp_handshake_recording(tmp_path: Path) -> None:
    from statewall.lab.craft import TcpFlow
    from statewall.lab.pcapng import read_pcapng
    from statewall.lab.record import record

    f = TcpFlow(client=("198.51.100.2", 45678), server=("203.0.113.2", 80))
    scn = Scenario("live_handshake", "SYN, SYN/ACK, ACK through a fresh lab.",
                   [*f.handshake(delay=0.05), f.rst("client", delay=0.05)])
    prefix = f"sw-{os.getpid()}-test"
    rec = record(scn, prefix=prefix)
    assert list_lab_namespaces(prefix) == [], "namespaces left behind"
    rec.write(tmp_path)
    k = json.loads((tmp_path / "kernel.json").read_text())
    frames = read_pcapng((tmp_path / "capture.pcapng").read_bytes())
    pk = k["packets"]
    assert [(p["iface"], p["ctstate"], p["dir"]) for p in pk] == [
        ("c0", "NEW", "ORIGINAL"), ("s0", "ESTABLISHED", "REPLY"),
        ("c0", "ESTABLISHED", "ORIGINAL"), ("c0", "ESTABLISHED", "ORIGINAL")]
    assert all(p["forwarded"] and p["snapshot_exact"] for p in pk)
    assert [fr.ts_ns for fr in frames] == [p["ts_ns"] for p in pk]
    # what fw received is byte for byte what the scenario sent
    for st, fr in zip(scn.steps, frames):
        assert isinstance(st, Send) and fr.data[14:] == l3_bytes(st.packet)
    entries = [p["entry"] for p in pk]
    assert entries[0].split()[:4] == ["tcp", "6", "119", "SYN_SENT"]
    assert "[UNREPLIED]" in entries[0] and entries[0].endswith("mark=0 use=1")
    assert entries[1].split()[2:4] == ["59", "SYN_RECV"]
    assert entries[2].split()[3] == "ESTABLISHED" and "[ASSURED]" in entries[2]
    assert entries[3].split()[2:4] == ["9", "CLOSE"]  # RST after the handshake: CLOSE, 10 s
    assert pk[0]["proc"][0].startswith("ipv4     2 tcp      6 119 SYN_SENT src=198.51.100.2")
    assert pk[0]["proc"][0].endswith("mark=0 zone=0 use=2")
    assert any("[NEW] tcp" in e for e in k["events"])
    assert k["warnings"] == []
