"""``statewall conntrack -E``: event subscribers on a worker's control socket.

Owns: the subscription (an ``-E`` request keeps its connection open: one JSON ack line
``{"ok": true, "stream": true}``, then one ``conntrack -E`` text line per event and, when
events were lost, a marker line ``!lost N``), a bounded ring per subscriber (a
``collections.deque(maxlen=N)``, N = ``-b N`` of the request, else ``DEFAULT_RING``), the
tracker's ``sink``/``expect_sink`` (set only while a subscriber exists: no cost otherwise),
and non-blocking writes: a subscriber that does not read falls behind, its ring overwrites
the oldest lines and the loss is counted and sent as ``!lost N`` before the next line. The
packet path never waits on a subscriber.
Must not know: processes, packets, the worker's loop (it calls ``flush()`` and asks
``backlog``).
Follows conntrack-tools src/conntrack.c (event_cb, -e event masks, -o timestamp/extended/id,
the ENOBUFS warning) and libnetfilter_conntrack's snprintf_default.
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Final

from ..conntrack.conn import Conn
from ..conntrack.core import Tracker
from ..conntrack.ecache import notifier
from ..conntrack.expect import Expectation
from ..conntrack.format import event_kind, event_line, expect_event_line
from . import ops, render
from .args import Command, ParamError, parse

DEFAULT_RING: Final = 4096
MAX_RING: Final = 1 << 16
LOST: Final = "!lost "
ACK: Final = b'{"ok": true, "stream": true}\n'
MAX_CHUNK: Final = 256                       # lines per send()

# -e names (conntrack's event masks) -> the kinds event_kind()/expect events give
EVENT_NAMES: Final[dict[str, frozenset[str]]] = {
    "ALL": frozenset({"[NEW]", "[UPDATE]", "[DESTROY]"}),
    "NEW": frozenset({"[NEW]"}), "UPDATE": frozenset({"[UPDATE]"}),
    "UPDATES": frozenset({"[UPDATE]"}), "DESTROY": frozenset({"[DESTROY]"}),
}

# what the client prints when the daemon reports a loss (conntrack's ENOBUFS text)
ENOBUFS_WARNING: Final = ("WARNING: We have hit ENOBUFS! We are losing events.\n"
                          "This message means that the current netlink socket buffer size "
                          "is too small.\nPlease, check --buffer-size in conntrack(8) "
                          "manpage.\n")


def event_kinds(c: Command) -> frozenset[str]:
    text = c.opts.get("event_mask")
    if not text:
        return EVENT_NAMES["ALL"]
    kinds: frozenset[str] = frozenset()
    for name in text.split(","):
        k = EVENT_NAMES.get(name.strip().upper())
        if k is None:
            raise ParamError(f"Bad parameter `{name}'")
        kinds |= k
    return kinds


def ring_size(c: Command) -> int:
    text = c.opts.get("buffer")
    if not text:
        return DEFAULT_RING
    try:
        n = int(text, 0)
    except ValueError:
        raise ParamError(f"invalid buffer size `{text}'") from None
    return max(1, min(MAX_RING, n))


def event_command(line: str) -> Command | None:
    """The parsed ``-E`` command of a request line, or None (any other request, or one that
    ``ops`` should answer with its error)."""
    from .server import PREFIX
    if not line.startswith(PREFIX):
        return None
    try:
        argv = json.loads(line[len(PREFIX):])["argv"]
        c = parse([str(a) for a in argv])
        if c.cmd != "event" or c.table not in ("conntrack", "expect"):
            return None
        event_kinds(c)
        ring_size(c)
    except (ValueError, KeyError, TypeError, ParamError):
        return None
    return c


def timestamp(wall: float) -> str:
    """conntrack's ``[%-.8ld.%-.6ld]\\t`` prefix."""
    sec, usec = divmod(round(wall * 1e6), 1_000_000)
    return f"[{sec:08d}.{usec:06d}]\t"


@dataclass(eq=False)
class Subscriber:
    conn: socket.socket
    cmd: Command
    kinds: frozenset[str]
    ring: deque[str]
    lost: int = 0
    out: bytes = field(default=ACK)
    expect: bool = False


class EventHub:
    """The subscribers of one worker's table."""

    def __init__(self, tracker: Callable[[], Tracker],
                 wall: Callable[[], float] = time.time) -> None:
        self.tracker = tracker
        self.wall = wall
        self.subs: list[Subscriber] = []
        self.lost_total = 0                  # events lost over all subscribers
        self._hooked: Tracker | None = None
        # the portid of the client whose control command is running (its events carry
        # conntrack's "[USERSPACE] portid=N"); None while packets cause the events
        self.origin: int | None = None

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, conn: socket.socket, c: Command) -> None:
        conn.setblocking(False)
        self.subs.append(Subscriber(conn, c, event_kinds(c), deque(maxlen=ring_size(c)),
                                    expect=c.table == "expect"))
        self._hook()
        self.flush()

    def _hook(self) -> None:
        """Listen to the tracker's events (conntrack/ecache.py) only while subscribed."""
        tr = self.tracker() if self.subs else None
        if tr is self._hooked:
            return
        if self._hooked is not None:
            notifier(self._hooked).remove(self._on_event, self._on_expect)
        if tr is not None:
            notifier(tr).add(self._on_event, self._on_expect)
        self._hooked = tr

    def _drop(self, s: Subscriber) -> None:
        self.subs.remove(s)
        try:
            s.conn.close()
        except OSError:
            pass
        self._hook()

    def close(self) -> None:
        for s in list(self.subs):
            self._drop(s)

    @property
    def backlog(self) -> bool:
        """Something is waiting to be written (the caller should come back soon)."""
        return any(s.out or s.ring or s.lost for s in self.subs)

    # -- the sinks (called from the packet path: append only) ---------------------------
    @staticmethod
    def _push(s: Subscriber, line: str) -> None:
        if s.ring.maxlen is not None and len(s.ring) >= s.ring.maxlen:
            s.lost += 1                      # the deque drops the oldest line
        s.ring.append(line)

    def _on_event(self, now: float, bits: int, ct: Conn) -> None:
        kind = event_kind(bits)
        base: str | None = None
        stamp = ""
        wall = 0.0
        tail = render.userspace(self.origin)
        tr: Tracker | None = None
        for s in self.subs:
            if s.expect or kind not in s.kinds or not ops.matches(ct, s.cmd):
                continue
            if base is None or tr is None:
                tr = self.tracker()
                base = event_line(bits, ct, now, tr.l4[ct.proto],
                                  bool(tr.settings.nf_conntrack_acct))
                wall = self.wall()
                stamp = timestamp(wall)
            out = s.cmd.output
            ts = bool(tr.settings.nf_conntrack_timestamp)
            if "xml" in out:
                line = render.xml_flow(ct, now, tr.l4[ct.proto], kind, True, ts,
                                       "ktimestamp" in out, wall - now,
                                       wall if "timestamp" in out else None, bits,
                                       bool(tr.settings.nf_conntrack_acct)) + tail
                self._push(s, line)
                continue
            line = base
            if "extended" in out:
                l3 = "ipv4" if ct.l3num == 2 else "ipv6"
                line = f"{line[:10]}{l3:<8} {ct.l3num} {line[10:]}"
            if ts and kind == "[DESTROY]":       # the timestamp extension's stop time
                line += render.timestamp_text(ct, now, wall - now, True, "ktimestamp" in out)
            if "id" in out:
                line += f" id={ct.id}"
            if "timestamp" in out:
                line = stamp + line
            self._push(s, line + tail)

    def _on_expect(self, now: float, bits: int, exp: Expectation) -> None:
        line: str | None = None
        for s in self.subs:
            if not s.expect:
                continue
            if line is None:
                line = expect_event_line(bits, exp, now)
            if line[:9].strip() not in s.kinds:
                continue
            self._push(s, (timestamp(self.wall()) if "timestamp" in s.cmd.output else "")
                       + line)

    # -- writing (the worker's loop) ----------------------------------------------------
    def flush(self) -> None:
        """Write what each subscriber can take now; drop the ones that went away."""
        for s in list(self.subs):
            try:
                if not s.out and not s.ring and not s.lost:
                    # nothing to send: notice a client that hung up
                    if s.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        self._drop(s)
                    continue
                while True:
                    if not s.out:
                        parts = []
                        if s.lost:
                            self.lost_total += s.lost
                            parts.append(f"{LOST}{s.lost}")
                            s.lost = 0
                        while s.ring and len(parts) < MAX_CHUNK:
                            parts.append(s.ring.popleft())
                        if not parts:
                            break
                        s.out = ("\n".join(parts) + "\n").encode()
                    n = s.conn.send(s.out, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
                    s.out = s.out[n:]
                    if s.out:
                        break
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                self._drop(s)
