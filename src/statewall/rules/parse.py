"""iptables-restore input -> Ruleset (what ``iptables-restore`` / ``ip6tables-restore``
accept, without flush-less or test modes).

Owns: the file structure (``*table`` ... ``COMMIT``, ``:CHAIN POLICY [p:b]`` lines,
comments, ``[p:b]`` rule counters), the table/chain commands a line can carry (-A -I -D -R
-N -X -F -Z -P -E, as iptables-restore applies them in order), and turning every error
into ``ConfigError`` with the file and line. Must not know: option syntax (``cmdline.py``),
extension details, evaluation. Follows iptables/iptables-restore.c (``ip46tables_restore_
main``) and libiptc's rules for chains (a built-in chain cannot be created, deleted or
renamed; a user chain that is referenced or not empty cannot be deleted).

A table named twice in one file is rebuilt the second time (restore flushes it), keeping
its policies, as iptables-restore does. ``counters=True`` is ``iptables-restore -c``: the
``[p:b]`` counters of chains and rules are kept (``-c P B`` in a rule always is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from . import ext
from .check import RuleCheckError, check_table
from .cmdline import RuleParser, valid_chain_name
from .errors import ConfigError, OptionError
from .model import TABLE_CHAINS, Chain, Rule, Ruleset, Source, Table, Target
from .quote import tokenize

KNOWN_TABLES: Final = ("raw", "mangle", "nat", "filter", "security")


@dataclass
class _Chain:
    name: str
    policy: str | None
    counters: tuple[int, int] = (0, 0)
    rules: list[Rule] = field(default_factory=list)
    src: Source | None = None


@dataclass
class _Table:
    name: str
    chains: dict[str, _Chain]
    line: int

    def user_chains(self) -> frozenset[str]:
        return frozenset(n for n, c in self.chains.items() if c.policy is None)


def _counters_text(text: str) -> tuple[int, int] | None:
    """``[P:B]``"""
    if not (text.startswith("[") and text.endswith("]")) or ":" not in text:
        return None
    p, _, b = text[1:-1].partition(":")
    if not (p.isdigit() and b.isdigit()):
        return None
    return int(p), int(b)


def load(text: str, file: str = "<rules>", family: int = 4,
         counters: bool = False, sets: Any = None) -> Ruleset:
    """Parse a whole restore file. Raises ConfigError(file, line, message). ``sets``: the
    IP sets (statewall.ipset.Registry) ``-m set`` / ``-j SET`` may name."""
    return _Loader(file, family, counters, sets).run(text)


class _Loader:
    def __init__(self, file: str, family: int, counters: bool, sets: Any = None) -> None:
        if family not in (4, 6):
            raise ValueError("family must be 4 or 6")
        self.sets = sets
        self.file = file
        self.family = family
        self.counters = counters
        self.committed: dict[str, Table] = {}
        self.cur: _Table | None = None
        self.lineno = 0

    def err(self, msg: str, line: int | None = None) -> ConfigError:
        return ConfigError(self.file, self.lineno if line is None else line, msg)

    def run(self, text: str) -> Ruleset:
        for lineno, raw in enumerate(text.splitlines(), 1):
            self.lineno = lineno
            line = raw.rstrip("\r")
            if not line.strip() or line.startswith("#"):
                continue
            try:
                if line.startswith("*") and self.cur is None:
                    self._start(line[1:].strip())
                elif line.strip() == "COMMIT" and self.cur is not None:
                    self._commit()
                elif self.cur is None:
                    raise self.err(f"no table specified (expected *table before `{line.strip()}')")
                elif line.startswith(":"):
                    self._chain_line(line[1:])
                else:
                    self._rule_line(line)
            except OptionError as e:
                raise self.err(e.message) from None
        if self.cur is not None:
            raise self.err(f"COMMIT expected: table {self.cur.name} opened at line "
                           f"{self.cur.line} is never committed")
        return Ruleset(self.family, tuple(self.committed.values()), self.sets)

    # -- structure -------------------------------------------------------------------
    def _start(self, name: str) -> None:
        if name not in KNOWN_TABLES:
            raise OptionError(f"can't initialize table `{name}': table does not exist")
        if name == "security":
            raise OptionError("table security is not supported by statewall (it holds SELinux "
                              "SECMARK/CONNSECMARK rules)")
        old = self.committed.get(name)
        chains: dict[str, _Chain] = {}
        for c in TABLE_CHAINS[name]:
            prev = old.chain(c) if old is not None else None
            policy = prev.policy if prev is not None and prev.policy else "ACCEPT"
            chains[c] = _Chain(c, policy, prev.counters if prev is not None else (0, 0))
        self.cur = _Table(name, chains, self.lineno)

    def _chain_line(self, rest: str) -> None:
        assert self.cur is not None
        parts = rest.split()
        if not parts:
            raise OptionError("chain line without a chain name")
        name = parts[0]
        valid_chain_name(name)
        if len(parts) < 2:
            raise OptionError(f"line {self.lineno} policy invalid")
        policy = parts[1]
        chain = self.cur.chains.get(name)
        if chain is None or chain.policy is None:
            if chain is not None:
                raise OptionError(f"error creating chain '{name}': chain already exists")
            if ext.is_target_name(name):
                raise OptionError(f"chain name `{name}' clashes with a target name")
            self.cur.chains[name] = _Chain(name, None, (0, 0), [], Source(self.file, self.lineno))
            if policy != "-":
                raise OptionError(f"can't set policy `{policy}' on `{name}': not a built-in "
                                  "chain")
            return
        if policy == "-":
            return
        if policy not in ("ACCEPT", "DROP"):
            raise OptionError(f"can't set policy `{policy}' on `{name}': bad built-in chain "
                              "policy (ACCEPT or DROP)")
        if self.cur.name == "nat" and policy == "DROP":
            raise OptionError('the "nat" table is not intended for filtering, the use of DROP '
                              "is therefore inhibited")
        chain.policy = policy
        chain.src = Source(self.file, self.lineno)
        if self.counters:
            ctr = _counters_text(parts[2]) if len(parts) > 2 else None
            if ctr is None:
                raise OptionError(f"invalid policy counters for chain '{name}'")
            chain.counters = ctr

    def _commit(self) -> None:
        cur = self.cur
        assert cur is not None
        chains = {n: c.rules for n, c in cur.chains.items()}
        try:
            check_table(self.family, cur.name, chains)
        except RuleCheckError as e:
            line = e.rule.src.line if e.rule is not None else self.lineno
            raise ConfigError(self.file, line, e.message) from None
        builtins = [cur.chains[n] for n in TABLE_CHAINS[cur.name]]
        users = sorted((c for c in cur.chains.values() if c.policy is None),
                       key=lambda c: c.name.encode())
        table = Table(cur.name, tuple(Chain(c.name, c.policy, c.counters, tuple(c.rules), c.src)
                                      for c in builtins + users))
        self.committed[cur.name] = table
        self.cur = None

    # -- rule lines --------------------------------------------------------------------
    def _rule_line(self, line: str) -> None:
        cur = self.cur
        assert cur is not None
        body = line.lstrip()
        prefix: tuple[int, int] | None = None
        if body.startswith("["):
            end = body.find("]")
            if end < 0:
                raise OptionError(f"bad line {self.lineno}: need ]")
            ctr = _counters_text(body[:end + 1])
            if ctr is None:
                raise OptionError(f"bad line {self.lineno}: counters must be [packets:bytes]")
            prefix = ctr
            body = body[end + 1:]
        words = tokenize(body)
        cmd = RuleParser(self.family, cur.name, cur.user_chains(), sets=self.sets).parse(words)
        if not cmd.cmd:
            return
        src = Source(self.file, self.lineno)
        ctrs = cmd.counters or (prefix if self.counters and prefix else (0, 0))
        c = cmd.cmd
        if c in ("A", "I", "R", "D", "Z", "P") or (c in ("F", "X") and cmd.chain):
            if c != "N" and cmd.chain and cmd.chain not in cur.chains:
                raise OptionError(f"chain `{cmd.chain}' does not exist in table {cur.name}")
        rules = [Rule(ip, m, t, ctrs, src, line.strip()) for ip, m, t in cmd.rules]
        chain = cur.chains.get(cmd.chain) if cmd.chain else None
        if c == "A":
            assert chain is not None
            chain.rules.extend(rules)
        elif c == "I":
            assert chain is not None
            if cmd.rulenum > len(chain.rules) + 1:
                raise OptionError(f"index of insertion too big ({cmd.rulenum})")
            chain.rules[cmd.rulenum - 1:cmd.rulenum - 1] = rules
        elif c == "R":
            assert chain is not None
            if len(rules) != 1:
                raise OptionError("-R takes one source and one destination address")
            if not 1 <= cmd.rulenum <= len(chain.rules):
                raise OptionError(f"index of replacement too big ({cmd.rulenum})")
            chain.rules[cmd.rulenum - 1] = rules[0]
        elif c == "D":
            assert chain is not None
            if not cmd.has_rule_spec:
                if not 1 <= cmd.rulenum <= len(chain.rules):
                    raise OptionError(f"index of deletion too big ({cmd.rulenum})")
                del chain.rules[cmd.rulenum - 1]
            else:
                for r in rules:
                    for k, old in enumerate(chain.rules):
                        if (old.ip, old.matches, old.target) == (r.ip, r.matches, r.target):
                            del chain.rules[k]
                            break
                    else:
                        raise OptionError("bad rule (does a matching rule exist in that "
                                          "chain?)")
        elif c == "N":
            if cmd.chain in cur.chains:
                raise OptionError(f"chain `{cmd.chain}' already exists")
            cur.chains[cmd.chain] = _Chain(cmd.chain, None, (0, 0), [], src)
        elif c == "X":
            self._delete_chains(cur, cmd.chain)
        elif c == "F":
            for ch in ([chain] if chain else list(cur.chains.values())):
                assert ch is not None
                ch.rules.clear()
        elif c == "Z":
            for ch in ([chain] if chain else list(cur.chains.values())):
                assert ch is not None
                if cmd.rulenum:
                    if not 1 <= cmd.rulenum <= len(ch.rules):
                        raise OptionError(f"index of zeroing too big ({cmd.rulenum})")
                    ch.rules[cmd.rulenum - 1] = _zeroed(ch.rules[cmd.rulenum - 1])
                    continue
                ch.counters = (0, 0)
                ch.rules[:] = [_zeroed(r) for r in ch.rules]
        elif c == "P":
            assert chain is not None
            if chain.policy is None:
                raise OptionError(f"can't set policy on user-defined chain `{cmd.chain}'")
            if cmd.policy not in ("ACCEPT", "DROP"):
                raise OptionError(f"bad policy name `{cmd.policy}' (ACCEPT or DROP)")
            if cur.name == "nat" and cmd.policy == "DROP":
                raise OptionError('the "nat" table is not intended for filtering, the use '
                                  "of DROP is therefore inhibited")
            chain.policy = cmd.policy
            if cmd.counters is not None:
                chain.counters = cmd.counters
        elif c == "E":
            self._rename(cur, cmd.chain, cmd.newname)

    def _refs(self, cur: _Table, name: str) -> int:
        return sum(1 for ch in cur.chains.values() for r in ch.rules
                   if r.target.kind in ("jump", "goto") and r.target.name == name)

    def _delete_chains(self, cur: _Table, name: str) -> None:
        if name:
            ch = cur.chains.get(name)
            assert ch is not None
            if ch.policy is not None:
                raise OptionError(f"can't delete built-in chain `{name}'")
            if self._refs(cur, name):
                raise OptionError(f"can't delete chain `{name}': it is still referenced "
                                  "(Too many links)")
            if ch.rules:
                raise OptionError(f"can't delete chain `{name}': it is not empty "
                                  "(Directory not empty)")
            del cur.chains[name]
            return
        users = [n for n, ch in cur.chains.items() if ch.policy is None]
        for n in users:
            refs = sum(1 for ch in cur.chains.values() if ch.policy is not None
                       for r in ch.rules if r.target.kind in ("jump", "goto")
                       and r.target.name == n)
            if refs:
                raise OptionError(f"can't delete chain `{n}': it is still referenced "
                                  "(Too many links)")
            if cur.chains[n].rules:
                raise OptionError(f"can't delete chain `{n}': it is not empty "
                                  "(Directory not empty)")
        for n in users:
            del cur.chains[n]

    def _rename(self, cur: _Table, old: str, new: str) -> None:
        ch = cur.chains.get(old)
        if ch is None:
            raise OptionError(f"can't rename chain `{old}': No chain/target/match by that "
                              "name")
        if ch.policy is not None:
            raise OptionError(f"can't rename built-in chain `{old}'")
        if new in cur.chains:
            raise OptionError(f"chain `{new}' already exists")
        if ext.is_target_name(new):
            raise OptionError("chain name may not clash with target name")
        ch.name = new
        cur.chains = {(new if k == old else k): v for k, v in cur.chains.items()}
        for c in cur.chains.values():
            c.rules[:] = [_retarget(r, old, new) for r in c.rules]


def _zeroed(r: Rule) -> Rule:
    return Rule(r.ip, r.matches, r.target, (0, 0), r.src, r.text)


def _retarget(r: Rule, old: str, new: str) -> Rule:
    t = r.target
    if t.kind in ("jump", "goto") and t.name == old:
        return Rule(r.ip, r.matches, Target(t.kind, new), r.counters, r.src, r.text)
    return r


def parse_ruleset(text: str, file: str = "<rules>", family: int = 4,
                  counters: bool = False, sets: Any = None) -> Ruleset:
    """The same as ``load`` (the name the front ends use)."""
    return load(text, file, family, counters, sets)
