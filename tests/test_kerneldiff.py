"""``statewall kernel-diff``: planning a lab from a capture, the comparison's strictness,
the report, the command line; as root, whole runs against the live kernel (the bundled
capture, JSON output, a detected difference, teardown on Ctrl-C)."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from statewall.io.capture import Frame, PcapngWriter, PcapWriter, open_capture
from statewall.kerneldiff import model, plan, report
from statewall.kerneldiff.compare import compare, entry_summary, same_table
from statewall.lab.netns import lab_available, list_lab_namespaces
from statewall.lab.scenario import FW, Send, Snapshot

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
MIXED = CORPUS / "captures" / "mixed.pcap"
STATEWALL = [sys.executable, "-m", "statewall"]


def recording(name: str) -> tuple[dict[str, Any], list[Frame]]:
    k: dict[str, Any] = json.loads((CORPUS / name / "kernel.json").read_text())
    with open_capture(CORPUS / name / "capture.pcapng") as cap:
        return k, list(cap)


def frames_of(data: bytes) -> list[Frame]:
    from statewall.io.capture import CaptureReader
    return list(CaptureReader(io.BytesIO(data)))


def ip4(src: str, dst: str, ttl: int = 64, ident: int = 1, proto: int = 17,
        payload: bytes = b"\x9c\x40\x00\x35\x00\x0c\x00\x00abcd") -> bytes:
    import ipaddress
    import struct
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0, ttl, proto, 0,
                      ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:] + payload


def eth(l3: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + l3


# -- planning ------------------------------------------------------------------------------
def test_plan_two_sides_from_a_plain_pcap() -> None:
    k, frames = recording("demo_tcp_session")
    buf = io.BytesIO()
    w = PcapWriter(buf, 1, nanosecond=True)
    for f in frames:
        w.write(f.data, f.ts_ns)
    pl = plan.plan_capture(frames_of(buf.getvalue()))
    assert pl.mode == "sides" and [ln.fw_ifname for ln in pl.links] == ["c0", "s0"]
    assert pl.side_of == {"198.51.100.2": "c0", "203.0.113.2": "s0"}
    assert [p.side for p in pl.packets] == [p["iface"] for p in k["packets"]]
    assert pl.skipped == [] and len(pl.packets) == len(frames)
    assert pl.links[0].neighbours == ("198.51.100.2",)


def test_plan_sides_for_icmp_and_udp_votes() -> None:
    votes = [ip4("198.51.100.7", "203.0.113.9"),                      # 40000 -> 53
             ip4("203.0.113.9", "198.51.100.7",
                 payload=b"\x00\x35\x9c\x40\x00\x0c\x00\x00abcd"),     # 53 -> 40000
             ip4("192.0.2.4", "203.0.113.10", proto=1,
                 payload=b"\x08\x00\x00\x00\x12\x34\x00\x01")]         # echo request
    buf = io.BytesIO()
    w = PcapWriter(buf, 101)  # raw IP
    for i, v in enumerate(votes):
        w.write(v, 1_700_000_000_000_000_000 + i * 1000)
    pl = plan.plan_capture(frames_of(buf.getvalue()), side_names=("lan", "wan"))
    assert pl.side_of == {"198.51.100.7": "lan", "203.0.113.9": "wan", "192.0.2.4": "lan",
                          "203.0.113.10": "wan"}
    assert [p.side for p in pl.packets] == ["lan", "wan", "lan"]


def test_plan_interfaces_directions_and_forwarded_copies() -> None:
    a = ip4("198.51.100.2", "203.0.113.2", ttl=64)
    fwd = ip4("198.51.100.2", "203.0.113.2", ttl=63)
    local = ip4("203.0.113.1", "203.0.113.2", ident=9)
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    e0, e1 = w.interface("eth0", 1), w.interface("eth1", 1)
    t = 1_700_000_000_000_000_000
    w.write(eth(a), t, e0)                 # arrives on eth0 (no direction flag)
    w.write(eth(fwd), t + 1000, e1)         # the same packet leaving on eth1: not injected
    w.write(eth(a), t + 2000, e0)          # a real duplicate (same TTL): injected
    w.write(eth(local), t + 3000, e1, flags=2)   # fw's own packet (--iface address)
    w.write(eth(ip4("203.0.113.2", "198.51.100.2", ident=0, proto=6,
                    payload=b"\x00\x50\x9c\x40" + bytes(8) + b"\x50\x14" + bytes(6))),
            t + 4000, e0, flags=2)         # a REJECT reset in the server's name: fw's answer
    pl = plan.plan_capture(frames_of(buf.getvalue()),
                           fw_ifaces=[("eth1", ["203.0.113.1/24"])])
    assert pl.mode == "interfaces"
    assert [(p.index, p.side) for p in pl.packets] == [(1, "eth0"), (3, "eth0"), (4, FW)]
    assert dict(pl.skipped) == {2: "forwarded copy", 5: "sent by the firewall (its own answer)"}
    links = {ln.fw_ifname: ln for ln in pl.links}
    assert links["eth1"].fw_addrs == ("203.0.113.1/24",)
    assert "203.0.113.2" in links["eth1"].neighbours  # seen leaving on eth1
    assert "198.51.100.2" in links["eth0"].neighbours


def test_plan_linux_cooked_capture_directions() -> None:
    import struct
    a = ip4("198.51.100.2", "203.0.113.2", ttl=64)
    fwd = ip4("198.51.100.2", "203.0.113.2", ttl=63)

    def sll(pkttype: int, l3: bytes) -> bytes:
        return struct.pack("!HHH8sH", pkttype, 1, 6, b"\x02" * 8, 0x0800) + l3
    buf = io.BytesIO()
    w = PcapWriter(buf, 113)
    w.write(sll(0, a), 1_700_000_000_000_000_000)
    w.write(sll(4, fwd), 1_700_000_000_000_001_000)   # PACKET_OUTGOING
    pl = plan.plan_capture(frames_of(buf.getvalue()))
    assert [p.index for p in pl.packets] == [1] and pl.skipped == [(2, "forwarded copy")]


def test_plan_refuses_addresses_outside_the_documentation_ranges() -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, 101)
    w.write(ip4("10.1.2.3", "203.0.113.2"), 1_700_000_000_000_000_000)
    with pytest.raises(plan.PlanError, match="--any-address"):
        plan.plan_capture(frames_of(buf.getvalue()))
    pl = plan.plan_capture(frames_of(buf.getvalue()), any_address=True)
    assert pl.packets[0].side == "c0"


def test_scenario_timing_speed_and_marks() -> None:
    _, frames = recording("demo_udp_dns")
    pl = plan.plan_capture(frames)
    scn = plan.to_scenario(pl, "x", speed=4, marks=[5.0], sysctls={
        "net.netfilter.nf_conntrack_udp_timeout": "8"}, snapshots="none")
    sends = [s for s in scn.steps if isinstance(s, Send)]
    t0 = frames[0].ts_ns
    assert [s.at for s in sends] == pytest.approx([(f.ts_ns - t0) / 4e9 for f in frames])
    snaps = [s for s in scn.steps if isinstance(s, Snapshot)]
    assert [s.at for s in snaps] == [1.25]
    assert scn.sysctls["net.netfilter.nf_conntrack_udp_timeout"] == "2"
    assert scn.sysctls["net.netfilter.nf_conntrack_tcp_timeout_established"] == "108000"
    assert scn.sysctls["net.ipv4.ipfrag_time"] == "8"
    assert scn.snapshots == "none" and scn.links is not None and scn.requires == ()
    rules = plan.to_scenario(pl, "y", rules_v4="*filter\n-A FORWARD -j DROP\nCOMMIT")
    assert rules.requires == ("rules",)


# -- the comparison ------------------------------------------------------------------------
def test_compare_agrees_on_a_recording() -> None:
    k, frames = recording("tcp_rst")
    c = compare(k, frames)
    assert c.agree and c.totals()["packets"] == len(frames) == c.totals()["tables_compared"]


def test_compare_reports_every_kind_of_difference() -> None:
    k, frames = recording("tcp_rst")
    bad = copy.deepcopy(k)
    bad["packets"][1]["ctstate"] = "NEW"
    bad["packets"][2]["verdict"] = "DROP"
    line = bad["packets"][3]["entry"]
    toks = line.split()
    toks[2] = str(int(toks[2]) + 5)                     # beyond the 2 s tolerance
    bad["packets"][3]["entry"] = " ".join(toks)
    bad["packets"][3]["conntrack"] = [bad["packets"][3]["entry"]]
    ok = copy.deepcopy(k)
    toks = ok["packets"][3]["conntrack"][0].split()
    toks[2] = str(int(toks[2]) + 2)                     # within it
    ok["packets"][3]["conntrack"] = [" ".join(toks)]
    assert compare(ok, frames).agree
    bad["events"] = bad["events"][:-1]
    c = compare(bad, frames)
    kinds = {(d.n, d.kind) for d in c.diffs}
    assert {(2, "ctstate"), (3, "verdict"), (4, "entry"), (None, "events")} <= kinds
    firsts = c.first_divergences()
    assert [p.n for p in firsts] == [2] and "198.51.100.2:40010" in firsts[0].conn
    assert "packet 2" in "\n".join(c.messages())


def test_destroy_events_for_expired_entries_may_lag_on_either_side() -> None:
    k, frames = recording("udp_expiry")
    destroys = [e for e in k["events"] if "[DESTROY]" in e]
    assert destroys
    fewer = copy.deepcopy(k)      # the entry that expired and stayed gone (dport 5001)
    fewer["events"] = [e for e in k["events"] if not ("[DESTROY]" in e and "dport=5001" in e)]
    assert compare(fewer, frames).agree
    recreated = copy.deepcopy(k)  # 5000 expired and was created again: DESTROY is owed
    recreated["events"] = [e for e in k["events"]
                           if not ("[DESTROY]" in e and "dport=5000 " in e)]
    assert not compare(recreated, frames).agree
    live = copy.deepcopy(k)       # a DESTROY for an entry still listed is a difference
    entry = k["final"]["conntrack"][0].split()
    live["events"].append("[1.0]\t[DESTROY] " + " ".join(entry[:2] + entry[3:-2]))
    assert not compare(live, frames).agree


def test_same_table_is_a_set_comparison_with_tolerance() -> None:
    a = "udp      17 29 src=198.51.100.2 dst=203.0.113.2 sport=1 dport=2 [UNREPLIED] x"
    b = "udp      17 27 src=198.51.100.3 dst=203.0.113.2 sport=1 dport=2 [UNREPLIED] x"
    assert same_table([a, b], [b.replace(" 27 ", " 28 "), a], 2) is None
    assert same_table([a], [a.replace(" 29 ", " 26 ")], 2) is not None
    assert same_table([a], [a, b], 2) is not None
    assert entry_summary("tcp      6 119 SYN_SENT src=1 dst=2 [UNREPLIED] mark=5 use=1") == \
        "SYN_SENT [UNREPLIED] 119 mark=5"


def test_rules_scenarios_are_expected_failures_until_the_engine_is_wired() -> None:
    assert model.missing_features(["rules"]) == ([] if model.RULES_WIRED else ["rules"])
    assert model.missing_features([]) == []
    assert model.has_rules("*filter\n:FORWARD DROP [0:0]\nCOMMIT", "")
    assert not model.has_rules("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT", "")


def test_report_text_and_json() -> None:
    k, frames = recording("icmp_error_tcp")
    c = compare(k, frames)
    text = report.text(c, {"title": "x.pcap", "lab": "corpus lab"})
    assert text.startswith("statewall kernel-diff: x.pcap\n")
    assert "RELATED/R" in text and "statewall agrees with the kernel" in text
    assert text.count(" same\n") == len(frames)
    doc = json.loads(report.as_json(c, {"title": "x.pcap"}))
    assert doc["agree"] is True and len(doc["packets"]) == len(frames)
    assert doc["packets"][5]["kernel"]["ctstate"] == "RELATED"
    bad = copy.deepcopy(k)
    bad["packets"][5]["ctstate"] = "INVALID"
    text = report.text(compare(bad, frames), all_packets=False)
    assert "first divergence per connection:" in text and "result: " in text
    assert text.count("\n!") == 1


# -- the command line ------------------------------------------------------------------------
def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([*STATEWALL, "kernel-diff", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_cli_bad_usage_exits_2(tmp_path: Path) -> None:
    r = run_cli(str(tmp_path / "missing.pcap"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run_cli(str(MIXED), "--snapshots", "-3")
    assert r.returncode == 2
    r = run_cli(str(MIXED), "--sysctl", "no_such_thing=1")
    assert r.returncode == 2
    r = run_cli(str(MIXED), "--iface", "c0=not-an-address")
    assert r.returncode == 2


LAB_OK, LAB_WHY = lab_available()
live = pytest.mark.skipif(not LAB_OK, reason=f"live kernel lab unavailable: {LAB_WHY}")


@live
def test_cli_on_the_bundled_capture() -> None:
    r = run_cli(str(MIXED), "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    doc = json.loads(r.stdout)
    assert doc["agree"] and doc["totals"]["packets"] == 30 == doc["plan"]["injected"]
    assert doc["plan"]["mode"] == "sides"
    assert [p["capture_n"] for p in doc["packets"]] == list(range(1, 31))
    states = [p["kernel"]["ctstate"] for p in doc["packets"]]
    assert states.count("INVALID") == 3 and states[0] == "NEW"
    assert list_lab_namespaces(f"sw-{os.getpid()}") == []


@live
def test_cli_reports_a_difference_and_exits_1(tmp_path: Path) -> None:
    """A capture with packets statewall handles differently (ttl_expired: TTL 1)."""
    r = run_cli(str(CORPUS / "ttl_expired" / "capture.pcapng"), "--diffs-only",
                "--save", str(tmp_path / "rec"))
    if "ttl_expired" not in _known():
        pytest.skip("ttl_expired is no longer a known difference")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "first divergence per connection:" in r.stdout
    assert "verdict: statewall ACCEPT, kernel DROP" in r.stdout
    assert (tmp_path / "rec" / "kernel.json").exists()


def _known() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_kernel_corpus import KNOWN
    return KNOWN


@live
def test_speed_scales_timeouts_and_local_traffic(tmp_path: Path) -> None:
    """fw's own packets (--iface) are sent through OUTPUT; --speed divides the timeouts."""
    from statewall.kerneldiff.run import Options, kernel_diff

    _, frames = recording("local_input_output")
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    ids = {n: w.interface(n, 1) for n in ("c0", "s0")}
    for f in frames:
        w.write(f.data, f.ts_ns, ids[f.iface_name or "c0"], flags=f.flags)
    src = tmp_path / "local.pcapng"
    src.write_bytes(buf.getvalue())
    prefix = f"sw-{os.getpid()}-speed"
    res = kernel_diff(Options(src, fw_ifaces=[("c0", ["198.51.100.1/24", "2001:db8:1::1/64"]),
                                              ("s0", ["203.0.113.1/24", "2001:db8:2::1/64"])],
                              speed=2.0, prefix=prefix))
    assert list_lab_namespaces(prefix) == []
    k = res.recording.kernel_json()
    assert k["sysctls"]["net.netfilter.nf_conntrack_icmp_timeout"] == "15"
    hooks = [p["hook"] for p in k["packets"]]
    assert hooks.count("OUTPUT") == 6 and res.comparison.agree, \
        "\n".join(res.comparison.messages())


@live
def test_ctrl_c_tears_the_lab_down() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.Popen([*STATEWALL, "kernel-diff", str(MIXED), "--linger", "30", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        prefix = f"sw-{p.pid}-"
        deadline = time.monotonic() + 20
        while not list_lab_namespaces(prefix):
            assert time.monotonic() < deadline and p.poll() is None, "the lab never came up"
            time.sleep(0.05)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert list_lab_namespaces(prefix) == []


def test_fw_answers_are_compared_when_fw_was_not_silenced() -> None:
    k, frames = recording("rules_reject_tcp")
    assert k["topology"]["fw_silent"] is False and len(k["fw_sent"]) == 2
    if model.missing_features(k["requires"]):
        pytest.skip("rule engine not wired")
    assert compare(k, frames).agree
    bad = copy.deepcopy(k)
    bad["fw_sent"][0]["summary"] = bad["fw_sent"][0]["summary"].replace("[RA]", "[R]")
    c = compare(bad, frames)
    assert [(d.n, d.kind) for d in c.diffs] == [(1, "sent")]
    silent = copy.deepcopy(bad)
    silent["topology"]["fw_silent"] = True
    assert compare(silent, frames).agree
