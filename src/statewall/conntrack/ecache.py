"""Several consumers of one tracker's events (the kernel's nf_conntrack_ecache notifier).

Owns: the lists of conntrack and expectation listeners of one ``Tracker`` and what is
installed as its ``sink`` / ``expect_sink``: nothing when nobody listens (no cost on the
packet path), the listener itself when there is one, a fan-out when there are several.
Consumers (``conntrack -E`` subscribers, flow records, metrics) add and remove themselves
here instead of setting ``Tracker.sink`` directly, so they do not displace each other.
Must not know: what a consumer does with an event.
"""

from __future__ import annotations

from typing import Any, Callable

from .conn import Conn
from .core import EventSink, Tracker
from .expect import ExpectSink


def _fan(fns: list[Callable[..., None]]) -> Callable[..., None]:
    def fan(now: float, bits: int, obj: Any) -> None:
        for fn in fns:
            fn(now, bits, obj)
    return fan


class Notifier:
    """The listeners of one tracker. ``attach(tracker)`` moves them to another tracker."""

    def __init__(self, tracker: Tracker | None = None) -> None:
        self.tracker = tracker
        self.ct: list[EventSink] = []
        self.exp: list[ExpectSink] = []
        self._install()

    def add(self, ct: EventSink | None = None, exp: ExpectSink | None = None) -> None:
        if ct is not None and ct not in self.ct:
            self.ct.append(ct)
        if exp is not None and exp not in self.exp:
            self.exp.append(exp)
        self._install()

    def remove(self, ct: EventSink | None = None, exp: ExpectSink | None = None) -> None:
        if ct is not None and ct in self.ct:
            self.ct.remove(ct)
        if exp is not None and exp in self.exp:
            self.exp.remove(exp)
        self._install()

    def attach(self, tracker: Tracker | None) -> None:
        if tracker is self.tracker:
            return
        if self.tracker is not None:
            self.tracker.sink = None
            self.tracker.expect_sink = None
        self.tracker = tracker
        self._install()

    def _install(self) -> None:
        tr = self.tracker
        if tr is None:
            return
        cts = list(self.ct)
        exps = list(self.exp)
        tr.sink = None if not cts else cts[0] if len(cts) == 1 else _fan(cts)
        tr.expect_sink = None if not exps else exps[0] if len(exps) == 1 else _fan(exps)


def notifier(tracker: Tracker) -> Notifier:
    """The tracker's notifier (created on first use, kept with the tracker)."""
    n = tracker.notifier
    if n is None:
        n = tracker.notifier = Notifier(tracker)
    assert isinstance(n, Notifier)
    return n


__all__ = ["Notifier", "notifier", "Conn"]
