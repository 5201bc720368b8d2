"""One rule line -> one command, the way iptables' ``do_parse`` reads its arguments.

Owns: the getopt_long emulation (long options with ``=value`` or the next word,
unambiguous abbreviations, short options with attached values, ``!`` before an option),
the generic options (-A -I -D -R -N -X -F -Z -P -E, -p -s -d -i -o -f -j -g -m -c -4 -6),
extension loading with ``-m`` and the implicit protocol match (``-p tcp --dport 80`` loads
the tcp match, once), routing each extension option to the extension instance that owns
it (libxtables: a later ``-m X`` completes earlier X instances; the target's options win),
and building the rule's generic part. Must not know: what the extensions' options mean
(each extension builds its own info), tables and chains (``parse.py``).

Follows iptables/xshared.c ``do_parse``, ``command_default``, ``command_match``,
``command_jump``, ``ipv4_post_parse`` / ``ipv6_post_parse``; libxtables
``xtables_parse_protocol``, ``xtables_find_match``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Final

from . import ext as registry
from .addr import parse_multiple
from .errors import OptionError
from .ext.base import ARG_NONE, ARG_OPT, ARG_REQ, Ext, MatchExt, Opt, RuleCtx, Seen, TargetExt
from .model import (INV_DSTIP, INV_FRAG, INV_PROTO, INV_SRCIP, INV_VIA_IN, INV_VIA_OUT,
                    VERDICTS, IpSpec, Match, Target)
from .netdb import proto_name, proto_number
from .numbers import U8, try_uint

# iptables' original_opts: (long name, has_arg, short letter)
GENERIC_LONG: Final = (
    ("append", 1, "A"), ("delete", 1, "D"), ("check", 1, "C"), ("insert", 1, "I"),
    ("replace", 1, "R"), ("list", 2, "L"), ("list-rules", 2, "S"), ("flush", 2, "F"),
    ("zero", 2, "Z"), ("new-chain", 1, "N"), ("delete-chain", 2, "X"),
    ("rename-chain", 1, "E"), ("policy", 1, "P"), ("source", 1, "s"),
    ("destination", 1, "d"), ("src", 1, "s"), ("dst", 1, "d"), ("protocol", 1, "p"),
    ("in-interface", 1, "i"), ("jump", 1, "j"), ("table", 1, "t"), ("match", 1, "m"),
    ("numeric", 0, "n"), ("out-interface", 1, "o"), ("verbose", 0, "v"), ("wait", 2, "w"),
    ("wait-interval", 2, "W"), ("exact", 0, "x"), ("fragments", 0, "f"),
    ("version", 0, "V"), ("help", 2, "h"), ("line-numbers", 0, "0"), ("modprobe", 1, "M"),
    ("set-counters", 1, "c"), ("goto", 1, "g"), ("ipv4", 0, "4"), ("ipv6", 0, "6"),
)
# IPT_OPTSTRING "-:A:C:D:R:I:L::S::M:F::Z::N:X::E:P:Vh::o:p:s:d:j:i:fbvw::W::nt:m:xc:g:46"
SHORT: Final = {"A": 1, "C": 1, "D": 1, "R": 1, "I": 1, "L": 2, "S": 2, "M": 1, "F": 2,
                "Z": 2, "N": 1, "X": 2, "E": 1, "P": 1, "V": 0, "h": 2, "o": 1, "p": 1,
                "s": 1, "d": 1, "j": 1, "i": 1, "f": 0, "b": 0, "v": 0, "w": 2, "W": 2,
                "n": 0, "t": 1, "m": 1, "x": 0, "c": 1, "g": 1, "4": 0, "6": 0}
_LETTER_NAME: Final = {"s": "--source", "d": "--destination", "p": "--protocol",
                       "i": "--in-interface", "o": "--out-interface", "f": "--fragments",
                       "j": "--jump", "c": "--set-counters", "v": "--verbose",
                       "n": "--numeric", "x": "--exact", "0": "--line-numbers"}
_INVERTIBLE: Final = {"s": INV_SRCIP, "d": INV_DSTIP, "p": INV_PROTO, "i": INV_VIA_IN,
                      "o": INV_VIA_OUT, "f": INV_FRAG}
RULE_COMMANDS: Final = ("A", "I", "D", "R", "C")
IFNAMSIZ: Final = 16
CHAIN_MAX: Final = 28            # XT_EXTENSION_MAXNAMELEN - 1


@dataclass
class _Inst:
    ext: Ext
    seen: Seen
    completed: bool = False


@dataclass
class Command:
    """A parsed line: ``cmd`` is the command letter (A I D R N X F Z P E) or "" for a line
    ignored by this family (``-4`` in ip6tables-restore and the reverse)."""

    cmd: str = ""
    chain: str = ""
    rulenum: int = 0
    newname: str = ""
    policy: str = ""
    rules: list[tuple[IpSpec, tuple[Match, ...], Target]] = field(default_factory=list)
    counters: tuple[int, int] | None = None
    has_rule_spec: bool = False
    # the iptables command line only (RuleParser(cli=True)): -t, -v (count), -n -x
    # --line-numbers ("n" "x" "0"), -Z given with -L, -S/-L CHAIN RULENUM
    table: str = ""
    verbose: int = 0
    flags: set[str] = field(default_factory=set)
    zero: bool = False


def parse_proto(text: str) -> int:
    """``xtables_parse_protocol`` (the caller lower-cases first)."""
    n = try_uint(text, 0, U8)
    if n is not None:
        return n
    num = proto_number(text)
    if num is None:
        raise OptionError(f'unknown protocol "{text}" specified')
    return num


def valid_chain_name(name: str, what: str = "chain") -> None:
    if len(name) > CHAIN_MAX:
        raise OptionError(f"{what} name `{name}' too long (must be under "
                          f"{CHAIN_MAX + 1} chars)")
    if not name or name[0] in "-!":
        raise OptionError(f"{what} name not allowed to start with `{name[:1]}'")
    if any(c.isspace() for c in name):
        raise OptionError(f"invalid {what} name `{name}'")


class RuleParser:
    """Parses one line's words. ``has_chain(name)`` tells whether a user chain exists in
    the table (for -j/-g), ``table`` is the table the line belongs to."""

    def __init__(self, family: int, table: str, user_chains: frozenset[str],
                 cli: bool = False, chains_of: Callable[[str], frozenset[str]] | None = None,
                 sets: Any = None) -> None:
        self.family = family
        self.sets = sets            # the IP sets -m set / -j SET may name
        self.table = table
        self.user_chains = user_chains
        # cli: parse an ``iptables`` command line (-L -S -C -t -v allowed; iptables'
        # generic_opt_check); chains_of(table) gives the user chains once -t is seen
        self.cli = cli
        self.chains_of = chains_of

    # -- getopt ----------------------------------------------------------------------
    def _long_table(self) -> list[tuple[str, int, object]]:
        """orig_opts, then extension options newest first (xtables_merge_options)."""
        out: list[tuple[str, int, object]] = [(n, a, letter) for n, a, letter in GENERIC_LONG]
        for ext in self._merged:
            for o in ext.options:
                out.append((o.name, o.arg, (ext, o)))
        return out

    def _resolve(self, name: str) -> tuple[int, object] | None:
        table = self._long_table()
        for n, a, v in table:
            if n == name:
                return a, v
        hits = [(n, a, v) for n, a, v in table if n.startswith(name)]
        if not hits:
            return None
        first = hits[0]

        def key(v: object) -> object:
            if isinstance(v, tuple):
                return (id(v[0]), v[1].id)
            return v
        for n, a, v in hits[1:]:
            if a != first[1] or key(v) != key(first[2]):
                raise OptionError(f"option `--{name}' is ambiguous; possibilities: " +
                                  " ".join(f"'--{h[0]}'" for h in hits))
        return first[1], first[2]

    # -- main ------------------------------------------------------------------------
    def parse(self, words: list[str]) -> Command:
        self._merged: list[Ext] = []
        self.matches: list[_Inst] = []
        self.target: _Inst | None = None
        cmd = Command()
        options: set[str] = set()
        inv_flags = 0
        invert = False
        src = dst = None
        iniface = outiface = ""
        proto_text: str | None = None
        proto = 0
        frag = False
        jumpto: str | None = None
        goto = False
        proto_used = False
        i = 0
        n = len(words)

        def has_arg() -> bool:
            return i < n and words[i][:1] not in ("-", "!")

        def set_option(letter: str) -> None:
            nonlocal inv_flags
            if letter in options:
                raise OptionError(f"multiple {_LETTER_NAME.get(letter, '-' + letter)} "
                                  "options not allowed")
            options.add(letter)
            if invert:
                bit = _INVERTIBLE.get(letter)
                if bit is None:
                    raise OptionError(f"cannot have ! before {_LETTER_NAME.get(letter, '-' + letter)}")
                inv_flags |= bit

        def add_command(letter: str) -> None:
            if invert:
                raise OptionError("unexpected '!' flag")
            if self.cli and {letter, cmd.cmd} == {"L", "Z"}:
                cmd.zero = True                  # -L -Z: list, then zero
                cmd.cmd = "L"
                return
            if cmd.cmd:
                if self.cli:
                    raise OptionError(f"Cannot use -{letter} with -{cmd.cmd}")
                raise OptionError(f"cannot use -{letter} with -{cmd.cmd}")
            cmd.cmd = letter

        words = list(words)
        while i < n:
            start = i
            w = words[i]
            i += 1
            if w == "!":
                if invert:
                    raise OptionError("multiple consecutive ! not allowed")
                invert = True
                continue
            letter: str | None = None
            arg: str | None = None
            extopt: tuple[Ext, Opt] | None = None
            if w.startswith("--") and len(w) > 2:
                name, eq, value = w[2:].partition("=")
                res = self._resolve(name)
                if res is None:
                    if self._load_proto(proto_text, proto_used):
                        proto_used = True
                        i = start
                        continue
                    raise OptionError(f'unknown option "{w}"')
                has, val = res
                if eq and has == ARG_NONE:
                    raise OptionError(f"option '--{name}' doesn't allow an argument")
                if has == ARG_REQ:
                    if eq:
                        arg = value
                    elif i < n:
                        arg = words[i]
                        i += 1
                    else:
                        raise OptionError(f'option "{w}" requires an argument')
                elif has == ARG_OPT and eq:
                    arg = value
                if isinstance(val, tuple):
                    extopt = val
                else:
                    letter = str(val)
            elif w.startswith("-") and len(w) > 1:
                letter = w[1]
                kind = SHORT.get(letter)
                if kind is None:
                    raise OptionError(f'unknown option "-{letter}"')
                rest = w[2:]
                if kind == 0 and rest:
                    # a cluster of flags: -fv; only flags may follow
                    words.insert(i, "-" + rest)
                    n += 1
                elif kind == 1:
                    if rest:
                        arg = rest
                    elif i < n:
                        arg = words[i]
                        i += 1
                    else:
                        raise OptionError(f'option "-{letter}" requires an argument')
                elif kind == 2 and rest:
                    arg = rest
            else:
                raise OptionError(f"bad argument `{w}'")

            if extopt is not None:
                ext, opt = extopt
                owner = self._owner(ext)
                if owner is None:
                    if self._load_proto(proto_text, proto_used):
                        proto_used = True
                        i = start
                        continue
                    raise OptionError(f'unknown option "{w}"')
                if opt.extra:
                    extra = []
                    for _ in range(opt.extra):
                        if i >= n or words[i][:1] in ("-", "!"):
                            raise OptionError(f"--{opt.name} requires {opt.extra + 1} args")
                        extra.append(words[i])
                        i += 1
                    arg = " ".join([arg or ""] + extra)
                owner.seen.add(opt, arg, invert, proto, bool(inv_flags & INV_PROTO))
                invert = False
                continue

            assert letter is not None
            if letter in "ACDRIL SFZNXEP".replace(" ", ""):
                if letter in ("L", "S", "C") and not self.cli:
                    raise OptionError(f"-{letter} is not a command for a rule file")
                add_command(letter)
                if letter in ("A", "I", "D", "R", "N", "E", "P"):
                    assert arg is not None
                    cmd.chain = arg
                elif arg is not None:
                    cmd.chain = arg
                elif letter in ("F", "X", "Z", "L", "S") and has_arg():
                    cmd.chain = words[i]
                    i += 1
                if letter == "N":
                    valid_chain_name(cmd.chain)
                    if registry.is_target_name(cmd.chain):
                        raise OptionError("chain name may not clash with target name")
                if letter == "I":
                    if has_arg():
                        cmd.rulenum = _rulenum(words[i])
                        i += 1
                    else:
                        cmd.rulenum = 1
                elif letter == "R":
                    if not has_arg():
                        raise OptionError("-R requires a rule number")
                    cmd.rulenum = _rulenum(words[i])
                    i += 1
                elif letter == "D" and has_arg():
                    cmd.rulenum = _rulenum(words[i])
                    i += 1
                elif letter in ("Z", "L", "S") and cmd.chain and has_arg():
                    cmd.rulenum = _rulenum(words[i])
                    i += 1
                elif letter == "E":
                    if not has_arg():
                        raise OptionError("-E requires old-chain-name and new-chain-name")
                    cmd.newname = words[i]
                    i += 1
                    valid_chain_name(cmd.newname)
                elif letter == "P":
                    if not has_arg():
                        raise OptionError("-P requires a chain and a policy")
                    cmd.policy = words[i]
                    i += 1
            elif letter == "p":
                set_option("p")
                assert arg is not None
                proto_text = arg.lower()
                proto = parse_proto(proto_text)
                if proto == 0 and inv_flags & INV_PROTO:
                    raise OptionError("rule would never match protocol")
            elif letter == "s":
                set_option("s")
                src = arg
            elif letter == "d":
                set_option("d")
                dst = arg
            elif letter in ("i", "o"):
                assert arg is not None
                if arg == "":
                    raise OptionError("empty interface is likely to be undesired")
                set_option(letter)
                if len(arg) >= IFNAMSIZ:
                    raise OptionError(f"interface name `{arg}' must be shorter than "
                                      f"{IFNAMSIZ} characters")
                if letter == "i":
                    iniface = arg
                else:
                    outiface = arg
            elif letter == "f":
                if self.family == 6:
                    raise OptionError("`-f' is not supported in IPv6, use -m frag instead")
                set_option("f")
                frag = True
            elif letter in ("j", "g"):
                set_option("j")
                assert arg is not None
                _valid_target_name(arg)
                jumpto = arg
                goto = letter == "g"
                if letter == "j":
                    self._load_target(arg)
            elif letter == "m":
                if invert:
                    raise OptionError("unexpected ! flag before --match")
                assert arg is not None
                self._load_match(arg)
            elif letter == "c":
                set_option("c")
                assert arg is not None
                cmd.counters = self._counters(arg, words, i)
                if "," not in arg:
                    i += 1
            elif letter == "t" and self.cli:
                if cmd.table:
                    raise OptionError("multiple -t flags not allowed")
                assert arg is not None
                cmd.table = self.table = arg
                if self.chains_of is not None:
                    self.user_chains = self.chains_of(arg)
            elif letter == "t":
                raise OptionError("the -t option cannot be used in a rule file line")
            elif letter in ("4", "6"):
                if int(letter) != self.family:
                    return Command()         # iptables-restore skips the other family's lines
            elif letter in ("w", "W") and self.cli:
                if arg is None and has_arg() and words[i].isdigit():
                    i += 1                   # -w [seconds]: no lock to wait for here
            elif letter in ("w", "W"):
                raise OptionError(f"you cannot use `-{letter}' in a rule file")
            elif letter in ("n", "x", "0"):
                set_option(letter)
                cmd.flags.add(letter)
            elif letter == "v" and self.cli:
                if invert:
                    raise OptionError("cannot have ! before -v")
                cmd.verbose += 1
            elif letter in ("v", "M", "b"):
                pass
            elif letter in ("V", "h"):
                raise OptionError(f"-{letter} is not a command for a rule file")
            invert = False

        if invert:
            raise OptionError("nothing appropriate following !")
        if not cmd.cmd:
            raise OptionError("no command specified")
        if self.table == "nat" and jumpto == "DROP":
            raise OptionError('the "nat" table is not intended for filtering, the use of '
                              "DROP is therefore inhibited")
        rule_opts = options & {"s", "d", "p", "i", "o", "f", "j"}
        if self.cli:
            _cli_opt_check(cmd, options, bool(self.matches))
        if self.cli and cmd.cmd not in RULE_COMMANDS:
            return cmd
        if cmd.cmd not in RULE_COMMANDS:
            bad = rule_opts | (options & {"c"} if cmd.cmd != "P" else set()) | \
                (options & {"n", "x", "0"})
            if bad or self.matches:
                bad_opt = sorted(bad)[0] if bad else "m"
                raise OptionError(f"illegal option `{_LETTER_NAME.get(bad_opt, '-' + bad_opt)}' "
                                  "with this command")
            return cmd
        if options & {"n", "x", "0"}:
            bad_opt = sorted(options & {"n", "x", "0"})[0]
            raise OptionError(f"illegal option `{_LETTER_NAME[bad_opt]}' with this command")
        if cmd.cmd == "D" and cmd.rulenum:
            if rule_opts or self.matches:
                raise OptionError("-D with a rule number takes no rule specification")
            return cmd
        if cmd.chain in ("PREROUTING", "INPUT") and "o" in options:
            raise OptionError(f"can't use -o with {cmd.chain}")
        if cmd.chain in ("POSTROUTING", "OUTPUT") and "i" in options:
            raise OptionError(f"can't use -i with {cmd.chain}")
        valid_chain_name(cmd.chain)
        cmd.has_rule_spec = True
        cmd.rules = self._build(src, dst, iniface, outiface, proto, "p" in options, frag,
                                inv_flags, jumpto, goto, cmd.chain)
        return cmd

    # -- extensions ------------------------------------------------------------------
    def _owner(self, ext: Ext) -> _Inst | None:
        if self.target is not None and self.target.ext is ext:
            return self.target
        for inst in self.matches:
            if inst.ext is ext and not inst.completed:
                return inst
        return None

    def _merge(self, ext: Ext) -> None:
        if ext not in self._merged:
            self._merged.insert(0, ext)

    def _add_match(self, ext: MatchExt) -> None:
        for inst in self.matches:
            if inst.ext is ext:
                inst.completed = True
        self.matches.append(_Inst(ext, Seen(ext)))
        self._merge(ext)

    def _load_match(self, name: str) -> None:
        ext = registry.find_match(name, self.family)
        if ext is None:
            raise OptionError(_unknown_match(name, self.family))
        self._add_match(ext)

    def _load_proto(self, proto_text: str | None, used: bool) -> bool:
        """``load_proto``: -p NAME|NUM loads the match of that name, once."""
        if proto_text is None or used:
            return False
        n = try_uint(proto_text, 0, U8)
        name = proto_name(n) if n is not None else proto_text
        if not name:
            return False
        ext = registry.find_match(name, self.family)
        if ext is None:
            if name in registry.UNSUPPORTED_MATCHES:
                raise OptionError(f"match {name} is not supported by statewall")
            return False
        self._add_match(ext)
        return True

    def _load_target(self, name: str) -> None:
        if name in VERDICTS or name == "CONTINUE":
            return
        ext = registry.find_target(name, self.family)
        if ext is None:
            if name in registry.UNSUPPORTED_TARGETS:
                raise OptionError(f"target {name} is not supported by statewall")
            if registry.find_target(name, 6 if self.family == 4 else 4) is not None:
                raise OptionError(f"target {name} is not available for IPv{self.family}")
            return
        self.target = _Inst(ext, Seen(ext))
        self._merge(ext)

    def _counters(self, arg: str, words: list[str], i: int) -> tuple[int, int]:
        if "," in arg:
            p, b = arg.split(",", 1)
        else:
            if i >= len(words) or words[i][:1] in ("-", "!"):
                raise OptionError("--set-counters requires packet and byte counter")
            p, b = arg, words[i]
        pv = _c_number(p)
        bv = _c_number(b)
        if pv is None:
            raise OptionError("--set-counters packet counter not numeric")
        if bv is None:
            raise OptionError("--set-counters byte counter not numeric")
        return pv, bv

    # -- the rule ----------------------------------------------------------------------
    def _build(self, src: str | None, dst: str | None, iniface: str, outiface: str,
               proto: int, has_proto: bool, frag: bool, inv: int, jumpto: str | None,
               goto: bool, chain: str) -> list[tuple[IpSpec, tuple[Match, ...], Target]]:
        fam = self.family
        zero = (bytes(4), bytes(4)) if fam == 4 else (bytes(16), bytes(16))
        srcs = parse_multiple(src, fam, "--source") if src is not None else [zero]
        dsts = parse_multiple(dst, fam, "--destination") if dst is not None else [zero]
        if (len(srcs) > 1 or len(dsts) > 1) and inv & (INV_SRCIP | INV_DSTIP):
            raise OptionError("! not allowed with multiple source or destination IP addresses")
        rc = RuleCtx(fam, self.table, chain, proto, bool(inv & INV_PROTO), self.sets)
        matches = []
        for inst in self.matches:
            inst.seen.finish()
            matches.append(Match(inst.ext.name, inst.ext.build(inst.seen, rc)))
        target = self._build_target(jumpto, goto, rc)
        out = []
        for s in srcs:
            for d in dsts:
                ip = IpSpec(s[0], s[1], d[0], d[1], iniface, outiface, proto, has_proto,
                            frag, inv)
                out.append((ip, tuple(matches), target))
        return out

    def _build_target(self, jumpto: str | None, goto: bool, rc: RuleCtx) -> Target:
        if jumpto is None or jumpto == "CONTINUE" or jumpto == "":
            return Target("none")
        if goto:
            if jumpto not in self.user_chains:
                raise OptionError(f"goto needs an existing user-defined chain, not `{jumpto}'")
            return Target("goto", jumpto)
        if jumpto in VERDICTS:
            return Target("verdict", jumpto)
        if self.target is not None:
            t = self.target
            assert isinstance(t.ext, TargetExt)
            t.seen.finish()
            return Target("ext", t.ext.name, t.ext.build(t.seen, rc))
        if jumpto in self.user_chains:
            return Target("jump", jumpto)
        if jumpto in registry.UNSUPPORTED_TARGETS:
            raise OptionError(f"target {jumpto} is not supported by statewall")
        if registry.find_target(jumpto, 6 if self.family == 4 else 4) is not None:
            raise OptionError(f"target {jumpto} is not available for IPv{self.family}")
        raise OptionError(f"couldn't load target `{jumpto}': no such chain or target")


# iptables' commands_v_options (xshared.c): options each command refuses; a command line
# with several commands (-L -Z) may use what any of them allows
_CLI_ILLEGAL: Final = {
    "I": "nx0", "A": "nx0", "R": "nx0", "D": "nx0c", "C": "nx0c",
    "Dnum": "nsdpjxio0cf", "L": "sdpjioc", "F": "nsdpjxio0cf", "Z": "nsdpjxio0cf",
    "N": "nsdpjxio0cf", "X": "nsdpjxio0cf", "P": "nsdpjxio0f", "E": "nsdpjxio0cf",
    "S": "nsdpjxio0cf",
}
_CLI_ORDER: Final = "nsdpjvxio0cf"
_CLI_NAME: Final = {"0": "--line", **{c: "-" + c for c in "nsdpjvxiocf"}}


def _cli_opt_check(cmd: Command, options: set[str], matches: bool) -> None:
    """``generic_opt_check``: "Illegal option `-n' with this command" (exit 2)."""
    key = "Dnum" if cmd.cmd == "D" and cmd.rulenum else cmd.cmd
    rows = [_CLI_ILLEGAL[key]] + ([_CLI_ILLEGAL["Z"]] if cmd.zero else [])
    for o in _CLI_ORDER:
        if o in options and all(o in row for row in rows):
            raise OptionError(f"Illegal option `{_CLI_NAME[o]}' with this command")
    if matches and key not in RULE_COMMANDS:
        raise OptionError("Illegal option `-m' with this command")


def _unknown_match(name: str, family: int) -> str:
    if name in registry.UNSUPPORTED_MATCHES or \
            registry.find_match(name, 6 if family == 4 else 4) is not None:
        if registry.find_match(name, 6 if family == 4 else 4) is not None:
            return f"match {name} is not available for IPv{family}"
        return f"match {name} is not supported by statewall"
    return f"couldn't load match `{name}': no such extension"


def _valid_target_name(name: str) -> None:
    if not name:
        raise OptionError("invalid target name (too short)")
    if len(name) > CHAIN_MAX:
        raise OptionError(f"invalid target name `{name}' ({CHAIN_MAX} chars max)")
    if any(c.isspace() for c in name):
        raise OptionError(f"invalid target name `{name}'")


def _rulenum(text: str) -> int:
    n = try_uint(text, 1, 0x7FFFFFFF, 10)
    if n is None:
        raise OptionError(f"invalid rule number `{text}'")
    return n


def _c_number(text: str) -> int | None:
    """``sscanf("%llu")``: leading digits count."""
    s = text.strip()
    k = 0
    while k < len(s) and s[k].isdigit():
        k += 1
    return int(s[:k]) if k else None

