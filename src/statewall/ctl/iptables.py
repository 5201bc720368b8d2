"""``iptables`` / ``iptables-save`` / ``iptables-restore`` as pure operations on a rule set.

Owns: what each command does to a ``Ruleset`` (rules.model) and what it prints, as
iptables 1.8.9 does: -A -I -D (spec or number) -R -C -F -Z -N -X -E -P -L -S with -t,
-v -n -x --line-numbers, -L -Z; the libiptc error texts and exit codes (1 for "No
chain/target/match by that name." and friends, 2 for a parameter problem from the command
line parser, 3 for a table that does not exist); iptables-save [-c] [-t T]; iptables-restore
[--noflush] [--counters] [-T T] with iptables-restore's error lines. Must not know:
processes, sockets, workers. Single rules are read by ``rules.cmdline.RuleParser`` (the
parser of restore files, in its command-line mode); restore files by ``rules.parse``.

Where the rule set lives: the supervisor of ``statewall run`` holds the authoritative model
(``live.iptables``); a command runs here against it and, when it changes something, yields
a ``Change``: the whole new rule set of the family plus, for every chain, where each rule's
counters come from (``origins``: the (chain, index) of the same rule in the running set, or
None for a new/zeroed rule) and whether the built-in chain keeps its policy counters. The
workers compile that, copy the counters of the rules that survived (as the kernel and
iptables keep them), and swap. Nothing here counts packets: listings take the summed live
counters of the workers as an argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Final

from ..rules import ext
from ..rules.check import RuleCheckError, check_table
from ..rules.cmdline import Command, RuleParser
from ..rules.errors import ConfigError, OptionError
from ..rules.model import TABLE_CHAINS, Chain, Rule, Ruleset, Source, Table, Target, \
    empty_table
from ..rules.parse import KNOWN_TABLES, _Chain, _Loader
from ..rules.quote import tokenize
from ..rules.save import save
from . import iptables_names
from ..rules.listing import Counters, Fmt, list_rules, list_table

VERSION: Final = "v1.8.9 (legacy)"
Origin = tuple[str, int] | None
# table -> chain -> (keep the policy counters, per rule: the origin of its counters)
Origins = dict[str, dict[str, tuple[bool, list[Origin]]]]

USAGE: Final = """Usage: TOOL -[ACD] chain rule-specification [options]
       TOOL -I chain [rulenum] rule-specification [options]
       TOOL -R chain rulenum rule-specification [options]
       TOOL -D chain rulenum [options]
       TOOL -[LS] [chain [rulenum]] [options]
       TOOL -[FZ] [chain] [options]
       TOOL -[NX] chain
       TOOL -E old-chain-name new-chain-name
       TOOL -P chain target [options]
       TOOL -h (print this help information)

statewall: the rule set of the running 'statewall run' (--control=PATH or
$STATEWALL_CONTROL); docs/iptables-cli.md.
"""
E_NOCHAIN: Final = "No chain/target/match by that name."
E_EXISTS: Final = "Chain already exists."
E_BADRULE: Final = "Bad rule (does a matching rule exist in that chain?)."


@dataclass
class Change:
    ruleset: Ruleset
    origins: Origins


@dataclass
class Outcome:
    rc: int = 0
    out: str = ""
    err: str = ""
    change: Change | None = None


class _Fail(Exception):
    """A libiptc-level failure: ``TOOL: message`` and an exit code."""

    def __init__(self, message: str, rc: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.rc = rc


def tool_name(family: int, what: str = "") -> str:
    return ("iptables" if family == 4 else "ip6tables") + what


# the parser's words for what iptables' own front end says differently
_CLI_WORDS: Final = (
    ("couldn't load target `", "': no such chain or target",
     "Couldn't load target `{}':No such file or directory\n"),
    ("couldn't load match `", "': no such extension",
     "Couldn't load match `{}':No such file or directory\n"),
    ("the \"nat\" table is not intended", "",
     "\nThe \"nat\" table is not intended for filtering, the use of DROP is therefore "
     "inhibited.\n\n"),
)


_PORT_WORDS: Final = re.compile(r'^[\w-]+ --[\w-]+: invalid port/service "(.*)" specified$')


def _cli_words(message: str) -> str:
    for prefix in ("--source: ", "--destination: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    m = _PORT_WORDS.match(message)
    if m:                                    # libxtables' xtables_parse_port
        return f"invalid port/service `{m.group(1)}' specified"
    for head, tail, text in _CLI_WORDS:
        if message.startswith(head) and message.endswith(tail):
            return text.format(message[len(head):len(message) - len(tail)] if tail else "")
    return message


def param_error(tool: str, message: str) -> str:
    message = _cli_words(message)
    if message.startswith("bad argument `"):     # do_parse prints this one bare
        return (f"B{message[1:]}\n"
                f"Try `{tool} -h' or '{tool} --help' for more information.\n")
    return (f"{tool} {VERSION}: {message}\n"
            f"Try `{tool} -h' or '{tool} --help' for more information.\n")


# -- a working copy that remembers where each rule's counters come from ----------------------
@dataclass
class _WChain:
    name: str
    policy: str | None
    counters: tuple[int, int]
    rules: list[tuple[Rule, Origin]]
    src: Source | None = None
    keep_policy: bool = True


@dataclass
class _Work:
    family: int
    tables: dict[str, dict[str, _WChain]] = field(default_factory=dict)
    sets: Any = None                       # the rule set's IP sets, kept across edits

    @classmethod
    def of(cls, rs: Ruleset) -> _Work:
        w = cls(rs.family, sets=rs.sets)
        for t in rs.tables:
            w.tables[t.name] = {c.name: _WChain(c.name, c.policy, c.counters,
                                                [(r, (c.name, k)) for k, r in enumerate(c.rules)],
                                                c.src)
                                for c in t.chains}
        return w

    def table(self, name: str) -> dict[str, _WChain]:
        t = self.tables.get(name)
        if t is None:
            t = self.tables[name] = {c.name: _WChain(c.name, c.policy, c.counters, [])
                                     for c in empty_table(name).chains}
        return t

    def change(self) -> Change:
        tables: list[Table] = []
        origins: Origins = {}
        for tname, chains in self.tables.items():
            builtins = [chains[n] for n in TABLE_CHAINS[tname]]
            users = sorted((c for c in chains.values() if c.policy is None),
                           key=lambda c: c.name.encode())
            tables.append(Table(tname, tuple(
                Chain(c.name, c.policy, c.counters, tuple(r for r, _ in c.rules), c.src)
                for c in builtins + users)))
            origins[tname] = {c.name: (c.keep_policy, [o for _, o in c.rules])
                              for c in builtins + users}
        return Change(Ruleset(self.family, tuple(tables), self.sets), origins)


def _zeroed(r: Rule) -> Rule:
    return Rule(r.ip, r.matches, r.target, (0, 0), r.src, r.text)


def _check(family: int, tname: str, chains: dict[str, _WChain]) -> None:
    try:
        check_table(family, tname, {n: [r for r, _ in c.rules] for n, c in chains.items()})
    except RuleCheckError as e:
        raise _Fail(e.message.rstrip(".") + ".") from None


def table_of(rs: Ruleset, name: str) -> Table:
    t = rs.table(name)
    return t if t is not None else empty_table(name)


# -- iptables ------------------------------------------------------------------------------
def iptables(rs: Ruleset, argv: list[str], live: Callable[[], Counters]) -> Outcome:
    """One ``iptables``/``ip6tables`` command line against ``rs``; ``live()`` gives the
    summed counters (asked only by commands that print them)."""
    tool = tool_name(rs.family)

    def chains_of(tname: str) -> frozenset[str]:
        t = rs.table(tname)
        return frozenset(c.name for c in t.chains if c.policy is None) if t else frozenset()

    if argv[:1] in (["-V"], ["--version"]):
        return Outcome(out=f"{tool} {VERSION}\n")
    if argv[:1] in (["-h"], ["--help"]):
        return Outcome(out=f"{tool} {VERSION}\n\n" + USAGE.replace("TOOL", tool))
    try:
        cmd = RuleParser(rs.family, "filter", chains_of("filter"), cli=True,
                         chains_of=chains_of, sets=rs.sets).parse(list(argv))
    except OptionError as e:
        return Outcome(2, err=param_error(tool, e.message))
    if not cmd.cmd:
        return Outcome()
    tname = cmd.table or "filter"
    if tname not in KNOWN_TABLES or tname == "security":
        return Outcome(3, err=f"{tool} {VERSION}: can't initialize {tool} table `{tname}': "
                       "Table does not exist (do you need to insmod?)\n"
                       f"Perhaps {tool} or your kernel needs to be upgraded.\n")
    try:
        return _run(rs, tname, cmd, live)
    except _Fail as e:
        return Outcome(e.rc, err=f"{tool}: {e.message}\n")
    except OptionError as e:
        return Outcome(2, err=param_error(tool, e.message))


def _run(rs: Ruleset, tname: str, cmd: Command, live: Callable[[], Counters]) -> Outcome:
    fam = rs.family
    c = cmd.cmd
    if c in ("L", "S"):
        table = table_of(rs, tname)
        if cmd.chain and table.chain(cmd.chain) is None:
            raise _Fail(E_NOCHAIN)
        ctrs = live() if cmd.verbose else {}
        if c == "S":
            out = list_rules(table, fam, ctrs, cmd.verbose > 0, cmd.chain or None,
                             cmd.rulenum)
            return Outcome(out=out)
        fmt = Fmt(cmd.verbose > 0, "n" in cmd.flags, "x" in cmd.flags, "0" in cmd.flags,
                  iptables_names)
        out = list_table(table, fam, ctrs, fmt, cmd.chain or None, cmd.rulenum)
        res = Outcome(out=out)
        if cmd.zero and rs.table(tname) is not None:
            res.change = _zero(rs, tname, cmd.chain, cmd.rulenum)
        return res
    if c in ("F", "Z", "X", "C", "D") and rs.table(tname) is None:
        # a table nobody loaded: nothing to flush, zero, delete or find (not created)
        ch0 = empty_table(tname).chain(cmd.chain) if cmd.chain else None
        if cmd.chain and ch0 is None:
            raise _Fail(E_NOCHAIN)
        if c in ("C", "D") and (cmd.has_rule_spec or cmd.rulenum):
            raise _Fail(E_BADRULE if cmd.has_rule_spec else "Index of deletion too big.")
        if c == "Z" and cmd.rulenum:
            raise _Fail("Index of counter too big.")
        return Outcome()
    w = _Work.of(rs)
    chains = w.table(tname)
    ch = chains.get(cmd.chain) if cmd.chain else None
    if c in ("A", "I", "R", "D", "C", "P") or (c in ("F", "Z") and cmd.chain):
        if ch is None:
            raise _Fail("Bad built-in chain name." if c == "P" else E_NOCHAIN)
    src = Source("iptables", 0)
    ctr = cmd.counters or (0, 0)
    new = [(Rule(ip, m, t, ctr, src, ""), None) for ip, m, t in cmd.rules]
    if c == "C":
        assert ch is not None
        for r, _ in new:
            if _find(ch, r) < 0:
                raise _Fail(E_BADRULE)
        return Outcome()
    if c == "Z":
        return Outcome(change=_zero(rs, tname, cmd.chain, cmd.rulenum))
    if c == "A":
        assert ch is not None
        ch.rules.extend(new)
    elif c == "I":
        assert ch is not None
        if cmd.rulenum > len(ch.rules) + 1:
            raise _Fail("Index of insertion too big.")
        ch.rules[cmd.rulenum - 1:cmd.rulenum - 1] = new
    elif c == "R":
        assert ch is not None
        if len(new) != 1:
            raise OptionError("Replacement rule does not specify a unique address")
        if not 1 <= cmd.rulenum <= len(ch.rules):
            raise _Fail("Index of replacement too big.")
        ch.rules[cmd.rulenum - 1] = new[0]
    elif c == "D":
        assert ch is not None
        if not cmd.has_rule_spec:
            if not 1 <= cmd.rulenum <= len(ch.rules):
                raise _Fail("Index of deletion too big.")
            del ch.rules[cmd.rulenum - 1]
        else:
            for r, _ in new:
                k = _find(ch, r)
                if k < 0:
                    raise _Fail(E_BADRULE)
                del ch.rules[k]
    elif c == "F":
        for x in ([ch] if ch is not None else list(chains.values())):
            assert x is not None
            x.rules.clear()
    elif c == "N":
        if cmd.chain in chains:
            raise _Fail(E_EXISTS)
        chains[cmd.chain] = _WChain(cmd.chain, None, (0, 0), [])
    elif c == "X":
        _delete_chains(chains, cmd.chain)
    elif c == "E":
        _rename(chains, cmd.chain, cmd.newname)
    elif c == "P":
        assert ch is not None
        if ch.policy is None:
            raise _Fail("Bad built-in chain name.")
        if cmd.policy not in ("ACCEPT", "DROP") or (tname == "nat" and cmd.policy == "DROP"):
            raise _Fail("Bad policy name. Run `dmesg' for more information.")
        ch.policy = cmd.policy
        if cmd.counters is not None:
            ch.counters = cmd.counters
            ch.keep_policy = False
    _check(rs.family, tname, chains)
    return Outcome(change=w.change())


def _find(ch: _WChain, r: Rule) -> int:
    for k, (old, _) in enumerate(ch.rules):
        if (old.ip, old.matches, old.target) == (r.ip, r.matches, r.target):
            return k
    return -1


def _zero(rs: Ruleset, tname: str, chain: str, rulenum: int) -> Change:
    w = _Work.of(rs)
    chains = w.table(tname)
    for x in ([chains[chain]] if chain else list(chains.values())):
        if rulenum:
            if rulenum > len(x.rules):
                raise _Fail("Index of counter too big.")
            r, _ = x.rules[rulenum - 1]
            x.rules[rulenum - 1] = (_zeroed(r), None)
            continue
        x.counters = (0, 0)
        x.keep_policy = False
        x.rules[:] = [(_zeroed(r), None) for r, _ in x.rules]
    return w.change()


def _refs(chains: dict[str, _WChain], name: str) -> int:
    return sum(1 for c in chains.values() for r, _ in c.rules if r.target.kind in ("jump", "goto") and r.target.name == name)


def _delete_chains(chains: dict[str, _WChain], name: str) -> None:
    if name:
        ch = chains.get(name)
        if ch is None:
            raise _Fail(E_NOCHAIN)
        if ch.policy is not None:
            raise _Fail("Invalid argument. Run `dmesg' for more information.")
        if _refs(chains, name):
            raise _Fail("Too many links.")
        if ch.rules:
            raise _Fail("Directory not empty.")
        del chains[name]
        return
    # libiptc: every user chain in name order, going on after a failure; the last
    # failure is the one reported and then nothing is committed
    last = None
    for n in sorted((n for n, c in chains.items() if c.policy is None), key=str.encode):
        if _refs(chains, n):
            last = "Too many links."
        elif chains[n].rules:
            last = "Directory not empty."
        else:
            del chains[n]
    if last is not None:
        raise _Fail(last)


def _rename(chains: dict[str, _WChain], old: str, new: str) -> None:
    ch = chains.get(old)
    if ch is None or ch.policy is not None:
        raise _Fail(E_NOCHAIN)
    if new in chains:
        raise _Fail("File exists.")
    if ext.is_target_name(new):
        raise OptionError("chain name may not clash with target name")
    ch.name = new
    items = [(new if k == old else k, v) for k, v in chains.items()]
    chains.clear()
    chains.update(items)
    for c in chains.values():
        c.rules[:] = [(_retarget(r, old, new), o) for r, o in c.rules]


def _retarget(r: Rule, old: str, new: str) -> Rule:
    t = r.target
    if t.kind in ("jump", "goto") and t.name == old:
        return Rule(r.ip, r.matches, Target(t.kind, new), r.counters, r.src, r.text)
    return r


# -- iptables-save -------------------------------------------------------------------------
def save_text(rs: Ruleset, live: Counters | None, table: str | None, stamp: str) -> str:
    """``iptables-save [-c] [-t T]``: the canonical text (``rules.save``) between
    iptables-save's "Generated by" / "Completed on" comments. ``live`` (the summed worker
    counters) means -c."""
    tool = tool_name(rs.family, "-save")
    out = []
    for t in rs.tables:
        if table is not None and t.name != table:
            continue
        body = save(Ruleset(rs.family, (t,)), counters=live is not None, live=live)
        out.append(f"# Generated by {tool} v1.8.9 on {stamp}\n{body}# Completed on {stamp}\n")
    return "".join(out)


# -- iptables-restore ----------------------------------------------------------------------
class _RestoreLoader(_Loader):
    """A table starts from the running one: with ``--noflush`` its chains and rules (the
    same Rule objects, so their counters' origins are known), without it only the built-in
    chains' policies (iptables-restore flushes the table, it does not reset policies)."""

    def __init__(self, file: str, family: int, counters: bool, base: Ruleset,
                 noflush: bool) -> None:
        super().__init__(file, family, counters, base.sets)
        self.base = base
        self.noflush = noflush

    def _start(self, name: str) -> None:
        first = name not in self.committed
        super()._start(name)
        old = self.base.table(name)
        if not first or old is None or self.cur is None:
            return
        if self.noflush:
            self.cur.chains = {c.name: _Chain(c.name, c.policy, c.counters, list(c.rules),
                                              c.src) for c in old.chains}
            return
        for c in old.chains:
            mine = self.cur.chains.get(c.name)
            if c.policy is not None and mine is not None:
                mine.policy = c.policy


def restore(rs: Ruleset, text: str, noflush: bool = False, counters: bool = False,
            table: str | None = None, file: str = "<stdin>") -> Outcome:
    """``iptables-restore``: every table in ``text`` is replaced as a whole (or edited in
    place with ``noflush``); tables it does not name stay as they are."""
    tool = tool_name(rs.family, "-restore")
    if table is not None:
        if table not in KNOWN_TABLES:
            return Outcome(2, err=f"{tool} {VERSION}: {tool}: unable to initialize table "
                           f"'{table}'\n")
        text = _only_table(text, table)
    loader = _RestoreLoader(file, rs.family, counters, rs, noflush)
    try:
        got = loader.run(text)
    except ConfigError as e:
        return _restore_error(tool, e, len(text.splitlines()))
    place: dict[int, Origin] = {}
    for t in rs.tables:
        for c in t.chains:
            for k, r in enumerate(c.rules):
                place[id(r)] = (c.name, k)
    w = _Work.of(rs)
    for t in got.tables:
        chains: dict[str, _WChain] = {}
        for c in t.chains:
            # rules carried over by --noflush are the running set's Rule objects
            rules = [(r, place.get(id(r)) if noflush else None) for r in c.rules]
            old = rs.table(t.name)
            same = old is not None and old.chain(c.name) is not None
            kp = same and not counters           # built-in chains keep theirs
            chains[c.name] = _WChain(c.name, c.policy, c.counters, rules, c.src, kp)
        w.tables[t.name] = chains
    return Outcome(change=w.change())


def _only_table(text: str, table: str) -> str:
    """``-T TABLE``: blank out the other tables' lines (line numbers stay right)."""
    out, on = [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("*"):
            on = s[1:].strip() == table
        out.append(line if on or s.startswith("#") else "")
        if s == "COMMIT":
            on = False
    return "\n".join(out) + "\n"


_LIBIPTC: Final = ("does not exist in table", "bad rule (does a matching", "too big",
                   "can't delete", "already exists", "can't rename", "can't set policy")


def _restore_error(tool: str, e: ConfigError, lines: int) -> Outcome:
    msg = e.message
    low = msg.lower()
    if msg.startswith("COMMIT expected"):           # iptables-restore counts one past EOF
        return Outcome(1, err=f"{tool}: COMMIT expected at line {lines + 1}\n")
    if any(k in low for k in _LIBIPTC):
        return Outcome(1, err=f"{tool}: line {e.line} failed\n")
    return Outcome(2, err=f"{tool} {VERSION}: {_cli_words(msg)}\nError occurred at line: {e.line}\n"
                   f"Try `{tool} -h' or '{tool} --help' for more information.\n")


def words(line: str) -> list[str]:
    """A command line typed as one string (for tests and docs)."""
    return tokenize(line)
