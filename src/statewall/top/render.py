"""The text of a ``statewall top`` screen: column layout, cell formats, the whole screen.

Owns: column widths for a terminal width (addresses share what the fixed columns leave;
narrow terminals drop Pkts, then Bytes, then TTL), number formats (1.2K, TTL as H:MM:SS as
iptstate prints it), and the lines of one screen with a style per line (title, totals,
header, rows with their highlight bits, status line), for curses and for ``--once`` alike.
Pure: the clock text and the terminal size are parameters. Must not know: curses, sockets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .model import CLOSING, COLUMNS, NEW, TITLES, Row, Totals
from .view import View

# line styles (row lines carry the model's NEW / CLOSING bits)
TITLE: Final = 1 << 4
TOTALS: Final = 1 << 5
HEADER: Final = 1 << 6
STATUS: Final = 1 << 7
ERROR: Final = 1 << 8
Line = tuple[str, int]

FIXED: Final[dict[str, int]] = {"proto": 6, "state": 11, "ttl": 9, "packets": 6, "bytes": 5,
                                "rate": 5}
RIGHT: Final = frozenset({"ttl", "packets", "bytes", "rate"})
DROP_ORDER: Final = ("packets", "bytes", "ttl")
MIN_ADDR: Final = 15
PREF_ADDR: Final = 18         # "198.51.100.2:40000": below it, drop a column first
MAX_ADDR: Final = 47          # "[ffff:...:ffff]:65535"
HEADER_LINES: Final = 4       # title, totals, TCP states, column titles
KEYS_HELP: Final = "b:sort B:reverse f:filter p:pause space:refresh h:help q:quit"


def layout(width: int) -> list[tuple[str, int]]:
    """(column, width) for a terminal ``width`` columns wide (one blank between columns)."""
    cols = list(COLUMNS)
    drop = list(DROP_ORDER)
    while True:
        fixed = sum(FIXED[c] for c in cols if c in FIXED) + len(cols) - 1
        room = width - fixed
        if room >= 2 * PREF_ADDR or not drop:
            break
        cols.remove(drop.pop(0))
    a = min(MAX_ADDR, max(MIN_ADDR, room // 2))
    return [(c, a if c in ("src", "dst") else FIXED[c]) for c in cols]


def human(n: float) -> str:
    """1234 -> "1234", 12345 -> "12.1K", 1234567 -> "1.2M" (powers of 1024)."""
    if n < 10000:
        return str(int(n)) if n == int(n) or n >= 10 else f"{n:.1f}"
    for unit in "KMGTP":
        n /= 1024
        if n < 1000 or unit == "P":
            return f"{n:.1f}{unit}" if n < 99.95 else f"{int(n)}{unit}"
    raise AssertionError("unreachable")


def ttl_text(s: int) -> str:
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def fit_endpoint(text: str, w: int) -> str:
    """Shorten ``addr:port`` to ``w`` keeping the port (a ``+`` marks the cut)."""
    if len(text) <= w:
        return text
    head, sep, port = text.rpartition(":")
    if sep and port.isdigit() and len(port) + 2 < w and (head.endswith("]") or
                                                          head.count(":") == 0):
        return head[:w - len(port) - 2] + "+:" + port
    return text[:w - 1] + "+"


def cell(row: Row, col: str) -> str:
    if col in ("src", "dst"):
        return row.endpoint(col)
    if col == "proto":
        return row.proto
    if col == "state":
        return row.state
    if col == "ttl":
        return ttl_text(row.ttl)
    if col == "packets":
        return human(row.packets)
    if col == "bytes":
        return human(row.bytes)
    if col == "rate":
        return "-" if row.rate is None else human(row.rate)
    raise ValueError(f"unknown column {col!r}")


def _join(cells: Sequence[tuple[str, str, int]]) -> str:
    out = []
    for col, text, w in cells:
        if col in ("src", "dst"):
            text = fit_endpoint(text, w)
        else:
            text = text[:w]
        out.append(text.rjust(w) if col in RIGHT else text.ljust(w))
    return " ".join(out).rstrip()


def row_text(row: Row, lay: Sequence[tuple[str, int]]) -> str:
    return _join([(c, cell(row, c), w) for c, w in lay])


def header_text(lay: Sequence[tuple[str, int]], sort: str, reverse: bool) -> str:
    cells = []
    for c, w in lay:
        t = TITLES[c]
        if c == sort:
            t += "v" if reverse else "^"
        cells.append((c if c not in ("src", "dst") else "title", t, w))
    return _join(cells)


def totals_lines(t: Totals) -> list[str]:
    """iptstate's totals line, then the TCP states and the rates."""
    bp = t.by_proto
    first = (f"Total States: {t.entries} -- TCP: {bp['tcp']} UDP: {bp['udp']} "
             f"ICMP: {bp['icmp']} Other: {bp['other']} (Filtered: {t.filtered})")
    states = " ".join(f"{k} {v}" for k, v in t.tcp_states.items()) or "-"
    rate = "-" if t.rate is None else f"{human(t.rate)}B/s {human(t.prate or 0)}pkt/s"
    second = f"Rate: {rate}  New: {t.new}  Closing: {t.closing}  TCP: {states}"
    return [first, second]


def title_text(view: View, clock: str, delay: float | None, width: int) -> str:
    """Name, filter, sort order, refresh interval (None: a single run), clock."""
    left = "statewall top"
    every = "once" if delay is None else f"every {delay:.3g}s"
    right = (f"sort: {TITLES[view.sort]} {'desc' if view.reverse else 'asc'}  "
             f"{'PAUSED' if view.paused else every}  {clock}")
    if view.filter:
        left += f"  filter: {view.filter}"
    pad = width - len(left) - len(right)
    return (left + " " * max(1, pad) + right)[:width]


HELP: Final = """statewall top: the conntrack table of a running 'statewall run'

  b  <     sort by the next / previous column
           (Source Destination Proto State TTL Pkts Bytes B/s)
  B  r     reverse the sort order
  f  /     filter: words that must all appear (address, addr:port, :port,
           proto, state; !word must not appear); empty clears; Esc cancels
  p        pause / resume refreshing
  space    refresh now
  t  c     totals on / off, colour on / off
  arrows j k, PgUp PgDn (Ctrl-U Ctrl-D), Home End (g G): scroll
  Ctrl-L   redraw
  q        quit

Bold (green) = NEW since the previous refresh; red (dim without colour) =
TCP FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE.  Any key returns."""


def screen(view: View, rows: Sequence[Row], tot: Totals, width: int, height: int,
           clock: str = "", delay: float = 1.0, message: str = "") -> list[Line]:
    """Every line of the screen, at most ``height`` lines of at most ``width`` characters.
    Sets ``view.page`` to the rows that fit and clamps ``view.top``."""
    width = max(1, width)
    height = max(1, height)
    out: list[Line] = [(title_text(view, clock, delay, width), TITLE)]
    if view.help:
        out += [(ln[:width], 0) for ln in HELP.splitlines()]
        return out[:max(1, height)]
    if view.totals:
        out += [(ln[:width], TOTALS) for ln in totals_lines(tot)]
    lay = layout(width)
    out.append((header_text(lay, view.sort, view.reverse)[:width], HEADER))
    view.page = max(1, height - len(out) - 1)
    view.clamp(len(rows))
    for r in rows[view.top:view.top + view.page]:
        out.append((row_text(r, lay)[:width], r.marks & (NEW | CLOSING)))
    if view.prompt is not None:
        status, style = f"Filter: {view.prompt}", STATUS
    elif message:
        status, style = message, ERROR
    else:
        last = min(len(rows), view.top + view.page)
        where = f"{view.top + 1}-{last} of {len(rows)}" if rows else "no entries"
        status, style = f"{where}  {KEYS_HELP}", STATUS
    while len(out) < height - 1:
        out.append(("", 0))
    out = out[:max(0, height - 1)]
    out.append((status[:width - 1], style))
    return out


def once(rows: Sequence[Row], tot: Totals, width: int, sort: str = "src",
         reverse: bool = False, clock: str = "", show_totals: bool = True,
         filter: str = "") -> list[str]:
    """``--once``: the title, totals, header and every row (no height limit)."""
    v = View(sort=sort, reverse=reverse, totals=show_totals, filter=filter)
    lines = [title_text(v, clock, None, width)]
    if show_totals:
        lines += [ln[:width] for ln in totals_lines(tot)]
    lay = layout(width)
    lines.append(header_text(lay, sort, reverse))
    lines += [row_text(r, lay) for r in rows]
    return lines
