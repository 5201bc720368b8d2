"""One worker: one NFQUEUE, one tracker, one ``Firewall`` - the live packet loop.

Owns: the loop (poll the queue, the routing watcher and the signal pipe; drain up to a
batch of packets, decide each through ``Firewall.process``, send all verdicts in one
``sendmsg``), turning a ``Decision`` into a verdict (accept / drop, the new mark, a
rewritten payload), sending REJECT's generated packets, LOG lines, the clock (monotonic;
``expire`` at ``next_deadline``), reload (SIGHUP: new rules, same table), checkpoints
(a forked child writes the state file, so the loop never waits for the disk), the final
save on SIGTERM, counters and the periodic stats line, the optional per-packet trace.
Must not know: the kernel rules, the other workers, command-line syntax.

Fail-closed: a packet statewall cannot decode is dropped (counted); anything unexpected
while deciding one packet drops that packet and is logged, the loop goes on.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import time
from bisect import bisect_left
from typing import IO, Any, Final

from ..conntrack.conn import ctinfo_state
from ..conntrack.core import Tracker
from ..ctl.server import CtlServer, worker_path
from ..top import snapshot as top_snapshot
from ..conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from ..firewall import ACCEPT, HOLD, Emitted, Firewall
from ..io import nfqueue, statefile
from ..packet.decode import decode_ip
from ..packet.packet import ParseError
from . import log as swlog
from . import metrics as swmetrics
from . import prune
from .config import Builder, Config, Loader, RulesError, build_settings
from .iptables import install_worker as install_iptables
from .kernel import INJECT_GID
from .route import KernelHost, Watcher

BATCH: Final = 128
NF_VERDICT_FLAG_QUEUE_BYPASS: Final = 0x8000
RING_TTL: Final = 2.0
GC_YOUNG_EVERY: Final = 4096        # packets between collections of the young generations
GC_FULL_EVERY: Final = 600.0        # seconds between full collections
# ICMP / ICMPv6 error types: they quote a packet of another flow
_ICMP_ERRORS: Final = frozenset((3, 4, 5, 11, 12))
_ICMP6_ERRORS: Final = frozenset((1, 2, 3, 4))
_U16: Final = struct.Struct("!HH")
SO_MARK: Final = 36
PR_SET_PDEATHSIG: Final = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _inject_socket(family: int) -> socket.socket | None:
    """A raw IP socket owned by INJECT_GID (the kernel rules let it skip the queue)."""
    old = _libc.setfsgid(INJECT_GID)
    try:
        if _libc.setfsgid(-1) != INJECT_GID:     # -1 fails and reports the current one
            swlog.get().error("cannot take the injection group id (CAP_SETGID?): "
                              "REJECT replies are not sent")
            return None
        return socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except OSError as e:
        swlog.get().error(f"no raw socket for REJECT replies: {e}")
        return None
    finally:
        _libc.setfsgid(old)


class Worker:
    def __init__(self, cfg: Config, queue: int, loader: Loader, builder: Builder,
                 report: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.queue_num = queue
        self.loader = loader
        self.builder = builder
        self.report = report
        self.log = swlog.get()
        self.stopping = False
        self.reload_wanted = False
        self.status_wanted = False
        self.checkpoint_pid = 0
        self.counters: dict[str, int] = dict.fromkeys(
            ("packets", "accepted", "dropped", "held", "undecodable", "errors", "marked",
             "rewritten", "reject_sent", "reject_failed", "log_lines", "nflog_ignored",
             "reloads", "reloads_refused", "checkpoints", "icmp_passed_on"), 0)
        self.trace: IO[str] | None = None
        self._last_kc: dict[str, int] = {}
        self._inject: dict[int, socket.socket | None] = {}
        self._inject_mark: dict[int, int] = {}
        # several queues: ICMP errors about flows another worker has go round the ring
        n = cfg.last_queue - cfg.first_queue + 1
        self.ring = n > 1
        self.next_queue = cfg.first_queue + (queue - cfg.first_queue + 1) % n
        self._passed: dict[bytes, float] = {}
        # decision latency histogram (live/metrics.py): counts per bucket, +Inf last
        self.lat_counts = [0] * (len(swmetrics.BOUNDS_NS) + 1)
        self.lat_sum_ns = 0

    # -- reporting to the supervisor ------------------------------------------------------
    def _report(self, kind: str, **fields: Any) -> None:
        if self.report is None:
            return
        try:
            self.report.write(json.dumps({"kind": kind, "queue": self.queue_num, **fields})
                              + "\n")
            self.report.flush()
        except (OSError, ValueError):
            pass

    # -- signals ------------------------------------------------------------------------
    def _signals(self) -> int:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        def hup(signum: int, frame: Any) -> None:
            self.reload_wanted = True

        def usr1(signum: int, frame: Any) -> None:
            self.status_wanted = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)
        signal.signal(signal.SIGUSR1, usr1)
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        return r

    # -- setup --------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        wake = self._signals()
        try:
            settings = build_settings(cfg.profile, cfg.sysctls)
        except (ValueError, OSError) as e:
            self.log.error(f"bad --sysctl: {e}")
            self._report("failed", error=str(e))
            return 2
        self.settings = settings
        self.tracker = Tracker(settings)
        self.host = KernelHost()
        try:
            rules = self.loader(cfg)
            self.fw: Firewall = self.builder(settings, self.tracker, rules, self.host)
        except RulesError as e:
            self.log.error(f"rules refused: {e}")
            self._report("failed", error=str(e))
            return 2
        self.flows: Any = None                 # flow records (statewall.flows)
        if cfg.flows:
            from ..flows.live import Recorder
            self.flows = Recorder(cfg.flows, self.tracker, self.queue_num, self.log)
        self._restore()
        try:
            self.q = nfqueue.Queue(self.queue_num, maxlen=cfg.queue_maxlen,
                                   fail_open=cfg.fail_open)
        except OSError as e:
            self.log.error(f"cannot bind NFQUEUE {self.queue_num}: {e}")
            self._report("failed", error=f"bind queue {self.queue_num}: {e}")
            return 1
        self.watcher = Watcher()
        for fam in (socket.AF_INET, socket.AF_INET6):
            self._inject[fam] = _inject_socket(fam)
            self._inject_mark[fam] = 0
        tpath = cfg.trace_path(self.queue_num)
        if tpath == "-":
            self.trace = sys.stdout
        elif tpath:
            self.trace = open(tpath, "a", encoding="utf-8", buffering=1 << 16)
        self._gc_setup()
        # statewall conntrack (issue 8): this worker's table answers on <control>.q<N>
        self.ctl: CtlServer | None = None
        if cfg.control:
            try:
                self.ctl = CtlServer(worker_path(cfg.control, self.queue_num),
                                     lambda: self.tracker, time.monotonic)
            except OSError as e:
                self.log.error(f"conntrack control socket: {e}")
        if self.ctl is not None:               # statewall top (top/snapshot.py)
            self.ctl.handlers[top_snapshot.WORD] = \
                lambda line, now: top_snapshot.handle(self.tracker, line, now)
        if self.ctl is not None:               # --metrics scrapes (live/metrics.py)
            self.ctl.handlers["metrics"] = self._metrics
        if self.ctl is not None:               # statewall reload --prune (live/prune.py)
            self.ctl.handlers["prune"] = prune.worker_handler(lambda: self.fw)
        install_iptables(self)                   # statewall iptables (live/iptables.py)
        swlog.event(logging.INFO, "worker ready", queue=self.queue_num,
                    entries=len(self.tracker.table), fail_open=cfg.fail_open)
        self._report("ready")
        try:
            self._loop(wake)
        finally:
            self._shutdown()
        return 0

    # -- garbage collection -------------------------------------------------------------
    def _gc_setup(self) -> None:
        """The cyclic GC's full collections walk every object, the table included (several
        ms per 100k objects): a latency spike for whatever packet waits. So automatic
        collection is off; what exists after start-up (modules, compiled rules, the
        restored table) is frozen out of the scans; the young generations are collected
        every few thousand packets (cheap: only new objects) and a full collection runs
        every ten minutes."""
        gc.collect()
        gc.freeze()
        gc.disable()
        self._gc_packets = 0
        self._gc_full_at = time.monotonic() + GC_FULL_EVERY

    def _gc_tick(self, now: float) -> None:
        if now >= self._gc_full_at:
            self._gc_full_at = now + GC_FULL_EVERY
            gc.collect()
            self._gc_packets = 0
        elif self._gc_packets >= GC_YOUNG_EVERY:
            gc.collect(1)
            self._gc_packets = 0

    def _restore(self) -> None:
        path = self.cfg.state_path(self.queue_num)
        if path is None:
            return
        now = time.monotonic()
        wall = time.time()
        try:
            res = statefile.load(path, self.tracker, now, wall)
        except statefile.StateFileError as e:
            try:
                aside = statefile.set_aside(path, wall)
            except OSError as e2:
                aside = f"(could not move it: {e2.strerror})"
            swlog.event(logging.ERROR, "state file not trusted, starting empty",
                        reason=e.reason, file=path, moved_to=aside)
            self._report("state_rejected", reason=e.reason, moved_to=aside)
            return
        if res is None:
            swlog.event(logging.INFO, "no state file, starting empty", file=path)
            return
        swlog.event(logging.INFO, "state restored", file=path, entries=res.entries,
                    expectations=res.expectations, expired=res.expired,
                    over_max=res.over_max, downtime=f"{res.downtime:.3f}s")
        self._report("restored", entries=res.entries, expectations=res.expectations,
                     expired=res.expired, downtime=res.downtime)

    # -- the loop -----------------------------------------------------------------------
    def _loop(self, wake: int) -> None:
        cfg = self.cfg
        poll = select.poll()
        qfd = self.q.fileno()
        wfd = self.watcher.fileno()
        poll.register(qfd, select.POLLIN)
        poll.register(wfd, select.POLLIN)
        poll.register(wake, select.POLLIN)
        cfd = self.ctl.fileno() if self.ctl is not None else -1   # statewall conntrack
        if cfd >= 0:
            poll.register(cfd, select.POLLIN)
        now = time.monotonic()
        next_ckpt = now + cfg.checkpoint if cfg.checkpoint > 0 and cfg.state_file else None
        next_stats = now + cfg.stats_interval if cfg.stats_interval > 0 else None
        fw = self.fw
        while not self.stopping:
            deadline = fw.next_deadline()
            for t in (next_ckpt, next_stats):
                if t is not None and (deadline is None or t < deadline):
                    deadline = t
            if deadline is None:
                timeout = 1000
            else:
                timeout = max(0, min(1000, int((deadline - time.monotonic()) * 1000) + 1))
            if self.ctl is not None and (self.ctl.busy or self.ctl.events.backlog):
                timeout = min(timeout, 10)     # a conntrack client still sending / -E lines
            try:
                events = poll.poll(timeout)
            except InterruptedError:
                events = []
            for fd, _ev in events:
                if fd == qfd:
                    self._drain()
                elif fd == wfd:
                    if self.watcher.changed():
                        self.host.refresh()
                elif fd == wake:
                    try:
                        while os.read(wake, 512):
                            pass
                    except BlockingIOError:
                        pass
            if self.ctl is not None and (self.ctl.busy or any(fd == cfd for fd, _ in events)):
                self.ctl.poll()                # statewall conntrack requests
                fw = self.fw                   # statewall iptables may have swapped it
            if self.ctl is not None and self.ctl.events.subs:
                self.ctl.events.flush()        # statewall conntrack -E (ctl/events.py)
            now = time.monotonic()
            self._gc_tick(now)
            if now >= fw.tracker.table.soonest or now >= fw.tracker.expect.soonest:
                fw.expire(now)
            if self.reload_wanted:
                self.reload_wanted = False
                self._reload()
                fw = self.fw
            if self.status_wanted:
                self.status_wanted = False
                self._report("status", **self.status())
            if self.checkpoint_pid:
                self._reap_checkpoint()
            if next_ckpt is not None and now >= next_ckpt:
                next_ckpt = now + cfg.checkpoint
                self._checkpoint()
            if next_stats is not None and now >= next_stats:
                next_stats = now + cfg.stats_interval
                self._stats_line()

    def _drain(self) -> None:
        """Decide every packet waiting (in batches), one sendmsg of verdicts per batch."""
        q = self.q
        fw = self.fw
        host = self.host
        names = host.names
        c = self.counters
        verdicts = nfqueue.Verdicts(q)
        add = verdicts.add
        accept_upto = verdicts.accept_upto
        trace = self.trace
        process = fw.process
        NF_DROP = nfqueue.NF_DROP
        LOCAL_OUT = NF_INET_LOCAL_OUT
        perf = time.perf_counter_ns             # decision latency (live/metrics.py)
        lat = self.lat_counts
        bounds = swmetrics.BOUNDS_NS
        while True:
            batch = q.recv_batch(BATCH)
            if not batch:
                return
            now = time.monotonic()
            self.fw.wall_offset = time.time() - now        # -m time reads the wall clock
            lat_sum = 0
            accepted = dropped = 0
            for p in batch:
                pid, qhook, qmark, indev, outdev, payload = p
                try:
                    pkt = decode_ip(payload)
                except ParseError as e:
                    c["undecodable"] += 1
                    dropped += 1
                    add(pid, NF_DROP)
                    if trace is not None:
                        self._trace(p, None, f"undecodable: {e.reason}")
                    continue
                if qhook == LOCAL_OUT:
                    hook = LOCAL_OUT
                    pkt.iface = None
                else:
                    hook = NF_INET_PRE_ROUTING
                    pkt.iface = names.get(indev)
                pkt.mark = qmark
                buf = pkt.buf
                if self.ring and (pkt.proto == 1 or pkt.proto == 58) and self._foreign(pkt, now):
                    add(pid, self._pass_on)
                    c["icmp_passed_on"] += 1
                    if trace is not None:
                        self._trace(p, None, f"passed on to queue {self.next_queue}")
                    continue
                # the packet the routing questions are about (KernelHost.current, inlined)
                host.cur_hook = hook
                host.cur_iif = indev
                host.cur_oif = outdev
                host.cur_src = pkt.src
                host.cur_dst = pkt.dst
                host.cur_mark = qmark
                host.cur_tos = pkt.tos
                host.cur_res = None
                try:
                    t0 = perf()
                    d = process(pkt, now, hook)
                    dt = perf() - t0
                    lat[bisect_left(bounds, dt)] += 1
                    lat_sum += dt
                except Exception:
                    c["errors"] += 1
                    dropped += 1
                    self.log.exception(f"error deciding packet {pid}; dropped")
                    add(pid, NF_DROP)
                    continue
                if d.emitted:
                    self._emitted(d, pkt)
                if d.verdict == ACCEPT:
                    accepted += 1
                    dp = d.pkt
                    if dp is None or d.fragments or (dp.mark == qmark and dp.buf is buf):
                        accept_upto(pid)
                    else:
                        mark = dp.mark if dp.mark != qmark else None
                        newbuf = dp.buf if dp.buf is not buf else None
                        if mark is not None:
                            c["marked"] += 1
                        if newbuf is not None:
                            c["rewritten"] += 1
                        add(pid, nfqueue.NF_ACCEPT, mark, newbuf)
                else:
                    # DROP, or HOLD: the kernel reassembles before the queue, so a fragment
                    # statewall would keep is one the kernel let through unreassembled;
                    # statewall cannot keep the kernel's copy: fail closed
                    if d.verdict == HOLD:
                        c["held"] += 1
                    dropped += 1
                    add(pid, NF_DROP)
                if trace is not None:
                    self._trace(p, d, None)
            verdicts.flush()
            self.lat_sum_ns += lat_sum
            self._gc_packets += len(batch)
            c["packets"] += len(batch)
            c["accepted"] += accepted
            c["dropped"] += dropped
            if trace is not None:
                trace.flush()

    @property
    def _pass_on(self) -> int:
        v = nfqueue.NF_QUEUE | (self.next_queue << 16)
        return v | NF_VERDICT_FLAG_QUEUE_BYPASS if self.cfg.fail_open else v

    def _foreign(self, pkt: Any, now: float) -> bool:
        """Several queues: is this an ICMP/ICMPv6 error quoting a flow this worker does
        not track? The kernel spreads flows by (addresses, protocol), so an error from a
        router or about a TCP/UDP flow usually hashes to another queue than its flow. Such
        a packet is passed on to the next queue (NF_QUEUE verdict); the worker that has
        the flow decides it. One that comes back round is decided here (INVALID)."""
        buf = pkt.buf
        off = pkt.l4off
        if pkt.proto == 1:
            if pkt.icmp_type not in _ICMP_ERRORS or len(buf) < off + 8 + 20:
                return False
            i = off + 8
            ihl = (buf[i] & 15) * 4
            iproto = buf[i + 9]
            src, dst = buf[i + 12:i + 16], buf[i + 16:i + 20]
            l4 = i + ihl
        else:
            if pkt.icmp_type not in _ICMP6_ERRORS or len(buf) < off + 8 + 40:
                return False
            i = off + 8
            iproto = buf[i + 6]
            src, dst = buf[i + 8:i + 24], buf[i + 24:i + 40]
            l4 = i + 40
        if len(buf) < l4 + 4:
            return False
        if iproto == 6 or iproto == 17 or iproto == 136 or iproto == 132 or iproto == 33:
            a, b = _U16.unpack_from(buf, l4)
        elif iproto == 1 or iproto == 58:
            if len(buf) < l4 + 6:
                return False
            b = buf[l4] << 8 | buf[l4 + 1]
            a = _U16.unpack_from(buf, l4 + 4)[0]
        else:
            a = b = 0
        if (src, dst, iproto, a, b, 0) in self.tracker.table.hash:
            return False                         # either direction's tuple is a key
        passed = self._passed
        payload = buf
        if payload in passed:
            del passed[payload]                  # it went round: nobody has it
            return False
        if len(passed) > 4096:
            for k in [k for k, t in passed.items() if t < now]:
                del passed[k]
        passed[payload] = now + RING_TTL
        return True

    def _trace(self, p: nfqueue.QueuedPacket, d: Any, why: str | None) -> None:
        assert self.trace is not None
        import hashlib
        pid, qhook, qmark, indev, outdev, payload = p
        line: dict[str, Any] = {
            "ts": round(time.time(), 6), "queue": self.queue_num,
            "hook": "OUTPUT" if qhook == NF_INET_LOCAL_OUT else "PREROUTING",
            "iface": self.host.names.get(indev) if indev else None,
            "sha1": hashlib.sha1(payload).hexdigest()}
        if d is None:
            passed = why is not None and why.startswith("passed on")
            line.update(verdict="QUEUE" if passed else "DROP", ctstate=None, reason=why)
        else:
            pkt = d.pkt
            line["verdict"] = d.verdict
            line["ctstate"] = None if pkt is None else ctinfo_state(pkt.ct, pkt.ctinfo)
            line["reason"] = d.reason if d.verdict != ACCEPT else None
            line["source"] = d.source
            line["path"] = d.path
            if pkt is not None and pkt.mark != qmark:
                line["mark"] = pkt.mark
        self.trace.write(json.dumps(line) + "\n")

    # -- side outputs -------------------------------------------------------------------
    def _emitted(self, d: Any, pkt: Any) -> None:
        c = self.counters
        for item in d.emitted:
            if isinstance(item, Emitted):
                if item.kind == "REJECT" and item.decision.verdict == ACCEPT and item.data:
                    self._inject_packet(item.data, item.decision)
                continue
            cls = type(item).__name__
            if cls == "LogRecord" and hasattr(item, "prefix"):
                self._log_line(item, d, pkt)
            elif cls == "NflogRecord":
                c["nflog_ignored"] += 1

    def _inject_packet(self, data: bytes, sub: Any) -> None:
        """Send a packet statewall generated; the kernel routes it (OUTPUT skips the
        queue for our socket group: statewall already ran it through OUTPUT)."""
        fam = socket.AF_INET6 if data[0] >> 4 == 6 else socket.AF_INET
        s = self._inject.get(fam)
        if s is None:
            self.counters["reject_failed"] += 1
            return
        mark = sub.pkt.mark if sub.pkt is not None else 0
        try:
            if mark != self._inject_mark[fam]:
                s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
                self._inject_mark[fam] = mark
            if fam == socket.AF_INET:
                dst = socket.inet_ntop(fam, data[16:20])
                s.sendto(data, (dst, 0))
            else:
                dst = socket.inet_ntop(fam, data[24:40])
                s.sendto(data, (dst, 0, 0, 0))
            self.counters["reject_sent"] += 1
        except OSError as e:
            self.counters["reject_failed"] += 1
            self.log.debug(f"could not send a generated packet: {e}")

    def _log_line(self, rec: Any, d: Any, pkt: Any) -> None:
        from ..packet.log import log_line
        hook = getattr(rec, "hook", "")
        in_if = pkt.iface if hook in ("PREROUTING", "INPUT", "FORWARD") else None
        out_if = d.out_iface if hook in ("FORWARD", "OUTPUT", "POSTROUTING") else None
        try:
            text = log_line(rec.prefix, pkt, in_if, out_if, None, rec.flags)
        except Exception:
            return
        self.counters["log_lines"] += 1
        level = getattr(rec, "level", 4)
        prio = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20, 7: 10}.get(level, 30)
        self.log.log(prio, f"LOG {text.rstrip()}")

    # -- reload -------------------------------------------------------------------------
    def _reload(self) -> None:
        try:
            rules = self.loader(self.cfg)
            new = self.builder(self.settings, self.tracker, rules, self.host)
        except RulesError as e:
            self.counters["reloads_refused"] += 1
            swlog.event(logging.ERROR, "reload refused, the running rules stay", error=str(e))
            self._report("reload", ok=False, error=str(e))
            return
        except Exception as e:
            self.counters["reloads_refused"] += 1
            self.log.exception("reload failed, the running rules stay")
            self._report("reload", ok=False, error=repr(e))
            return
        new.defrag = self.fw.defrag
        self.fw = new
        gc.collect()
        gc.freeze()                              # the new compiled rules
        self.counters["reloads"] += 1
        swlog.event(logging.INFO, "rules reloaded", entries=len(self.tracker.table))
        self._report("reload", ok=True)

    # -- state --------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"queue": self.queue_num,
                "queues": [self.cfg.first_queue, self.cfg.last_queue]}

    def _checkpoint(self) -> None:
        """Write the state file from a forked child (a copy-on-write snapshot)."""
        path = self.cfg.state_path(self.queue_num)
        if path is None or self.checkpoint_pid:
            return
        now = time.monotonic()
        wall = time.time()
        try:
            pid = os.fork()
        except OSError as e:
            self.log.error(f"checkpoint: fork failed: {e}")
            return
        if pid == 0:                                  # the child: write and vanish
            code = 0
            try:
                os.close(self.q.fileno())             # never answer for the queue
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                statefile.save(path, self.tracker, now, wall, self._meta())
            except BaseException:
                code = 1
            os._exit(code)
        self.checkpoint_pid = pid

    def _reap_checkpoint(self, block: bool = False) -> None:
        try:
            pid, status = os.waitpid(self.checkpoint_pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.checkpoint_pid = 0
            return
        if pid == 0:
            return
        self.checkpoint_pid = 0
        if os.waitstatus_to_exitcode(status) == 0:
            self.counters["checkpoints"] += 1
        else:
            self.log.error("checkpoint failed")

    def save(self) -> int | None:
        path = self.cfg.state_path(self.queue_num)
        if path is None:
            return None
        return statefile.save(path, self.tracker, time.monotonic(), time.time(), self._meta())

    def _shutdown(self) -> None:
        if self.checkpoint_pid:
            self._reap_checkpoint(block=True)
        try:
            n = self.save()
            if n is not None:
                swlog.event(logging.INFO, "state saved", entries=n,
                            file=self.cfg.state_path(self.queue_num))
                self._report("saved", entries=n)
        except OSError as e:
            self.log.error(f"could not save the state file: {e}")
            self._report("save_failed", error=str(e))
        self._stats_line()                     # before the queue (and its counters) goes
        if self.flows is not None:             # flow records: write what is buffered
            st = self.flows.close(time.monotonic(), keep_table=self.cfg.state_file is not None)
            swlog.event(logging.WARNING if st["lost"] or st["unwritten"] else logging.INFO,
                        "flow records", **st)
        if self.ctl is not None:               # statewall conntrack
            self.ctl.close()
        self.q.close()
        self.watcher.close()
        for s in self._inject.values():
            if s is not None:
                s.close()
        if self.trace is not None and self.trace is not sys.stdout:
            self.trace.close()

    # -- counters -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        t = self.tracker
        kc = nfqueue.kernel_counters().get(self.queue_num, {})
        return {"pid": os.getpid(), "counters": dict(self.counters), "entries": len(t.table),
                "expectations": len(t.expect), "conntrack": dict(t.stats),
                "queue_overflow": kc.get("queue_dropped", 0),
                "netlink_overrun": kc.get("user_dropped", 0) + self.q.recv_errors,
                "queue_waiting": kc.get("queue_total", 0),
                "route_lookups": self.host.lookups,
                "flows": self.flows.writer.stats() if self.flows is not None else None}

    def _metrics(self, line: str, now: float) -> dict[str, Any]:
        """The ``metrics`` control request: this worker's snapshot (live/metrics.py)."""
        t0 = time.perf_counter()
        snap = swmetrics.snapshot(self.tracker, now, self.queue_num, self.status(),
                                  self.lat_counts, self.lat_sum_ns)
        snap["snapshot_seconds"] = time.perf_counter() - t0
        return {"ok": True, "metrics": snap}

    def _stats_line(self) -> None:
        st = self.status()
        c = st["counters"]
        fields = {"packets": c["packets"], "accepted": c["accepted"], "dropped": c["dropped"],
                  "entries": st["entries"], "queue_overflow": st["queue_overflow"],
                  "netlink_overrun": st["netlink_overrun"], "reject_sent": c["reject_sent"],
                  "invalid": st["conntrack"].get("invalid", 0)}
        lost = st["queue_overflow"] + st["netlink_overrun"]
        level = logging.INFO
        if lost > self._last_kc.get("lost", 0):
            level = logging.WARNING            # new overflows since the last line
        self._last_kc["lost"] = lost
        swlog.event(level, "stats", **fields)


def run_worker(cfg: Config, queue: int, loader: Loader, builder: Builder,
               report_fd: int | None, parent: int | None = None) -> int:
    """Entry point in a forked child: dies with its supervisor (PR_SET_PDEATHSIG)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        return 1                                 # the supervisor died before prctl
    swlog.setup(f"q{queue}", cfg.log_level)
    report = os.fdopen(report_fd, "w", encoding="utf-8") if report_fd is not None else None
    try:
        return Worker(cfg, queue, loader, builder, report).run()
    except Exception:
        swlog.get().exception("worker failed")
        return 1
