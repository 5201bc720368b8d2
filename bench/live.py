"""Live benchmark (issue 6): packets/s and added latency through ``statewall run``, next to
the same traffic through (a) the kernel with the same rules and (b) a trivial NFQUEUE
consumer that accepts everything, all measured in one run, in network namespaces
(client - fw - server, documentation addresses only).

Traffic: the client floods UDP to the server over ``FLOWS`` flows (sendmmsg, 64-byte
payloads) for ``SECONDS``; the server counts what arrives. packets/s = packets delivered /
time between the first and the last one (a consumer slower than the offered load drops the
excess at its queue, so this is the most it forwards). Latency: ``PINGS`` sequential UDP
request/response round trips client -> server -> client; median and p99 of the round-trip
time, and what each setup adds to the same round trip with no filtering at all.
Target: statewall >= 0.5 x the trivial consumer's packets/s.

Run alone (``python bench/live.py``) or from bench/run.py: ``from live import main as
live_main; live_main()`` (needs root; prints why it skips otherwise). Environment:
BENCH_LIVE_SECONDS (3), BENCH_LIVE_PINGS (2000), BENCH_LIVE_FLOWS (8), BENCH_LIVE_ROUNDS
(3: the four setups are measured in interleaved rounds and the medians reported, since the
machine's load drifts). On two or more cores the traffic (generator, sink, pings) runs on
CPU 0 and the firewall's consumer on CPU 1 (taskset).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from statewall.lab.netns import SERVER_V4, Topology, lab_available  # noqa: E402

SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "3"))
PINGS = int(os.environ.get("BENCH_LIVE_PINGS", "2000"))
FLOWS = int(os.environ.get("BENCH_LIVE_FLOWS", "8"))
ROUNDS = int(os.environ.get("BENCH_LIVE_ROUNDS", "3"))
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
PORT = 9000

# the seed's stateful rules for a firewall between client (c0) and server (s0)
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state INVALID -j DROP
-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp ! --syn -m state --state NEW -j DROP
-A FORWARD -i c0 -o s0 -m state --state NEW -j ACCEPT
COMMIT
"""

# (b): the same binding statewall uses, batched verdicts, nothing else
TRIVIAL = r'''
import select, sys
from statewall.io import nfqueue as n
q = n.Queue(0)
print("ready", flush=True)
v = n.Verdicts(q)
while True:
    select.select([q], [], [])
    while True:
        b = q.recv_batch(128)
        if not b:
            break
        for p in b:
            v.accept_upto(p[0])
        v.flush()
'''

SINK = r'''
import socket, sys, time
port, flows = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
s.bind(("203.0.113.2", port))
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
e.bind(("203.0.113.2", port + 1))
print("ready", flush=True)
import threading
def echo():
    while True:
        d, a = e.recvfrom(2048)
        e.sendto(d, a)
threading.Thread(target=echo, daemon=True).start()
s.settimeout(2.5)
n = 0
first = last = 0.0
pc = time.perf_counter
try:
    while True:
        s.recv(2048)
        last = pc()
        if n == 0:
            first = last
        n += 1
except socket.timeout:
    pass
print(n, first, last, flush=True)
'''

GEN = r'''
import ctypes, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
seconds, port, flows = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
N = 64
data = ctypes.create_string_buffer(b"x" * 64, 64)
iov = iovec(ctypes.addressof(data), 64)
msgs = (mmsghdr * N)()
for m in msgs:
    m.hdr.iov = ctypes.pointer(iov)
    m.hdr.iovlen = 1
objs = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for i in range(flows)]
for s in objs:
    s.connect(("203.0.113.2", port))
socks = [s.fileno() for s in objs]
sent = 0
end = time.perf_counter() + seconds
i = 0
while time.perf_counter() < end:
    r = libc.sendmmsg(socks[i % flows], msgs, N, 0x40)
    if r > 0:
        sent += r
    i += 1
print(sent)
'''

PING = r'''
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect(("203.0.113.2", port))
pc = time.perf_counter
rtt = []
lost = 0
for i in range(n):
    t0 = pc()
    s.send(b"p" * 64)
    try:
        s.recv(2048)
    except socket.timeout:
        lost += 1
        continue
    rtt.append(pc() - t0)
rtt.sort()
print(len(rtt), lost, rtt[len(rtt) // 2] if rtt else 0, rtt[int(len(rtt) * 0.99)] if rtt else 0)
'''


def _pin(cpu: int, argv: list[str]) -> list[str]:
    """taskset: during the flood the traffic runs on CPU 0, the firewall's consumer on
    CPU 1 (2 cores: otherwise the three compete for the same CPU run by run)."""
    return ["taskset", "-c", str(cpu), *argv] if PIN else argv


def _pin_tree(pid: int, cpu: int) -> None:
    """Pin a running process and its children (statewall's workers) to ``cpu``."""
    if not PIN:
        return
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            os.sched_setaffinity(p, {cpu})
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass


def _unpin_tree(pid: int) -> None:
    if PIN:
        _pin_tree_to(pid, set(range(os.cpu_count() or 1)))


def _pin_tree_to(pid: int, cpus: set[int]) -> None:
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            os.sched_setaffinity(p, cpus)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass


def _measure(t: Topology, consumer: int | None = None) -> dict[str, float]:
    """Latency first (idle, nothing pinned: the scheduler's normal placement), then the
    flood with the traffic on CPU 0 and the consumer (if any) on CPU 1."""
    py = sys.executable
    sink = t.popen("server", [py, "-c", SINK, str(PORT), str(FLOWS)], stdout=subprocess.PIPE)
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == b"ready"
    r = t.run("client", [py, "-c", PING, str(PINGS), str(PORT + 1)], timeout=120)
    got, lost, med, p99 = r.stdout.split()
    _pin_tree(sink.pid, 0)
    if consumer is not None:
        _pin_tree(consumer, 1)
    g = t.run("client", _pin(0, [py, "-c", GEN, str(SECONDS), str(PORT), str(FLOWS)]),
              timeout=SECONDS + 60)
    if consumer is not None:
        _unpin_tree(consumer)
    sent = int(g.stdout)
    out = sink.stdout.readline().split()
    sink.wait(10)
    n, first, last = int(out[0]), float(out[1]), float(out[2])
    return {"sent": sent, "delivered": n, "pps": n / max(last - first, 1e-9),
            "rtt_med": float(med), "rtt_p99": float(p99), "lost": int(lost),
            "pings": int(got)}


def _wait_log(path: str, what: str, p: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            if what in f.read():
                return
        if p.poll() is not None:
            break
        time.sleep(0.05)
    with open(path, encoding="utf-8", errors="replace") as f:
        raise RuntimeError(f"statewall did not start:\n{f.read()}")


def _one_round(t: Topology, tmp: str) -> dict[str, dict[str, float]]:
    res: dict[str, dict[str, float]] = {}
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "src"))
    # plain forwarding: no rules, no conntrack (the reference for added latency)
    res["plain"] = _measure(t)
    # (a) the kernel with the same rules (its own conntrack)
    t.run("fw", ["iptables-restore"], input=RULES)
    res["kernel"] = _measure(t)
    t.run("fw", ["iptables-restore"], input="*filter\n:INPUT ACCEPT [0:0]\n"
          ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    # (b) a trivial NFQUEUE consumer behind the same kernel setup statewall installs
    cons = t.popen("fw", [py, "-c", TRIVIAL], stdout=subprocess.PIPE, env=env)
    try:
        assert cons.stdout is not None
        assert cons.stdout.readline().strip() == b"ready"
        t.run("fw", [py, "-c", "from statewall.live.kernel import KernelSetup;"
                                "KernelSetup().apply()"], check=True)
        res["nfqueue"] = _measure(t, cons.pid)
    finally:
        t.stop(cons, signal.SIGKILL)
        t.run("fw", [py, "-c", "from statewall.live.kernel import KernelSetup;"
                                "KernelSetup().remove()"], check=False)
    # statewall with the same rules
    rules = os.path.join(tmp, "rules.v4")
    with open(rules, "w") as f:
        f.write(RULES)
    log = os.path.join(tmp, "statewall.log")
    with open(log, "wb") as lf:
        d = t.popen("fw", [py, "-m", "statewall", "run", "--rules", rules,
                           "--control", os.path.join(tmp, "ctl"), "--stats-interval", "0"],
                    stderr=lf, env=env)
    try:
        _wait_log(log, "running", d)
        res["statewall"] = _measure(t, d.pid)
    finally:
        t.stop(d, signal.SIGTERM, timeout=20)
    return res


def run_all(t: Topology, tmp: str) -> dict[str, dict[str, float]]:
    """``ROUNDS`` rounds of the four setups, interleaved (the machine's load drifts); the
    median of each figure."""
    rounds = [_one_round(t, tmp) for _ in range(ROUNDS)]
    out: dict[str, dict[str, float]] = {}
    for name in rounds[0]:
        out[name] = {k: statistics.median(r[name][k] for r in rounds) for k in rounds[0][name]}
    out["_ratios"] = {"sw_over_nfq": statistics.median(
        r["statewall"]["pps"] / r["nfqueue"]["pps"] for r in rounds)}
    return out


def report(res: dict[str, dict[str, float]]) -> None:
    plain = res["plain"]
    print(f"live: UDP flood client -> fw -> server, {FLOWS} flows, {SECONDS:g} s; "
          f"{PINGS} UDP round trips for latency; median of {ROUNDS} interleaved rounds"
          + ("; during the flood traffic on CPU 0, firewall consumer on CPU 1" if PIN else ""))
    for name, label in (("plain", "kernel forwarding, no rules (reference)"),
                        ("kernel", "(a) kernel iptables, same rules"),
                        ("nfqueue", "(b) trivial NFQUEUE consumer (accept all)"),
                        ("statewall", "statewall run, same rules")):
        r = res[name]
        add_med = (r["rtt_med"] - plain["rtt_med"]) * 1e6
        add_p99 = (r["rtt_p99"] - plain["rtt_p99"]) * 1e6
        print(f"  {label:44s} {r['pps']:10,.0f} packets/s  rtt median {r['rtt_med'] * 1e6:6.0f}"
              f" us p99 {r['rtt_p99'] * 1e6:6.0f} us  (added {add_med:+5.0f} / {add_p99:+5.0f}"
              f" us)  delivered {r['delivered']:,}/{r['sent']:,}")
    sw, nfq, ker = res["statewall"], res["nfqueue"], res["kernel"]
    print(f"  statewall / trivial consumer: {res['_ratios']['sw_over_nfq']:.3f} "
          f"(target >= 0.5; median of the rounds' ratios);  "
          f"statewall / kernel: {sw['pps'] / ker['pps']:.3f}")
    sw_add = sw["rtt_med"] - plain["rtt_med"]
    nfq_add = nfq["rtt_med"] - plain["rtt_med"]
    print(f"  added median latency: statewall {sw_add * 1e6:.0f} us, trivial consumer "
          f"{nfq_add * 1e6:.0f} us, kernel {(ker['rtt_med'] - plain['rtt_med']) * 1e6:.0f} us")


def main() -> int:
    ok, why = lab_available()
    if not ok:
        print(f"live benchmark skipped: {why}")
        return 0
    with tempfile.TemporaryDirectory() as tmp, Topology() as t:
        t.up(live_peers=True)
        res = run_all(t, tmp)
    report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
