"""NFQUEUE over plain netlink sockets: bind a queue, receive packets, send verdicts.

Owns: the nfnetlink_queue wire format (``include/uapi/linux/netfilter/nfnetlink_queue.h``):
the config messages (bind, copy mode, queue length, fail-open/GSO flags), parsing a
``NFQNL_MSG_PACKET`` into the few fields statewall needs, building ``NFQNL_MSG_VERDICT``
(with a new mark and/or a rewritten payload) and ``NFQNL_MSG_VERDICT_BATCH`` messages, and
sending many verdicts in one ``sendmsg``. Also the per-queue counters the kernel keeps
(``/proc/net/netfilter/nfnetlink_queue``: queue overflows, netlink overruns).
Must not know: what a packet means, rules, conntrack. No libnetfilter_queue: the binding is
~300 lines of ``struct`` so the hot path has no C-to-Python callback per packet and no
per-packet allocation beyond the payload copy (see docs/live.md for the measurements that
chose it over NetfilterQueue and fnfqueue).

Receive side: one netlink datagram per queued packet. ``recv_batch`` drains the socket
without blocking (up to ``limit`` packets) into a preallocated buffer and returns
``QueuedPacket`` objects. Send side: ``Verdicts`` collects verdicts and flushes them as one
``sendmsg`` of concatenated netlink messages; a run of plain accepts with no mark change is
folded into one ``VERDICT_BATCH`` (the kernel applies it to every queued id <= the given
id), which the caller may use only when every earlier packet already has its verdict.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Final

# netlink
NETLINK_NETFILTER: Final = 12
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NETLINK_NO_ENOBUFS: Final = 5
SOL_NETLINK: Final = 270
SO_RCVBUFFORCE: Final = 33
SO_SNDBUFFORCE: Final = 32

# nfnetlink_queue
NFNL_SUBSYS_QUEUE: Final = 3
NFQNL_MSG_PACKET: Final = 0
NFQNL_MSG_VERDICT: Final = 1
NFQNL_MSG_CONFIG: Final = 2
NFQNL_MSG_VERDICT_BATCH: Final = 3

NFQA_PACKET_HDR: Final = 1
NFQA_VERDICT_HDR: Final = 2
NFQA_MARK: Final = 3
NFQA_TIMESTAMP: Final = 4
NFQA_IFINDEX_INDEV: Final = 5
NFQA_IFINDEX_OUTDEV: Final = 6
NFQA_HWADDR: Final = 9
NFQA_PAYLOAD: Final = 10
NFQA_CAP_LEN: Final = 13
NFQA_SKB_INFO: Final = 14

NFQA_CFG_CMD: Final = 1
NFQA_CFG_PARAMS: Final = 2
NFQA_CFG_QUEUE_MAXLEN: Final = 3
NFQA_CFG_MASK: Final = 4
NFQA_CFG_FLAGS: Final = 5

NFQNL_CFG_CMD_BIND: Final = 1
NFQNL_CFG_CMD_UNBIND: Final = 2
NFQNL_COPY_PACKET: Final = 2

NFQA_CFG_F_FAIL_OPEN: Final = 0x1
NFQA_CFG_F_GSO: Final = 0x4

# verdicts (include/uapi/linux/netfilter.h)
NF_DROP: Final = 0
NF_ACCEPT: Final = 1
NF_QUEUE: Final = 3

_MSG_PACKET: Final = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
_MSG_VERDICT: Final = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT
_MSG_BATCH: Final = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH
_MSG_CONFIG: Final = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG

_NLMSGHDR: Final = struct.Struct("=IHHII")
_NFGEN: Final = struct.Struct("=BBH")          # family, version, res_id (big endian!)
_NLATTR: Final = struct.Struct("=HH")
_U16BE: Final = struct.Struct("!H")
_U32BE: Final = struct.Struct("!I")
_PKTHDR: Final = struct.Struct("!IHB")         # packet_id, hw_protocol, hook
# a whole verdict message: nlmsghdr, nfgenmsg, NFQA_VERDICT_HDR attribute
_VERDICT_MSG: Final = struct.Struct("=IHHIIBBH HH II")
_VERDICT_LEN: Final = _VERDICT_MSG.size        # 32
_MARK_ATTR: Final = struct.Struct("=HHI")      # NFQA_MARK attribute (value big endian)
_ERRMSG: Final = struct.Struct("=i")

RECV_BUFSIZE: Final = 256 * 1024               # one datagram: 64 KiB payload + attributes
COPY_RANGE: Final = 0xFFFF


class NfqError(OSError):
    """A netlink request the kernel refused (errno set), or a broken reply."""


# A received packet is a plain tuple (the hot path creates one per packet):
# (id, hook, mark, indev, outdev, payload) - the queue's packet id (for the verdict), the
# NF_INET_* hook it was queued at, skb->mark, input/output interface indexes (0: none) and
# the IP datagram.
QueuedPacket = tuple[int, int, int, int, int, bytes]
P_ID: Final = 0
P_HOOK: Final = 1
P_MARK: Final = 2
P_INDEV: Final = 3
P_OUTDEV: Final = 4
P_PAYLOAD: Final = 5


def _attr(atype: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return _NLATTR.pack(n, atype) + data + b"\0" * ((4 - n % 4) % 4)


def _msg(mtype: int, flags: int, seq: int, queue: int, attrs: bytes, family: int = 0) -> bytes:
    body = _NFGEN.pack(family, 0, socket.htons(queue)) + attrs
    return _NLMSGHDR.pack(16 + len(body), mtype, flags, seq, 0) + body


def parse_packet(buf: bytes | bytearray | memoryview, off: int, end: int
                 ) -> QueuedPacket | None:
    """Decode one ``NFQNL_MSG_PACKET`` whose attributes run from ``off`` to ``end``
    (after the nfgenmsg). None when the message has no packet header."""
    pid = -1
    hook = mark = indev = outdev = poff = plen = 0
    u_attr = _NLATTR.unpack_from
    u32 = _U32BE.unpack_from
    while off + 4 <= end:
        alen, atype = u_attr(buf, off)
        if alen < 4:
            break
        atype &= 0x3FFF
        if atype == NFQA_PAYLOAD:
            poff = off + 4
            plen = alen - 4
        elif atype == NFQA_PACKET_HDR:
            pid, _hw, hook = _PKTHDR.unpack_from(buf, off + 4)
        elif atype == NFQA_MARK:
            mark = u32(buf, off + 4)[0]
        elif atype == NFQA_IFINDEX_INDEV:
            indev = u32(buf, off + 4)[0]
        elif atype == NFQA_IFINDEX_OUTDEV:
            outdev = u32(buf, off + 4)[0]
        off += (alen + 3) & ~3
    if pid < 0:
        return None
    return (pid, hook, mark, indev, outdev, bytes(buf[poff:poff + plen]))


class Queue:
    """One bound NFQUEUE (``queue`` number) on its own netlink socket.

    ``maxlen``: the kernel-side queue length (packets waiting for a verdict; overflows are
    dropped, or accepted with ``fail_open``). ``rcvbuf``: the socket's receive buffer
    (netlink overruns drop packets too; both are counted by the kernel).
    """

    def __init__(self, queue: int, *, maxlen: int = 4096, fail_open: bool = False,
                 rcvbuf: int = 8 << 20) -> None:
        self.queue = queue
        self.fail_open = fail_open
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._seq = 0
        self._buf = bytearray(RECV_BUFSIZE)
        self._view = memoryview(self._buf)
        self.recv_errors = 0            # ENOBUFS seen on our socket (kernel overran us)
        self.malformed = 0              # messages that were not packets we could read
        try:
            self.sock.bind((0, 0))
            for opt, val in ((SO_RCVBUFFORCE, rcvbuf), (SO_SNDBUFFORCE, 4 << 20)):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, opt, val)
                except OSError:         # without CAP_NET_ADMIN: the ordinary limit applies
                    plain = socket.SO_RCVBUF if opt == SO_RCVBUFFORCE else socket.SO_SNDBUF
                    self.sock.setsockopt(socket.SOL_SOCKET, plain, val)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
            self._request(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
            self._request(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", COPY_RANGE,
                                                             NFQNL_COPY_PACKET)))
            self._request(_attr(NFQA_CFG_QUEUE_MAXLEN, _U32BE.pack(maxlen)))
            flags = NFQA_CFG_F_FAIL_OPEN if fail_open else 0
            self._request(_attr(NFQA_CFG_MASK, _U32BE.pack(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO))
                          + _attr(NFQA_CFG_FLAGS, _U32BE.pack(flags)))
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- configuration (blocking request/ack) -------------------------------------------
    def _request(self, attrs: bytes) -> None:
        self._seq += 1
        seq = self._seq
        self.sock.sendall(_msg(_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, self.queue, attrs))
        while True:
            n = self.sock.recv_into(self._buf)
            off = 0
            while off + 16 <= n:
                mlen, mtype, _fl, mseq, _pid = _NLMSGHDR.unpack_from(self._buf, off)
                if mlen < 16:
                    raise NfqError(errno.EPROTO, "nfqueue: malformed netlink reply")
                if mtype == NLMSG_ERROR and mseq == seq:
                    err = -_ERRMSG.unpack_from(self._buf, off + 16)[0]
                    if err:
                        raise NfqError(err, f"nfqueue {self.queue}: config refused: "
                                            f"{os.strerror(err)}")
                    return
                off += (mlen + 3) & ~3

    def close(self) -> None:
        """Unbind and close. Packets still waiting for a verdict are dropped by the kernel
        (``nfqnl_flush`` reinjects them with NF_DROP)."""
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(1.0)
            self._request(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0)))
        except OSError:
            pass
        self.sock.close()

    # -- receive ------------------------------------------------------------------------
    def recv_batch(self, limit: int = 64) -> list[QueuedPacket]:
        """Packets waiting on the socket, without blocking (at most ``limit``)."""
        out: list[QueuedPacket] = []
        append = out.append
        recv_into = self.sock.recv_into
        buf = self._buf
        view = self._view
        unpack = _NLMSGHDR.unpack_from
        for _ in range(limit):
            try:
                n = recv_into(buf)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.recv_errors += 1
                    continue
                if e.errno == errno.EINTR:
                    continue
                raise
            off = 0
            while off + 20 <= n:
                mlen, mtype, _fl, _seq, _pid = unpack(buf, off)
                if mlen < 16 or off + mlen > n:
                    self.malformed += 1
                    break
                if mtype == _MSG_PACKET:
                    p = parse_packet(view, off + 20, off + mlen)
                    if p is not None:
                        append(p)
                    else:
                        self.malformed += 1
                off += (mlen + 3) & ~3
        return out

    # -- verdicts -----------------------------------------------------------------------
    def verdict(self, pid: int, verdict: int, mark: int | None = None,
                payload: bytes | None = None) -> None:
        """One verdict, sent at once (see ``Verdicts`` for the batched form)."""
        v = Verdicts(self)
        v.add(pid, verdict, mark, payload)
        v.flush()


class Verdicts:
    """Verdicts collected for one ``sendmsg``. ``accept_upto`` folds plain accepts into a
    ``VERDICT_BATCH`` covering every queued id up to the highest one given."""

    __slots__ = ("q", "parts", "batch_id", "n")

    def __init__(self, q: Queue) -> None:
        self.q = q
        self.parts: list[bytes] = []
        self.batch_id = -1
        self.n = 0

    def add(self, pid: int, verdict: int, mark: int | None = None,
            payload: bytes | None = None) -> None:
        """A verdict for one packet; ``mark``: the new skb->mark; ``payload``: new bytes."""
        queue = self.q.queue
        extra = b""
        if mark is not None:
            extra = _MARK_ATTR.pack(8, NFQA_MARK, socket.htonl(mark & 0xFFFFFFFF))
        if payload is not None:
            extra += _attr(NFQA_PAYLOAD, payload)
        self.parts.append(_VERDICT_MSG.pack(
            _VERDICT_LEN + len(extra), _MSG_VERDICT, NLM_F_REQUEST, 0, 0,
            0, 0, socket.htons(queue), 12, NFQA_VERDICT_HDR,
            socket.htonl(verdict), socket.htonl(pid)) + extra)
        self.n += 1

    def accept_upto(self, pid: int) -> None:
        """Plain accept for ``pid`` and, in the same message, every earlier queued id that
        has no verdict yet (the caller guarantees there are none it wants otherwise)."""
        if pid > self.batch_id:
            self.batch_id = pid
        self.n += 1

    def flush(self) -> None:
        parts = self.parts
        if self.batch_id >= 0:
            # after the individual verdicts: those ids are gone from the queue by then
            parts.append(_VERDICT_MSG.pack(
                _VERDICT_LEN, _MSG_BATCH, NLM_F_REQUEST, 0, 0, 0, 0,
                socket.htons(self.q.queue), 12, NFQA_VERDICT_HDR,
                socket.htonl(NF_ACCEPT), socket.htonl(self.batch_id)))
            self.batch_id = -1
        if not parts:
            return
        data = b"".join(parts)
        parts.clear()
        self.n = 0
        sock = self.q.sock
        while True:
            try:
                sock.send(data)
                return
            except BlockingIOError:
                import select
                select.select([], [sock], [], 1.0)
            except InterruptedError:
                continue


def kernel_counters(path: str = "/proc/net/netfilter/nfnetlink_queue") -> dict[int, dict[str, int]]:
    """The kernel's per-queue counters in this network namespace: ``queue_total``
    (waiting now), ``queue_dropped`` (overflows of the queue length), ``user_dropped``
    (netlink overruns: our socket buffer was full), ``id_sequence`` (packets queued)."""
    out: dict[int, dict[str, int]] = {}
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        w = line.split()
        if len(w) < 8:
            continue
        try:
            vals = [int(x) for x in w[:8]]
        except ValueError:
            continue
        out[vals[0]] = {"portid": vals[1], "queue_total": vals[2], "copy_mode": vals[3],
                        "copy_range": vals[4], "queue_dropped": vals[5],
                        "user_dropped": vals[6], "id_sequence": vals[7]}
    return out
