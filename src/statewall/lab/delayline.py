"""A delay line for the peers' own traffic, so fw can be snapshot between two packets.

Owns: an NFQUEUE listener inside a peer namespace (rule: mangle POSTROUTING -o eth0 ->
NFQUEUE, with --queue-bypass so nothing hangs if the listener is gone) that accepts each
packet the peer's stack sends no sooner than ``delay`` after it was queued and ``gap`` after
the previous one (of either peer, when they share a ``Schedule``).  A request crossing fw and the peer's immediate answer therefore reach fw
at least ``delay`` apart, and back-to-back segments ``gap`` apart.  (The kernel on this
machine has no sch_netem; HTB/TBF cannot delay the first packet after idle.)
Must not know: fw, conntrack, scenarios.  Crafted packets injected with AF_PACKET never
traverse netfilter and are not delayed.

Follows ``include/uapi/linux/netfilter/nfnetlink_queue.h``.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections import deque
from typing import Final

from statewall.lab.netns import Side, Topology

NETLINK_NETFILTER: Final = 12
NFNL_SUBSYS_QUEUE: Final = 3
NFQNL_MSG_PACKET: Final = 0
NFQNL_MSG_VERDICT: Final = 1
NFQNL_MSG_CONFIG: Final = 2
NFQA_CFG_CMD: Final = 1
NFQA_CFG_PARAMS: Final = 2
NFQA_PACKET_HDR: Final = 1
NFQA_VERDICT_HDR: Final = 2
NFQNL_CFG_CMD_BIND: Final = 1
NFQNL_COPY_META: Final = 1
NF_ACCEPT: Final = 1
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLMSG_ERROR: Final = 2
_NLH: Final = struct.Struct("=IHHII")


def _attr(atype: int, payload: bytes) -> bytes:
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, atype) + payload + bytes((-ln) % 4)


class Schedule:
    """Release times shared by the delay lines of both peers, so that packets from the two
    sides are also ``gap`` apart when they reach fw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0.0


class DelayLine:
    """Delays everything ``side``'s stack sends out of its veth (see module doc)."""

    def __init__(self, topo: Topology, side: Side, *, delay: float = 0.15, gap: float = 0.1,
                 queue: int = 3, schedule: Schedule | None = None) -> None:
        self.topo = topo
        self.side = side
        self.delay = delay
        self.gap = gap
        self.queue = queue
        self.passed = 0
        self.schedule = schedule or Schedule()
        self._seq = 0
        self._stop = threading.Event()
        self._pending: deque[tuple[float, int]] = deque()
        ep = topo.endpoint(side)
        rule = (f"*mangle\n-A POSTROUTING -o {ep.ifname} -j NFQUEUE --queue-num {queue} "
                "--queue-bypass\nCOMMIT\n")
        self._sock = topo.socket(side, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._sock.bind((0, 0))
        self._sock.settimeout(2.0)
        self._send(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_CMD, struct.pack(">BxH", NFQNL_CFG_CMD_BIND,
                                                                      0)), ack=True)
        self._send(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_PARAMS,
                                           struct.pack(">IB", 0, NFQNL_COPY_META)), ack=True)
        self._sock.setblocking(False)
        topo.run(side, ["iptables-restore", "--noflush"], input=rule)
        topo.run(side, ["ip6tables-restore", "--noflush"], input=rule)
        self._thread = threading.Thread(target=self._loop, name=f"delay-{side}", daemon=True)
        self._thread.start()

    def _send(self, mtype: int, attrs: bytes, ack: bool = False) -> None:
        self._seq += 1
        body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", self.queue) + attrs
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        self._sock.send(_NLH.pack(_NLH.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | mtype,
                                  flags, self._seq, 0) + body)
        if ack:
            reply = self._sock.recv(65536)
            _ln, rtype, _f, _s, _p = _NLH.unpack_from(reply, 0)
            if rtype == NLMSG_ERROR:
                (err,) = struct.unpack_from("=i", reply, _NLH.size)
                if err:
                    raise OSError(-err, f"NFQUEUE config of queue {self.queue} failed")

    def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = 0.05
            if self._pending:
                timeout = max(0.0, min(timeout, self._pending[0][0] - time.monotonic()))
            r, _, _ = select.select([self._sock], [], [], timeout)
            if r:
                while True:
                    try:
                        buf = self._sock.recv(65536)
                    except (BlockingIOError, OSError):
                        break
                    now = time.monotonic()
                    for pid in self._packet_ids(buf):
                        with self.schedule.lock:
                            release = max(now + self.delay, self.schedule.last + self.gap)
                            self.schedule.last = release
                        self._pending.append((release, pid))
            now = time.monotonic()
            while self._pending and self._pending[0][0] <= now:
                _, pid = self._pending.popleft()
                self._verdict(pid)

    @staticmethod
    def _packet_ids(buf: bytes) -> list[int]:
        ids = []
        off = 0
        while off + _NLH.size <= len(buf):
            ln, mtype, _f, _s, _p = _NLH.unpack_from(buf, off)
            if ln < _NLH.size:
                break
            if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + _NLH.size + 4
                while a + 4 <= off + ln:
                    alen, atype = struct.unpack_from("=HH", buf, a)
                    if alen < 4:
                        break
                    if atype & 0x3FFF == NFQA_PACKET_HDR:
                        ids.append(struct.unpack_from(">I", buf, a + 4)[0])
                    a += (alen + 3) & ~3
            off += (ln + 3) & ~3
        return ids

    def _verdict(self, pid: int) -> None:
        try:
            self._send(NFQNL_MSG_VERDICT, _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT,
                                                                              pid)))
            self.passed += 1
        except OSError:
            pass

    def close(self) -> None:
        """Release everything still queued and stop (the bypass rule stays harmless)."""
        self._stop.set()
        self._thread.join(2.0)
        for _, pid in self._pending:
            self._verdict(pid)
        self._pending.clear()
        self._sock.close()
