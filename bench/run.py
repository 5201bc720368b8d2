"""``make bench``: statewall's replay rate next to a bare capture loop, and memory per entry.

Each result is printed next to a baseline measured in the same run, as a ratio, because
these machines are noisy: the bare loop and the replay alternate for BENCH_ROUNDS rounds
(default 3) and the best rate of each counts. Targets (issue 2): replay >= 1/3 of the bare
loop's packets/s; < 1 KB of memory per tracked connection with 1,000,000 concurrent entries.

The replay runs with the C accelerator (statewall._speedups) when it is built, and again in a
child process with STATEWALL_PURE=1 for the pure-Python ratio (skip it: BENCH_PURE=0).
"""

from __future__ import annotations

import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from gen import _ip_tcp, generate  # noqa: E402

from statewall import firewall  # noqa: E402
from statewall.rules import engine  # noqa: E402
from statewall.conntrack import core  # noqa: E402
from statewall.conntrack.proto import tcp  # noqa: E402
from statewall import gcpolicy
from statewall.conntrack.sysctl import Settings  # noqa: E402
from statewall.firewall import Firewall  # noqa: E402
from statewall.io.capture import open_capture  # noqa: E402
from statewall.packet import checksum, decode  # noqa: E402
from statewall.packet.decode import decode_ip  # noqa: E402
from statewall.packet.link import l3_offset  # noqa: E402

PACKETS = int(os.environ.get("BENCH_PACKETS", "300000"))
CONNS = int(os.environ.get("BENCH_CONNS", "1000000"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))


def bare_loop(path: str) -> tuple[int, float]:
    """Read the capture and unpack the IP addresses and ports of every packet."""
    u_ip = struct.Struct("!4s4s").unpack_from
    u_ports = struct.Struct("!HH").unpack_from
    t0 = time.perf_counter()
    n = 0
    with open_capture(path) as cap:
        for fr in cap:
            d = fr.data
            off = 14
            ihl = (d[off] & 15) * 4
            src, dst = u_ip(d, off + 12)
            sport, dport = u_ports(d, off + ihl)
            n += 1
    return n, time.perf_counter() - t0


def replay(path: str) -> tuple[int, float, int]:
    """What ``statewall replay CAPTURE`` does per packet, without output."""
    fw = Firewall(Settings())
    old = gcpolicy.for_packet_loop()      # as statewall replay does (statewall/gcpolicy.py)
    t0 = time.perf_counter()
    n = 0
    with open_capture(path) as cap:
        for fr in cap:
            off = l3_offset(fr.linktype, fr.data)[0]
            pkt = decode_ip(fr.data[off:])
            pkt.iface = fr.iface_name
            fw.process(pkt, fr.ts)
            n += 1
    dt = time.perf_counter() - t0
    gc.set_threshold(*old)                # the bare loop runs with the defaults
    gc.unfreeze()
    return n, dt, len(fw.tracker.table)


def accelerator() -> str:
    """Which parts of the hot path run in C."""
    parts = {"checksum": checksum.ACCELERATED, "decode": decode.ACCELERATED,
             "tcp": tcp.ACCELERATED, "conntrack_in": core.ACCELERATED,
             "Firewall.process": firewall.ACCELERATED, "chain walk": engine.ACCELERATED}
    on = [k for k, v in parts.items() if v]
    if not on:
        why = "STATEWALL_PURE is set" if os.environ.get("STATEWALL_PURE", "") not in (
            "", "0") else "statewall._speedups not built"
        return f"off ({why}): pure Python"
    off = [k for k, v in parts.items() if not v]
    return "on: C " + ", ".join(on) + (f" (still Python: {', '.join(off)})" if off else "")


def rates(path: str) -> tuple[float, float, int]:
    """Best packets/s of the bare loop and of the replay over ROUNDS alternating rounds."""
    bare = sw = 0.0
    left = 0
    for _ in range(ROUNDS):
        n0, t0 = bare_loop(path)
        n1, t1, left = replay(path)
        bare = max(bare, n0 / t0)
        sw = max(sw, n1 / t1)
    return bare, sw, left


def pure_rates(path: str) -> tuple[float, float] | None:
    """The same measurement in a child process with STATEWALL_PURE=1."""
    env = dict(os.environ, STATEWALL_PURE="1")
    r = subprocess.run([sys.executable, __file__, "--rates", path], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"(pure-Python run failed: {r.stderr.strip()[-300:]})")
        return None
    d = json.loads(r.stdout)
    return d["bare"], d["replay"]


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_conn(count: int) -> tuple[float, float]:
    """Bytes of RSS per entry after ``count`` TCP handshakes (SYN, SYN/ACK, ACK each), and
    the same per-entry cost of a baseline: a dict holding one 6-tuple key per entry."""
    fw = Firewall(Settings("linux", [("nf_conntrack_max", str(count * 2))]))
    gc.collect()
    gc.disable()
    before = rss()
    now = 1000.0
    for i in range(count):
        c = bytes([198, 51, (i >> 16) & 0xFF, i & 0xFF])
        s = bytes([203, 0, 113, (i >> 8) & 0xFF])
        sport = 1024 + (i % 60000)
        fw.process(decode_ip(_ip_tcp(c, s, sport, 80, 1000, 0, 0x02, 64240)), now)
        fw.process(decode_ip(_ip_tcp(s, c, 80, sport, 5000, 1001, 0x12, 65160)), now)
        fw.process(decode_ip(_ip_tcp(c, s, sport, 80, 1001, 5001, 0x10, 502)), now)
    gc.enable()
    gc.collect()
    after = rss()
    n = len(fw.tracker.table)
    assert n == count, (n, count)
    per = (after - before) / n
    del fw
    gc.collect()
    base0 = rss()
    d = {(bytes([198, 51, (i >> 16) & 0xFF, i & 0xFF]), bytes([203, 0, 113, 1]), 6,
          1024 + (i % 60000), 80, 0): i for i in range(count)}
    base = (rss() - base0) / len(d)
    return per, base


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.pcap")
        with open(path, "wb") as f:
            total = generate(f, PACKETS)
        print(f"capture: {total} packets, {os.path.getsize(path) / 1e6:.1f} MB "
              f"(interleaved TCP sessions: handshake, data both ways, close); "
              f"best of {ROUNDS} rounds")
        accel = accelerator()
        print(f"accelerator: {accel}")
        bare_pps, sw_pps, left = rates(path)
        print(f"bare loop (read + unpack IP/ports): {bare_pps:12,.0f} packets/s")
        print(f"statewall replay (track, no rules): {sw_pps:12,.0f} packets/s  "
              f"ratio {sw_pps / bare_pps:.3f} (target >= 0.333)  [{left} entries at end]")
        if not accel.startswith("off") and os.environ.get("BENCH_PURE", "1") != "0":
            pure = pure_rates(path)
            if pure is not None:
                print(f"  same replay in pure Python:       {pure[1]:12,.0f} packets/s  "
                      f"ratio {pure[1] / pure[0]:.3f} (bare loop {pure[0]:,.0f} packets/s "
                      f"in that run); accelerator speedup x{sw_pps / pure[1]:.2f}")
        # issue 3: the same replay through a stateful rule set of 12 rules (target: >= 1/4
        # of the bare loop), the bare loop measured again right before it
        from rules import RULES, replay_with_rules
        bare2 = max(n0 / t0 for n0, t0 in (bare_loop(path) for _ in range(2)))
        n, dt = replay_with_rules(path)
        print(f"statewall replay, {RULES.count('-A ')} stateful rules: {n / dt:12,.0f} packets/s  "
              f"ratio {n / dt / bare2:.3f} (target >= 0.25; bare loop {bare2:,.0f} packets/s)")
    per, base = memory_per_conn(CONNS)
    ratio = f"ratio {per / base:.2f}" if base > 0 else "ratio n/a (too few entries to measure)"
    print(f"memory: {per:,.0f} bytes per tracked TCP connection with {CONNS:,} entries "
          f"(target < 1024); a bare dict of one 6-tuple key per entry costs {base:,.0f} "
          f"bytes, {ratio}")
    # issue 6: live NFQUEUE benchmark in namespaces (root only; prints a skip line otherwise)
    if os.environ.get("BENCH_LIVE", "1") != "0":
        from live import main as live_main
        live_main()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rates":
        b, r, _ = rates(sys.argv[2])
        print(json.dumps({"bare": b, "replay": r}))
        sys.exit(0)
    sys.exit(main())
