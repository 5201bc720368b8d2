"""The ``string`` match: a pattern in the packet's bytes (``xt_string``).

Owns: the options (``--algo``, ``--string`` / ``--hex-string`` with iptables' hex blocks and
escapes, ``--from`` / ``--to``, ``--icase``), the save and ``-L`` texts, the kernel's
checks and the search. Follows iptables extensions/libxt_string.c and the kernel's
net/netfilter/xt_string.c: ``skb_find_text`` searches the packet from the network header
(``skb->data`` at every hook), offsets ``[from, to)``, and the whole pattern must lie before
``to``; ``bm`` and ``kmp`` find the same matches in a linear packet (the kernel's Boyer-Moore
can miss a match that spans two fragments of a non-linear skb; statewall sees every packet
as one buffer). ``--icase`` compares through the kernel's ``toupper``, which also folds
Latin-1 letters (lib/ctype.c). Depends on the payload: never flow-stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import OptionError
from ..numbers import U16, uint
from .base import ARG_NONE, Env, KernelCtx, MatchExt, Opt, Pred, RuleCtx, Seen

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..context import Context

PATTERN_MAX: Final = 128            # XT_STRING_MAX_PATTERN_SIZE
ALGO_MAX: Final = 16                # XT_STRING_MAX_ALGO_NAME_SIZE (with the NUL)
ALGOS: Final = ("bm", "kmp")        # textsearch algorithms that take a plain pattern

# the kernel's toupper: ASCII and the Latin-1 lower-case letters (lib/ctype.c _L)
_LOWER: Final = frozenset([*range(0x61, 0x7B), *range(0xDF, 0xF7), *range(0xF8, 0x100)])
UPPER: Final = bytes(c - 0x20 if c in _LOWER else c for c in range(256))


@dataclass(frozen=True, slots=True)
class StringInfo:
    pattern: bytes
    algo: str
    from_offset: int = 0
    to_offset: int = U16
    icase: bool = False
    invert: bool = False


def parse_hex_string(s: str) -> bytes:
    """``--hex-string``: text with ``|41 42|`` hex blocks and ``\\`` escaping one character
    outside them (libxt_string's parse_hex_string)."""
    raw = s.encode("utf-8", "surrogateescape")
    if not raw:
        raise OptionError("STRING must contain at least one char")
    out = bytearray()
    i, n, hexmode = 0, len(raw), False
    while i < n:
        if len(out) >= PATTERN_MAX:
            raise OptionError(f'STRING too long "{s}"')
        c = raw[i]
        literal = False
        if c == 0x5C and not hexmode:                      # "\"
            literal = True
        elif c == 0x5C:
            raise OptionError("Cannot include literals in hex data")
        elif c == 0x7C:                                    # "|"
            hexmode = not hexmode
            if hexmode:
                while i + 1 < n and raw[i + 1] == 0x20:
                    i += 1
            if i + 1 >= n:
                break
            i += 1
        if literal:
            if i + 1 >= n:
                raise OptionError("Bad literal placement at end of string")
            out.append(raw[i + 1])
            i += 2
        elif hexmode:
            if i + 1 >= n:
                raise OptionError("Odd number of hex digits")
            if i + 2 >= n:
                raise OptionError("Invalid hex block")
            pair = raw[i:i + 2]
            for ch in pair:
                if chr(ch) not in "0123456789abcdefABCDEF":
                    raise OptionError(f"Invalid hex char '{chr(ch)}'")
            out.append(int(pair, 16))
            i += 3 if raw[i + 2] == 0x20 else 2
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def _printable(b: int) -> bool:
    return 0x20 <= b < 0x7F


def _is_hex(p: bytes) -> bool:
    """Saved as a hex block: a non-printable byte, or a trailing backslash."""
    return any(not _printable(b) for b in p) or (bool(p) and p[-1] == 0x5C)


def pattern_text(p: bytes) -> str:
    """`` "|0a0b|"`` or `` "te\\"st"`` as libxt_string prints a pattern."""
    if _is_hex(p):
        return ' "|' + p.hex() + '|"'
    body = "".join("\\" + chr(b) if b in (0x22, 0x5C) else chr(b) for b in p)
    return f' "{body}"'


class String(MatchExt):
    name = "string"
    options = (Opt("from"), Opt("to"), Opt("algo", mand=True), Opt("icase", arg=ARG_NONE),
               Opt("string", invert=True, excl=("hex-string",)),
               Opt("hex-string", invert=True, excl=("string",)))

    def build(self, seen: Seen, rc: RuleCtx) -> StringInfo:
        g = seen.get("string") or seen.get("hex-string")
        if g is None:
            raise OptionError("STRING match: You must specify `--string' or `--hex-string'")
        if g.opt.name == "string":
            pattern = g.arg.encode("utf-8", "surrogateescape")
            if len(pattern) > PATTERN_MAX:
                raise OptionError(f'STRING too long "{g.arg}"')
        else:
            pattern = parse_hex_string(g.arg)
        algo = seen.arg("algo")
        return StringInfo(
            pattern, algo[:ALGO_MAX - 1],
            uint(seen.arg("from", "0"), 0, U16, "string --from"),
            uint(seen.arg("to", str(U16)), 0, U16, "string --to"),
            "icase" in seen, g.inv)

    def save(self, i: StringInfo, family: int) -> str:
        kind = "--hex-string" if _is_hex(i.pattern) else "--string"
        s = f"{' !' if i.invert else ''} {kind}{pattern_text(i.pattern)} --algo {i.algo}"
        if i.from_offset:
            s += f" --from {i.from_offset}"
        if i.to_offset != U16:
            s += f" --to {i.to_offset}"
        return s + (" --icase" if i.icase else "")

    def show(self, i: StringInfo, family: int) -> str:
        s = f" STRING match {'!' if i.invert else ''}{pattern_text(i.pattern)} ALGO name {i.algo}"
        if i.from_offset:
            s += f" FROM {i.from_offset}"
        if i.to_offset != U16:
            s += f" TO {i.to_offset}"
        return s + (" ICASE" if i.icase else "")

    def check(self, i: StringInfo, kc: KernelCtx) -> None:
        # string_mt_check (EINVAL), then textsearch_prepare (ENOENT: no such module; fsm
        # takes token tables, not a plain pattern: EINVAL)
        if i.from_offset > i.to_offset:
            raise OptionError(f"string: --from {i.from_offset} is after --to {i.to_offset} "
                              "(Invalid argument)")
        if not i.pattern:
            raise OptionError("string: the pattern is empty (Invalid argument)")
        if i.algo == "fsm":
            raise OptionError("string: --algo fsm takes no plain pattern (Invalid argument)")
        if i.algo not in ALGOS:
            raise OptionError(f"string: no search algorithm `{i.algo}' (bm, kmp: No "
                              "chain/target/match by that name)")

    def compile(self, i: StringInfo, env: Env) -> Pred:
        lo, hi, inv = i.from_offset, i.to_offset, i.invert
        if i.icase:
            pat = i.pattern.translate(UPPER)

            def string_icase(pkt: Packet, ctx: Context) -> bool:
                return (pkt.buf[lo:hi].translate(UPPER).find(pat) >= 0) != inv
            return string_icase
        pattern = i.pattern

        def string(pkt: Packet, ctx: Context) -> bool:
            return (pkt.buf.find(pattern, lo, hi) >= 0) != inv
        return string


STRING: Final = String()
