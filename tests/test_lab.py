"""The kernel lab and the recorded corpus.

Always: every scenario file loads and only uses documentation addresses; every recording is
self-consistent (``kernel.json`` packets <-> ``capture.pcapng`` frames, order, timestamps,
interfaces and directions, ctstate and verdict vocabulary, entry lines found in the
listings); recordings are written with ``statewall.io.capture``; importing the lab does not
import scapy.
As root with working ``ip netns``: record a TCP handshake live and check the kernel's
classification and table, and that the namespaces are gone afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("statewall") is None:  # not installed: use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from statewall.io.capture import Frame, open_capture  # noqa: E402
from statewall.lab import pktinfo  # noqa: E402
from statewall.lab.netns import is_doc_address, lab_available, list_lab_namespaces  # noqa: E402
from statewall.lab.record import link_scoped  # noqa: E402
from statewall.lab.scenario import (FW, Scenario, Send, corpus_files, l3_bytes,  # noqa: E402
                                    load_scenario)

CORPUS = ROOT / "corpus"
SCENARIOS = corpus_files(CORPUS)
RECORDED = sorted(n for n in SCENARIOS if (CORPUS / n / "kernel.json").exists())
CTSTATES = {"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", None}
DIR_INBOUND, DIR_OUTBOUND = 1, 2


def read_frames(path: Path) -> list[Frame]:
    with open_capture(path) as cap:
        frames = list(cap)
    assert cap.error is None, cap.error
    return frames


def test_corpus_is_not_empty() -> None:
    assert len(SCENARIOS) >= 60
    assert "demo_tcp_session" in RECORDED and "demo_udp_dns" in RECORDED
    assert set(SCENARIOS) == set(RECORDED), "scenarios without a recording (or the reverse)"


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
                    for a in (p.src, p.dst):
                        assert is_doc_address(a) or link_scoped(a), info.summary()


@pytest.mark.parametrize("name", RECORDED)
def test_recording_is_consistent(name: str) -> None:
    d = CORPUS / name
    k = json.loads((d / "kernel.json").read_text())
    frames = read_frames(d / "capture.pcapng")
    assert k["scenario"] == name and k["capture"] == "capture.pcapng"
    assert k["format"] == "statewall-kernel-recording/2"
    assert k["versions"]["kernel"]
    scn = load_scenario(SCENARIOS[name])
    assert k["requires"] == list(scn.requires)
    assert k["rules_input"] == {"ipv4": scn.rules_v4.strip(), "ipv6": scn.rules_v6.strip(),
                                **({"ipset": scn.ipsets.strip()} if scn.ipsets else {})}
    pk = k["packets"]
    assert [p["n"] for p in pk] == list(range(1, len(pk) + 1))
    assert len(frames) == len(pk) > 0
    last = 0
    for p, fr in zip(pk, frames):
        assert fr.ts_ns == p["ts_ns"]
        if p["hook"] == "PREROUTING":
            assert fr.iface_name == p["iface"] and fr.flags == DIR_INBOUND
        else:  # sent by fw itself: on its way out
            assert p["hook"] == "OUTPUT" and p["iface"] is None
            assert fr.flags == DIR_OUTBOUND
            assert p["out_iface"] in (None, fr.iface_name)
        assert fr.ts_ns >= last, "capture out of time order"
        last = fr.ts_ns
        info = pktinfo.parse(fr.data[14:])
        assert info is not None and info.summary() == p["summary"]
        assert p["ctstate"] in CTSTATES
        assert p["dir"] in {"ORIGINAL", "REPLY", None}
        assert (p["dir"] is None) == (p["ctstate"] in {"INVALID", "UNTRACKED", None})
        assert p["nflog"] == (p["ctstate"] is not None)
        assert p["verdict"] in {"ACCEPT", "DROP", None}
        assert (p["verdict"] == "ACCEPT") == (p["forwarded"] or p["delivered"])
        if p["ctstate"] is None:  # fragments held by defrag, or dropped in raw by a rule
            assert "frag" in p or (scn.rules_v4 + scn.rules_v6).strip(), p
        if p["conntrack"] is not None:
            assert p["entry"] is None or p["entry"] in p["conntrack"]
            assert len(p["proc"]) == len(p["conntrack"])
        if (p["ctstate"] in {"NEW", "ESTABLISHED"} and p["snapshot_exact"]
                and not (p["ctstate"] == "NEW" and p["verdict"] == "DROP")):
            # a tracked packet's connection is in the table right after it, unless the
            # packet itself ended it (RST before any reply), it expired, or it was a
            # first packet that was dropped (an entry is confirmed only on accept)
            assert p["entry"] is not None or "R" in p["summary"].split("[")[-1][:3], p
    assert k["final"] is not None and "conntrack" in k["final"]
    # kernel.json of a recording stays small enough to commit: about 1 KB a packet at most
    # (long real-program scenarios list the table only every N-th packet)
    assert (d / "kernel.json").stat().st_size < 64_000 + 1_000 * len(k["packets"])


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


def test_lab_has_no_capture_file_code_of_its_own() -> None:
    lab = ROOT / "src" / "statewall" / "lab"
    assert not (lab / "pcapng.py").exists()
    record_src = (lab / "record.py").read_text()
    assert "from statewall.io.capture import PcapngWriter" in record_src


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
    from statewall.lab.record import record

    f = TcpFlow(client=("198.51.100.2", 45678), server=("203.0.113.2", 80))
    scn = Scenario("live_handshake", "SYN, SYN/ACK, ACK through a fresh lab.",
                   [*f.handshake(delay=0.05), f.rst("client", delay=0.05)])
    prefix = f"sw-{os.getpid()}-test"
    rec = record(scn, prefix=prefix)
    assert list_lab_namespaces(prefix) == [], "namespaces left behind"
    rec.write(tmp_path)
    k = json.loads((tmp_path / "kernel.json").read_text())
    frames = read_frames(tmp_path / "capture.pcapng")
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


@pytest.mark.skipif(not LAB_OK, reason=f"live kernel lab unavailable: {LAB_WHY}")
def test_live_fw_own_traffic_and_silence(tmp_path: Path) -> None:
    """fw sends through OUTPUT (Send("fw", ...)); packets to fw are delivered (INPUT) and
    its stack does not answer them (no RST, no echo reply) unless asked to."""
    from scapy.layers.inet import ICMP, IP

    from statewall.lab.craft import TcpFlow
    from statewall.lab.record import record

    out = TcpFlow(client=("198.51.100.1", 41000), server=("198.51.100.2", 22))
    inc = TcpFlow(client=("198.51.100.2", 41001), server=("198.51.100.1", 23))
    ping = IP(src="198.51.100.2", dst="198.51.100.1") / ICMP(id=77, seq=1)
    steps = [Send(FW, out.syn().packet, 0.05), Send("client", out.synack().packet, 0.05),
             inc.syn(delay=0.2), ("client", ping, 0.2)]
    prefix = f"sw-{os.getpid()}-silent"
    k = record(Scenario("fw_own", "fw's own traffic.", steps), prefix=prefix).kernel_json()
    assert list_lab_namespaces(prefix) == []
    pk = k["packets"]
    assert [(p["hook"], p["iface"], p["ctstate"], p["dir"], p["verdict"]) for p in pk] == [
        ("OUTPUT", None, "NEW", "ORIGINAL", "ACCEPT"),
        ("PREROUTING", "c0", "ESTABLISHED", "REPLY", "ACCEPT"),
        ("PREROUTING", "c0", "NEW", "ORIGINAL", "ACCEPT"),
        ("PREROUTING", "c0", "NEW", "ORIGINAL", "ACCEPT")]
    assert pk[0]["out_iface"] == "c0" and not pk[0]["delivered"]
    assert all(p["delivered"] and not p["forwarded"] for p in pk[1:])
    assert pk[2]["entry"].split()[3] == "SYN_SENT"  # no RST from fw's stack
    assert k["fw_sent"] == [] and k["topology"]["fw_silent"] is True
    # the same SYN and ping with fw's stack answering: RST and echo reply leave fw
    k2 = record(Scenario("fw_own2", "answering.", steps[2:], fw_silent=False),
                prefix=prefix).kernel_json()
    sent = [s["summary"] for s in k2["fw_sent"]]
    assert any("[RA]" in s for s in sent) and any("type=0" in s for s in sent), sent
    # the RST is the only reply: conntrack deletes the entry at once (nf_ct_kill_acct)
    assert not any("dport=23" in ln for ln in k2["final"]["conntrack"])
    assert any(s.get("ctstate") == "ESTABLISHED" and s.get("dir") == "REPLY"
               for s in k2["fw_sent"] if "[RA]" in s["summary"]), k2["fw_sent"]
