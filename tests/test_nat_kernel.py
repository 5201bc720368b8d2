"""NAT against the real kernel: the packets that leave the firewall, header by header.

Without root: every recorded ``corpus/nat_*`` scenario has, next to the capture of what
entered fw and ``kernel.json``, ``egress.pcapng``: every frame the kernel's fw transmitted.
Replaying the capture through statewall with output on (what ``statewall replay --write``
writes) must give the same packets in the same order on the same interfaces - every IPv4 /
IPv6 / TCP / UDP / ICMP header field, checksums included, payloads (FTP commands rewritten,
sequence numbers adjusted), the packet an ICMP error quotes, fragments (the IPv6
identification of a re-fragmented datagram excepted: the kernel draws it).  The corpus test
(test_kernel_corpus.py) checks the same recordings for verdicts, states, ``conntrack -L``
(the NAT bindings are the reply tuples) and events.

As root with namespaces (skipped otherwise; about a minute): some scenarios are re-recorded
against the running kernel and compared again; a scenario whose ports the kernel draws at
random (``--random-fully``) is compared with those ports mapped (statewall's choice must be
in the range and used consistently); and ``statewall run`` itself is the firewall between
real programs: masqueraded HTTP, a port forward, FTP active and passive, TFTP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from statewall.io.capture import open_capture
from statewall.kerneldiff.egress import (Emit, compare_egress, is_own_nd, kernel_egress,
                                         statewall_egress)
from statewall.lab import egress
from statewall.lab.netns import lab_available, list_lab_namespaces

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
NAT_RECORDINGS = sorted(p.parent.name for p in CORPUS.glob("nat_*/egress.pcapng"))
LAB_OK, LAB_WHY = lab_available()
root_lab = pytest.mark.skipif(not LAB_OK, reason=f"live kernel lab unavailable: {LAB_WHY}")


def load(name: str) -> tuple[dict[str, Any], list[Any], list[Emit]]:
    d = CORPUS / name
    k: dict[str, Any] = json.loads((d / "kernel.json").read_text())
    with open_capture(d / "capture.pcapng") as cap:
        frames = list(cap)
    return k, frames, kernel_egress(egress.read(d / "egress.pcapng"))


def test_nat_corpus_is_present() -> None:
    assert len(NAT_RECORDINGS) >= 12
    for want in ("nat_snat_clash", "nat_dnat_portfwd", "nat_masquerade", "nat_redirect",
                 "nat_netmap", "nat_hairpin", "nat_icmp_errors", "nat_reject", "nat_local",
                 "nat_fragments", "nat_ipv6", "nat_ftp_active_programs",
                 "nat_ftp_passive_programs", "nat_ftp_dnat_programs", "nat_tftp_programs"):
        assert want in NAT_RECORDINGS, want


@pytest.mark.parametrize("name", NAT_RECORDINGS)
def test_emitted_packets_match_the_kernels(name: str) -> None:
    k, frames, kernel = load(name)
    ours = statewall_egress(k, frames)
    c = compare_egress(ours, kernel, random_ports=False)
    assert c.agree, f"{name}:\n" + "\n".join(c.diffs)
    assert c.compared == len([e for e in kernel if not is_own_nd(e.data)]) > 0


def _cli_args(k: dict[str, Any], tmp: Path) -> list[str]:
    """``statewall replay`` options describing the recording's firewall."""
    args: list[str] = []
    topo = k["topology"]
    for name, info in topo["interfaces"].items():
        args += ["--iface", f"{name}={','.join(info['fw_addrs'])}"]
    for prefix, dev in topo.get("routes", []):
        args += ["--route", f"{prefix} dev {dev}"]
    for fam, opt in (("ipv4", "--rules"), ("ipv6", "--rules6")):
        text = k["rules_input"].get(fam, "")
        if text:
            f = tmp / f"rules.{fam}"
            f.write_text(text + "\n")
            args += [opt, str(f)]
    return args


@pytest.mark.parametrize("name", ["nat_icmp_errors", "nat_ftp_active_programs",
                                  "nat_fragments"])
def test_replay_write_is_what_the_kernel_sent(name: str, tmp_path: Path) -> None:
    """The CLI: ``statewall replay capture --write out.pcapng`` = the kernel's egress (the
    capture's frames: the interface each arrived on names it)."""
    from statewall.cli.main import main
    k, frames, kernel = load(name)
    out = tmp_path / "out.pcapng"
    rc = main(["replay", str(CORPUS / name / "capture.pcapng"), *_cli_args(k, tmp_path),
               "--write", str(out)])
    assert rc == 0
    with open_capture(out) as cap:
        ours = [Emit(0, fr.iface_name, fr.data) for fr in cap]
    c = compare_egress(ours, kernel, random_ports=False)
    assert c.agree, "\n".join(c.diffs)


# -- against the running kernel ------------------------------------------------------------
@root_lab
@pytest.mark.parametrize("name", ["nat_snat_clash", "nat_icmp_errors",
                                  "nat_ftp_active_programs"])
def test_live_rerecord(name: str) -> None:
    """Re-record against the running kernel: statewall agrees on verdicts, states, tables
    and events, and on every packet that left."""
    from statewall.kerneldiff.run import Options, kernel_diff
    prefix = f"sw-{os.getpid()}-nat-{name[4:14]}"
    res = kernel_diff(Options(CORPUS / f"{name}.py", prefix=prefix))
    assert list_lab_namespaces(prefix) == [], "namespaces left behind"
    assert res.comparison.agree, "\n".join(res.comparison.messages())
    rec = res.recording
    ours = statewall_egress(rec.kernel_json(), list(_frames(rec)))
    kernel = [Emit(0, f.iface, f.l3) for f in egress.egress_frames(rec)]
    c = compare_egress(ours, kernel, random_ports=False)
    assert c.agree, "\n".join(c.diffs)


def _frames(rec: Any) -> Iterator[Any]:
    import io
    from statewall.io.capture import CaptureReader
    yield from CaptureReader(io.BytesIO(rec.pcapng_bytes()), name="lab capture")


@root_lab
def test_random_ports_map_consistently(tmp_path: Path) -> None:
    """MASQUERADE --random-fully: the kernel draws every port; statewall draws its own
    (seeded hash) from the same range.  Compared with the ports mapped one to one: the
    same packets, every other field equal, checksums right, ports in the range."""
    from scapy.layers.inet import IP, UDP

    from statewall.lab.record import record
    from statewall.lab.scenario import REQUIRES_RULES, Scenario
    rules = ("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o s0 -p udp -j MASQUERADE "
             "--to-ports 40000-40999 --random-fully\nCOMMIT")
    steps: list[object] = []
    for i, c in enumerate(("198.51.100.2", "198.51.100.3", "198.51.100.4")):
        p = IP(src=c, dst="203.0.113.2", id=10 + i) / UDP(sport=5000, dport=53) / b"q"
        steps += [("client", p, 0.1), ("client", p, 0.1)]
    scn = Scenario(name="nat_random_ports", description="random ports", rules_v4=rules,
                   requires=(REQUIRES_RULES,), steps=steps)
    rec = record(scn, prefix=f"sw-{os.getpid()}-natrnd")
    ours = statewall_egress(rec.kernel_json(), list(_frames(rec)))
    kernel = [Emit(0, f.iface, f.l3) for f in egress.egress_frames(rec)]
    strict = compare_egress(ours, kernel, random_ports=False)
    c = compare_egress(ours, kernel, random_ports=True)
    assert c.agree, "\n".join(c.diffs)
    assert c.compared == 6
    ports = {int.from_bytes(e.data[20:22], "big") for e in ours}
    kports = {int.from_bytes(e.data[20:22], "big") for e in kernel}
    assert len(ports) == len(kports) == 3
    assert all(40000 <= p <= 40999 for p in ports | kports)
    # unless the draws coincided, the ports needed mapping (and only they differ)
    assert bool(c.mapped) or strict.agree


# -- statewall as the firewall -------------------------------------------------------------
LIVE_RULES = """*raw
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 8080 -j DNAT --to-destination 198.51.100.2:8000
-A POSTROUTING -o s0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i c0 -o s0 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i s0 -m conntrack --ctstate DNAT -j ACCEPT
COMMIT
"""

VSFTPD = ["sh", "-c", """set -e
D=/tmp/statewall-nat-live-ftp
mkdir -p $D/root $D/empty; chmod 755 $D $D/root $D/empty
echo 'hello via statewall NAT' > $D/root/hello.txt; chmod 644 $D/root/hello.txt
printf '%s\\n' listen=YES listen_ipv6=NO listen_address=203.0.113.2 background=NO \
  anonymous_enable=YES no_anon_password=YES anon_root=$D/root local_enable=NO \
  write_enable=NO connect_from_port_20=YES pasv_min_port=30020 pasv_max_port=30029 \
  secure_chroot_dir=$D/empty seccomp_sandbox=NO dirmessage_enable=NO xferlog_enable=NO \
  > $D/vsftpd.conf
exec vsftpd $D/vsftpd.conf"""]
TFTPD = ["sh", "-c", """set -e
D=/tmp/statewall-nat-live-tftp
mkdir -p $D; chmod 1777 $D; echo 'tftp via statewall NAT' > $D/t.txt; chmod 644 $D/t.txt
exec in.tftpd -L -c -a 203.0.113.2:69 -s $D"""]


@root_lab
def test_statewall_run_is_the_nat_firewall(tmp_path: Path) -> None:
    """``statewall run`` (NFQUEUE) NATs for real programs: the server sees the client as
    203.0.113.1; a port forward reaches the inside; curl fetches over FTP actively (PORT
    rewritten, the rest of the control connection sequence-adjusted) and passively; TFTP
    answers come back through the helper's NATed expectation."""
    from statewall.lab.netns import SERVER_V4, Topology
    rules = tmp_path / "rules.v4"
    rules.write_text(LIVE_RULES)
    with Topology(f"sw-{os.getpid()}-natrun") as t:
        t.up(live_peers=True)
        # a rewritten source that is fw's own address is a "martian" to the kernel's input
        # routing after the queue verdict unless accept_local is on: statewall run sets
        # net.ipv4.conf.all.accept_local itself when the rules load a nat table
        assert t.run("fw", ["cat", "/proc/sys/net/ipv4/conf/all/accept_local"]).stdout \
            .strip() == "0"
        log = open(tmp_path / "sw.log", "wb")
        sw = t.popen("fw", [sys.executable, "-m", "statewall", "run", "--rules", str(rules),
                            "--state-file", str(tmp_path / "state"),
                            "--control", str(tmp_path / "ctl"), "--stats-interval", "0"],
                     stderr=log, stdout=subprocess.DEVNULL)
        servers: list[subprocess.Popen[bytes]] = []
        try:
            deadline = time.monotonic() + 20
            while b"running" not in (tmp_path / "sw.log").read_bytes():
                assert sw.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "sw.log").read_text()
                time.sleep(0.05)
            # masqueraded TCP: the server sees fw's address
            srv = t.socket("server", socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((SERVER_V4, 7777))
            srv.listen(4)
            seen: list[Any] = []

            def serve() -> None:
                c, peer = srv.accept()
                seen.append(peer)
                c.sendall(b"hello")
                c.close()
            threading.Thread(target=serve, daemon=True).start()
            cl = t.socket("client", socket.AF_INET, socket.SOCK_STREAM)
            cl.settimeout(5)
            cl.connect((SERVER_V4, 7777))
            assert cl.recv(16) == b"hello"
            cl.close()
            assert seen and seen[0][0] == "203.0.113.1"
            assert t.run("fw", ["cat", "/proc/sys/net/ipv4/conf/all/accept_local"]).stdout \
                .strip() == "1"
            # the port forward: the outside reaches 198.51.100.2:8000 via 203.0.113.1:8080
            inside = t.socket("client", socket.AF_INET, socket.SOCK_STREAM)
            inside.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            inside.bind(("198.51.100.2", 8000))
            inside.listen(4)
            got: list[Any] = []

            def serve_inside() -> None:
                c, peer = inside.accept()
                got.append(peer)
                c.sendall(b"inside")
                c.close()
            threading.Thread(target=serve_inside, daemon=True).start()
            out = t.socket("server", socket.AF_INET, socket.SOCK_STREAM)
            out.settimeout(5)
            out.connect(("203.0.113.1", 8080))
            assert out.recv(16) == b"inside" and got[0][0] == SERVER_V4
            out.close()
            # FTP and TFTP with real servers and clients
            servers.append(t.popen("server", VSFTPD, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL))
            servers.append(t.popen("server", TFTPD, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL))
            time.sleep(0.7)
            url = "ftp://203.0.113.2/hello.txt"
            for extra in ([], ["--disable-epsv"], ["-P", "-", "--disable-eprt"], ["-P", "-"]):
                r = t.run("client", ["curl", "-sS", "-m", "10", *extra, url], check=False)
                assert r.stdout.strip() == "hello via statewall NAT", (extra, r.stderr)
            r = t.run("client", ["curl", "-sS", "-m", "10", "tftp://203.0.113.2/t.txt"],
                      check=False)
            assert r.stdout.strip() == "tftp via statewall NAT", r.stderr
        finally:
            for p in servers:
                t.stop(p)
            t.stop(sw)
            log.close()
    assert list_lab_namespaces(f"sw-{os.getpid()}-natrun") == []
