"""Live capture in a namespace: one AF_PACKET socket sees every frame of every interface.

Owns: reading frames (both directions, kernel nanosecond timestamps, input/output interface
and direction) from an ``AF_PACKET``/``ETH_P_ALL`` socket opened inside fw's namespace, in
the order the kernel delivered them, on a background thread.
Must not know: scenarios, conntrack, file formats (``record`` writes what this collects with ``statewall.io.capture``).

One socket for all interfaces gives a single kernel-ordered stream (the tap runs right
before ``ip_rcv``/PREROUTING for ingress and at ``dev_queue_xmit`` for egress), so the
capture order is the order in which conntrack saw the packets.  Enabling SO_TIMESTAMPNS
also turns on skb timestamping for the whole host, which makes NFLOG messages carry the
same timestamp as the captured frame (see ``nflog``).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Final

ETH_P_ALL: Final = 0x0003
SO_TIMESTAMPNS: Final = 35  # SO_TIMESTAMPNS_OLD, cmsg type SCM_TIMESTAMPNS
PACKET_OUTGOING: Final = 4
_TS: Final = struct.Struct("=qq")  # struct timespec on 64-bit Linux


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured link-layer frame."""

    ts_ns: int  # CLOCK_REALTIME, nanoseconds
    iface: str
    outgoing: bool  # True: leaving ``iface``; False: entering it
    data: bytes  # the full Ethernet frame

    @property
    def ethertype(self) -> int:
        return int.from_bytes(self.data[12:14], "big") if len(self.data) >= 14 else 0

    @property
    def l3(self) -> bytes:
        """The network-layer packet, link padding trimmed (IPv4/IPv6 only, else b"")."""
        et = self.ethertype
        if et == 0x0800 and len(self.data) >= 34:
            total = int.from_bytes(self.data[16:18], "big")
            return self.data[14:14 + total]
        if et == 0x86DD and len(self.data) >= 54:
            plen = int.from_bytes(self.data[18:20], "big")
            return self.data[14:14 + 40 + plen]
        return b""


class Capture:
    """Background reader of an AF_PACKET socket; ``frames`` grows as packets arrive.

    ``sock`` must be an ``AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)`` socket (open it inside the
    namespace to watch).  Only frames of ``ifaces`` are kept.
    """

    def __init__(self, sock: socket.socket, ifaces: tuple[str, ...]) -> None:
        self._sock = sock
        self._ifaces = ifaces
        self.frames: list[Frame] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setblocking(False)
        self._thread = threading.Thread(target=self._loop, name="lab-capture", daemon=True)

    @staticmethod
    def open_socket_args() -> tuple[int, int, int]:
        return socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def _loop(self) -> None:
        anc = socket.CMSG_SPACE(_TS.size)
        while not self._stop.is_set():
            r, _, _ = select.select([self._sock], [], [], 0.05)
            if not r:
                continue
            while True:
                try:
                    data, ancdata, _flags, addr = self._sock.recvmsg(262144, anc)
                except BlockingIOError:
                    break
                except OSError:
                    return
                ts_ns = 0
                for level, ctype, cdata in ancdata:
                    if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS:
                        sec, nsec = _TS.unpack_from(cdata)
                        ts_ns = sec * 1_000_000_000 + nsec
                if not ts_ns:
                    ts_ns = time.time_ns()
                ifname, _proto, pkttype = addr[0], addr[1], addr[2]
                if ifname not in self._ifaces:
                    continue
                frame = Frame(ts_ns, ifname, pkttype == PACKET_OUTGOING, data)
                with self._cond:
                    self.frames.append(frame)
                    self._cond.notify_all()

    def count(self) -> int:
        with self._lock:
            return len(self.frames)

    def snapshot(self) -> list[Frame]:
        with self._lock:
            return list(self.frames)

    def wait_for(self, start: int, *, incoming: bool = True, timeout: float = 1.0) -> bool:
        """Wait until a frame (entering fw if ``incoming``) with index >= start exists."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(f.outgoing != incoming for f in self.frames[start:]):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    def stop(self) -> list[Frame]:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()
        return self.snapshot()
