"""The curses front of ``statewall top``: refresh loop, keys, resize, colours.

Owns: fetching a snapshot every refresh interval (stretched to at least ``COST_FACTOR``
times what the last fetch took, so a huge table never keeps a worker busy answering), the
rates between refreshes (model.update), painting render.screen's lines with attributes
(bold green NEW, red closing, reverse-video header and status line; bold/dim without
colours) and turning curses keys into ``View.press`` names. Works on any terminfo
terminal (xterm, screen, tmux), 80x24 and up, over ssh; a resize repaints.
Must not know: the daemon's wire format (fetch.py), the columns (render.py).
"""

from __future__ import annotations

import curses
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from .model import CLOSING, NEW, Row, Snapshot, filter_rows, sort_rows, totals, update
from .render import ERROR, HEADER, STATUS, TITLE, screen
from .view import QUIT, REDRAW, REFRESH, View, escape_key

Fetcher = Callable[[], tuple[list[Row], int]]
COST_FACTOR: Final = 4
TICK_MS: Final = 100


def keyname(k: Any) -> str:
    """A key from ``get_wch`` as View.press wants it: characters as they are, special keys
    by curses' name (KEY_UP, KEY_NPAGE, KEY_RESIZE, ...)."""
    if isinstance(k, str):
        return k
    try:
        return curses.keyname(k).decode(errors="replace")
    except (ValueError, curses.error):
        return ""


class Top:
    def __init__(self, scr: Any, fetcher: Fetcher, view: View, delay: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.scr = scr
        self.fetcher = fetcher
        self.view = view
        self.delay = delay
        self.interval = delay
        self.clock = clock
        self.prev: Snapshot | None = None
        self.message = ""
        self.next_at = 0.0
        self.job: threading.Thread | None = None
        self.done: queue.SimpleQueue[tuple[float, float, Any]] = queue.SimpleQueue()
        self.mono: dict[int, int] = {}
        self.colour: dict[int, int] = {}

    def _colours(self) -> None:
        """Attributes per line style: ``mono`` (bold NEW, dim closing) and, when the
        terminal has colours, ``colour`` (bold green NEW, red closing)."""
        m = self.mono
        m[TITLE] = curses.A_BOLD
        m[HEADER] = m[STATUS] = curses.A_REVERSE
        m[NEW] = curses.A_BOLD
        m[CLOSING] = curses.A_DIM
        m[NEW | CLOSING] = curses.A_BOLD | curses.A_DIM
        m[ERROR] = curses.A_BOLD | curses.A_REVERSE
        self.colour = dict(m)
        if not curses.has_colors():
            return
        try:
            curses.start_color()
            try:
                curses.use_default_colors()
                bg = -1
            except curses.error:
                bg = curses.COLOR_BLACK
            curses.init_pair(1, curses.COLOR_GREEN, bg)
            curses.init_pair(2, curses.COLOR_RED, bg)
        except curses.error:
            return
        c = self.colour
        c[NEW] = curses.A_BOLD | curses.color_pair(1)
        c[CLOSING] = curses.color_pair(2)
        c[NEW | CLOSING] = curses.A_BOLD | curses.color_pair(2)
        c[ERROR] = curses.A_BOLD | curses.color_pair(2)

    def _fetch(self) -> None:
        """The fetch thread's body: one snapshot (or the error) into ``self.done``."""
        t0 = self.clock()
        try:
            rows, total = self.fetcher()
        except Exception as e:                 # fetch.FetchError and friends: shown, retried
            self.done.put((t0, self.clock(), e))
            return
        self.done.put((t0, self.clock(), (rows, total)))

    def poll_fetch(self, now: float) -> bool:
        """Start a fetch when one is due, take in a finished one; True when the screen
        changed. Fetching runs in a thread, so keys work while a big table comes in."""
        changed = False
        try:
            t0, t1, got = self.done.get_nowait()
        except queue.Empty:
            pass
        else:
            self.job = None
            changed = True
            if isinstance(got, Exception):
                self.message = f"{got}"
                self.next_at = t1 + self.delay
            else:
                rows, total = got
                self.message = ""
                self.prev = update(self.prev, Snapshot((t0 + t1) / 2, rows, total))
                self.interval = max(self.delay, COST_FACTOR * (t1 - t0))
                self.next_at = t1 + self.interval
        if self.job is None and not self.view.paused and now >= self.next_at:
            self.job = threading.Thread(target=self._fetch, daemon=True)
            self.job.start()
        return changed

    def draw(self) -> None:
        scr = self.scr
        h, w = scr.getmaxyx()
        v = self.view
        snap = self.prev
        rows = snap.rows if snap is not None else []
        typed = v.prompt if v.prompt is not None else v.filter     # filters as one types
        shown = sort_rows(filter_rows(rows, typed), v.sort, v.reverse)
        tot = totals(shown, snap.total if snap is not None else 0)
        msg = self.message or ("" if snap is not None else "waiting for the first snapshot")
        # one column spare: curses cannot write the bottom-right cell without scrolling
        lines = screen(v, shown, tot, w - 1, h, time.strftime("%H:%M:%S"), self.interval, msg)
        scr.erase()
        attrs = self.colour if v.color else self.mono
        for y, (text, style) in enumerate(lines):
            attr = attrs.get(style, 0)
            if style in (HEADER, STATUS, ERROR):
                text = text.ljust(w - 1)
            try:
                scr.addnstr(y, 0, text, max(0, w - 1), attr)
            except curses.error:
                pass
        if v.prompt is not None:
            try:
                curses.curs_set(1)
                scr.move(len(lines) - 1, min(w - 2, len("Filter: ") + len(v.prompt)))
            except curses.error:
                pass
        else:
            try:
                curses.curs_set(0)
            except curses.error:
                pass
        scr.noutrefresh()
        curses.doupdate()

    def _escape_tail(self) -> str:
        """What follows an Esc that curses did not decode (up to 6 characters at once)."""
        scr = self.scr
        scr.nodelay(True)
        seq = ""
        try:
            while len(seq) < 6:
                try:
                    k = scr.get_wch()
                except curses.error:
                    break
                if not isinstance(k, str):
                    break
                seq += k
                if seq[-1].isalpha() or seq[-1] == "~":
                    break
        finally:
            scr.timeout(TICK_MS)
        return seq

    def run(self) -> int:
        scr = self.scr
        scr.keypad(True)
        scr.timeout(TICK_MS)
        self._colours()
        dirty = True
        while True:
            if self.poll_fetch(self.clock()):
                dirty = True
            if dirty:
                self.draw()
                dirty = False
            try:
                k = scr.get_wch()
            except curses.error:
                continue                       # no key within the tick
            name = keyname(k)
            if name == "\x1b":
                name = escape_key(self._escape_tail())
            if name == "KEY_RESIZE":
                curses.update_lines_cols()
            act = self.view.press(name)
            if act == QUIT:
                return 0
            if act == REFRESH:
                self.next_at = 0.0
            if act == REDRAW:
                scr.clear()
            dirty = True


def run(fetcher: Fetcher, view: View, delay: float) -> int:
    """Take over the terminal until ``q``; 0 on a normal quit."""
    os.environ.setdefault("ESCDELAY", "25")
    for var in ("LINES", "COLUMNS"):   # the terminal's own size (and its resizes), not
        os.environ.pop(var, None)      # a size exported by a shell or a test runner
    rc: int = curses.wrapper(lambda scr: Top(scr, fetcher, view, delay).run())
    return rc
