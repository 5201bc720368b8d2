"""What the user has chosen in ``statewall top``, and what each key does to it.

Owns: the view state (sort column and direction, filter text and its prompt, pause,
scroll position, totals/colour/help toggles) and the key bindings, as a pure function of
key names (curses' ``keyname`` for special keys). Must not know: curses, the daemon.
Keys follow iptstate where it has one: ``b`` next sort column (``B`` here reverses, as
does iptstate's ``r``), ``q`` quit, space refresh, ``t`` totals, ``c`` colour, ``h`` help,
Ctrl-L redraw, Ctrl-G cancels a prompt; plus ``f`` filter and ``p`` pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .model import COLUMNS, next_column

QUIT: Final = "quit"
REFRESH: Final = "refresh"
REDRAW: Final = "redraw"
MAX_FILTER: Final = 200

_BACKSPACE: Final = frozenset({"KEY_BACKSPACE", "\x7f", "\x08", "^?", "^H"})
_ENTER: Final = frozenset({"\n", "\r", "KEY_ENTER", "^J", "^M"})
_CANCEL: Final = frozenset({"\x1b", "\x07", "^[", "^G"})


# escape sequences that reach the program undecoded when $TERM does not describe the
# terminal (xterm inside tmux, screen over ssh): the usual VT100/xterm/rxvt/linux forms
ESCAPES: Final[dict[str, str]] = {
    **{p + c: k for p in ("[", "O") for c, k in (("A", "KEY_UP"), ("B", "KEY_DOWN"),
                                                  ("C", "KEY_RIGHT"), ("D", "KEY_LEFT"),
                                                  ("H", "KEY_HOME"), ("F", "KEY_END"))},
    "[1~": "KEY_HOME", "[7~": "KEY_HOME", "[4~": "KEY_END", "[8~": "KEY_END",
    "[5~": "KEY_PPAGE", "[6~": "KEY_NPAGE", "[2~": "KEY_IC", "[3~": "KEY_DC",
}


def escape_key(seq: str) -> str:
    """The key name of what followed an Esc (``""``: a lone Esc, which cancels a prompt;
    an unknown sequence: nothing)."""
    if not seq:
        return "\x1b"
    return ESCAPES.get(seq, "")


@dataclass
class View:
    sort: str = "src"
    reverse: bool = False
    filter: str = ""
    prompt: str | None = None       # the filter being typed, or None
    paused: bool = False
    top: int = 0                    # first row shown
    page: int = 20                  # rows that fit (set by the screen)
    totals: bool = True
    color: bool = True
    help: bool = False

    def press(self, key: str) -> str | None:
        """Apply one key; QUIT / REFRESH (fetch now) / REDRAW (repaint all) / None."""
        if self.prompt is not None:
            return self._prompt_key(key)
        if self.help and key not in ("q", "Q"):
            self.help = False
            return None
        if key in ("q", "Q"):
            return QUIT
        if key == "b":
            self.sort = next_column(self.sort)
        elif key == "B" or key == "r":
            self.reverse = not self.reverse
        elif key == "<":
            self.sort = next_column(self.sort, -1)
        elif key == "f" or key == "/":
            self.prompt = self.filter
        elif key == "p":
            self.paused = not self.paused
            return None if self.paused else REFRESH
        elif key == " ":
            return REFRESH
        elif key == "t":
            self.totals = not self.totals
        elif key == "c":
            self.color = not self.color
        elif key in ("h", "?"):
            self.help = True
        elif key in ("\x0c", "^L", "KEY_RESIZE"):
            return REDRAW
        elif key in ("KEY_UP", "k"):
            self.top -= 1
        elif key in ("KEY_DOWN", "j"):
            self.top += 1
        elif key in ("KEY_PPAGE", "\x15", "^U"):
            self.top -= max(1, self.page)
        elif key in ("KEY_NPAGE", "\x04", "^D"):
            self.top += max(1, self.page)
        elif key in ("KEY_HOME", "g"):
            self.top = 0
        elif key in ("KEY_END", "G"):
            self.top = 1 << 30                   # clamped when drawn
        return None

    def _prompt_key(self, key: str) -> str | None:
        assert self.prompt is not None
        if key in _ENTER:
            self.filter = self.prompt.strip()
            self.prompt = None
            self.top = 0
        elif key in _CANCEL:
            self.prompt = None
        elif key in _BACKSPACE:
            self.prompt = self.prompt[:-1]
        elif key == "KEY_RESIZE":
            return REDRAW
        elif len(key) == 1 and key.isprintable() and len(self.prompt) < MAX_FILTER:
            self.prompt += key
        return None

    def clamp(self, n: int) -> None:
        """Keep the scroll position inside ``n`` rows."""
        self.top = max(0, min(self.top, n - self.page))

    def set_sort(self, column: str) -> None:
        if column not in COLUMNS:
            raise ValueError(f"unknown sort column {column!r}")
        self.sort = column
