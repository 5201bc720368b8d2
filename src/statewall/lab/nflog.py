"""NFLOG reader: the per-packet ctstate the kernel's own rules saw, over nfnetlink_log.

Owns: binding an NFLOG group on a ``NETLINK_NETFILTER`` socket (opened inside fw's
namespace: NFLOG instances are per netns), configuring copy-packet mode with an immediate
flush, and decoding ``NFULNL_MSG_PACKET`` messages (prefix, timestamp, in/out ifindex,
hook, payload) on a background thread.  Also the observation ruleset: one NFLOG rule per
``--ctstate``/``--ctdir`` combination, with the state in the prefix, at mangle PREROUTING and
OUTPUT; one at the end of INPUT (security table) telling which packets were delivered to fw
itself; and optionally the rule that silences fw's own stack.
Must not know: scenarios, capture files, conntrack tables.

Follows ``include/uapi/linux/netfilter/nfnetlink_log.h`` and ``net/netfilter/nfnetlink_log.c``.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Final

NETLINK_NETFILTER: Final = 12
NFNL_SUBSYS_ULOG: Final = 4
NFULNL_MSG_PACKET: Final = 0
NFULNL_MSG_CONFIG: Final = 1
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3

NFULA_CFG_CMD: Final = 1
NFULA_CFG_MODE: Final = 2
NFULA_CFG_TIMEOUT: Final = 3
NFULA_CFG_QTHRESH: Final = 4
NFULNL_CFG_CMD_BIND: Final = 1
NFULNL_COPY_PACKET: Final = 2

NFULA_PACKET_HDR: Final = 1
NFULA_MARK: Final = 2
NFULA_TIMESTAMP: Final = 3
NFULA_IFINDEX_INDEV: Final = 4
NFULA_IFINDEX_OUTDEV: Final = 5
NFULA_PAYLOAD: Final = 9
NFULA_PREFIX: Final = 10

_NLH: Final = struct.Struct("=IHHII")
_NFGEN: Final = struct.Struct("=BBH")  # res_id is big-endian: packed by hand
_NLA: Final = struct.Struct("=HH")

# The observation rules.  Every packet matches exactly one of them (xt_conntrack: with no
# ct only a pure --ctstate test can match, hence no --ctdir on INVALID/UNTRACKED).
PREFIX: Final = "swct "
STATE_RULES: Final = (
    ("INVALID", None),
    ("UNTRACKED", None),
    ("NEW", "ORIGINAL"),
    ("NEW", "REPLY"),
    ("ESTABLISHED", "ORIGINAL"),
    ("ESTABLISHED", "REPLY"),
    ("RELATED", "ORIGINAL"),
    ("RELATED", "REPLY"),
)
OBSERVE_CHAIN: Final = "SW_OBSERVE"
DELIVER_PREFIX: Final = "swin"
NF_INET_LOCAL_IN: Final = 1
NF_INET_LOCAL_OUT: Final = 3


def observe_ruleset(group: int, *, silence_uid: int | None = None) -> str:
    """iptables-restore text (same for ip6tables, load with ``--noflush`` after the
    scenario's rules) for the observation rules.

    mangle PREROUTING and OUTPUT run right after conntrack (-200 < -150) and see every
    packet that survived defrag and conntrack, arriving or sent by fw itself; security INPUT
    (priority 50) is the last table before conntrack confirms an entry at INPUT, so its
    NFLOG rule (appended after any rules of the scenario) sees exactly the packets the
    rules let through to fw's own stack.  ``silence_uid``: raw OUTPUT drops, before
    conntrack sees them, all packets not sent by a socket of that (filesystem) uid: fw's own
    stack (TCP resets, ICMP errors, echo replies, ND, REJECT's answers) is mute.
    """
    lines = ["*mangle", f":{OBSERVE_CHAIN} - [0:0]",
             f"-I PREROUTING 1 -j {OBSERVE_CHAIN}", f"-I OUTPUT 1 -j {OBSERVE_CHAIN}"]
    for state, direction in STATE_RULES:
        match = f"-m conntrack --ctstate {state}"
        tag = state
        if direction:
            match += f" --ctdir {direction}"
            tag += f" {direction}"
        lines.append(f"-A {OBSERVE_CHAIN} {match} -j NFLOG --nflog-group {group} "
                     f"--nflog-prefix \"{PREFIX}{tag}\" --nflog-threshold 1")
    lines.append("COMMIT")
    lines += ["*security", f"-A INPUT -j NFLOG --nflog-group {group} "
              f"--nflog-prefix {DELIVER_PREFIX} --nflog-threshold 1", "COMMIT"]
    if silence_uid is not None:
        lines += ["*raw", f"-I OUTPUT 1 -m owner ! --uid-owner {silence_uid} -j DROP",
                  "COMMIT"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class NflogRecord:
    """One NFLOG message."""

    recv_ns: int  # when we read it (CLOCK_REALTIME)
    ts_ns: int | None  # the skb's timestamp (µs resolution) if the kernel sent one
    family: int
    hook: int
    prefix: str
    indev: int | None
    outdev: int | None
    payload: bytes

    @property
    def ctstate(self) -> str | None:
        """'NEW', 'ESTABLISHED', ... from an observation-rule prefix, else None."""
        if not self.prefix.startswith(PREFIX):
            return None
        return self.prefix[len(PREFIX):].split()[0]

    @property
    def delivered(self) -> bool:
        """The security-INPUT record: the packet reached fw's own stack."""
        return self.prefix == DELIVER_PREFIX

    @property
    def ctdir(self) -> str | None:
        if not self.prefix.startswith(PREFIX):
            return None
        parts = self.prefix[len(PREFIX):].split()
        return parts[1] if len(parts) > 1 else None


def _attr(atype: int, payload: bytes) -> bytes:
    ln = _NLA.size + len(payload)
    return _NLA.pack(ln, atype) + payload + bytes((-ln) % 4)


def _parse_attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + _NLA.size <= end:
        ln, atype = _NLA.unpack_from(buf, off)
        if ln < _NLA.size:
            break
        out[atype & 0x3FFF] = buf[off + _NLA.size: off + ln]
        off += (ln + 3) & ~3
    return out


class NflogReader:
    """Binds NFLOG ``group`` on ``sock`` (a NETLINK_NETFILTER raw socket opened inside the
    namespace to observe) and collects ``records`` on a background thread."""

    def __init__(self, sock: socket.socket, group: int) -> None:
        self._sock = sock
        self.group = group
        self.records: list[NflogRecord] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._seq = 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((0, 0))
        self._config(socket.AF_UNSPEC, _attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND])))
        self._config(socket.AF_UNSPEC,
                     _attr(NFULA_CFG_MODE, struct.pack(">IBB", 0xFFFF, NFULNL_COPY_PACKET, 0))
                     + _attr(NFULA_CFG_QTHRESH, struct.pack(">I", 1))
                     + _attr(NFULA_CFG_TIMEOUT, struct.pack(">I", 0)))
        sock.setblocking(False)
        self._thread = threading.Thread(target=self._loop, name="lab-nflog", daemon=True)

    @staticmethod
    def open_socket_args() -> tuple[int, int, int]:
        return socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER

    def _config(self, family: int, attrs: bytes) -> None:
        self._seq += 1
        body = _NFGEN.pack(family, 0, 0)[:2] + struct.pack(">H", self.group) + attrs
        mtype = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        msg = _NLH.pack(_NLH.size + len(body), mtype, NLM_F_REQUEST | NLM_F_ACK,
                        self._seq, 0) + body
        self._sock.send(msg)
        self._sock.settimeout(2.0)
        reply = self._sock.recv(65536)
        ln, mtype, _flags, _seq, _pid = _NLH.unpack_from(reply, 0)
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", reply, _NLH.size)
            if err != 0:
                raise OSError(-err, f"NFLOG config for group {self.group} failed")

    def start(self) -> NflogReader:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self._sock], [], [], 0.05)
            if not r:
                continue
            while True:
                try:
                    buf = self._sock.recv(1 << 20)
                except BlockingIOError:
                    break
                except OSError as exc:  # ENOBUFS: we lost messages; say so
                    self.errors.append(str(exc))
                    if self._stop.is_set():
                        return
                    break
                self._parse(buf, time.time_ns())

    def _parse(self, buf: bytes, recv_ns: int) -> None:
        off = 0
        while off + _NLH.size <= len(buf):
            ln, mtype, _flags, _seq, _pid = _NLH.unpack_from(buf, off)
            if ln < _NLH.size:
                break
            if mtype == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                family = buf[off + _NLH.size]
                attrs = _parse_attrs(buf, off + _NLH.size + 4, off + ln)
                rec = self._record(family, attrs, recv_ns)
                with self._cond:
                    self.records.append(rec)
                    self._cond.notify_all()
            off += (ln + 3) & ~3

    @staticmethod
    def _record(family: int, a: dict[int, bytes], recv_ns: int) -> NflogRecord:
        ts_ns = None
        if NFULA_TIMESTAMP in a:
            sec, usec = struct.unpack(">QQ", a[NFULA_TIMESTAMP][:16])
            ts_ns = sec * 1_000_000_000 + usec * 1000
        hook = a[NFULA_PACKET_HDR][2] if NFULA_PACKET_HDR in a else -1
        indev = struct.unpack(">I", a[NFULA_IFINDEX_INDEV])[0] if NFULA_IFINDEX_INDEV in a else None
        outdev = (struct.unpack(">I", a[NFULA_IFINDEX_OUTDEV])[0]
                  if NFULA_IFINDEX_OUTDEV in a else None)
        prefix = a.get(NFULA_PREFIX, b"").split(b"\0", 1)[0].decode("ascii", "replace")
        return NflogRecord(recv_ns, ts_ns, family, hook, prefix, indev, outdev,
                           a.get(NFULA_PAYLOAD, b""))

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def wait_for(self, start: int, timeout: float) -> bool:
        """Wait until a record with index >= start exists."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.records) <= start:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def snapshot(self) -> list[NflogRecord]:
        with self._lock:
            return list(self.records)

    def stop(self) -> list[NflogRecord]:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()
        return self.snapshot()
