"""``statewall iptables`` in a running daemon: the authoritative rule set and its atomic swap.

Owns: the supervisor's copy of each family's rule set (``IptablesControl``: what
``statewall run`` loaded, then every edit made through ``statewall iptables`` /
``iptables-restore``), the supervisor's ``iptables`` control command, and the worker's
``iptables`` control handler (``install_worker``). Must not know: command syntax or output
(``ctl.iptables``), packets.

Choice: the supervisor holds the model. A command runs there against it (``ctl.iptables``);
a change becomes the family's whole new rule set (canonical iptables-save text with the
rules' counters) plus, per chain, where each rule's counters come from. It is applied in
two phases over the workers' control sockets: ``prepare`` (each worker parses and compiles
the new set next to the running one and answers ok or the error) then, only if every
worker prepared, ``commit`` (each worker copies the live counters of the rules that
survived into the new compiled set and swaps: a pointer assignment between two packets);
otherwise ``abort`` everywhere. A refused command therefore changes nothing anywhere. The
tracker (the conntrack table) is kept, as on ``statewall reload``; the state of stateful
matches (recent, hashlimit, quota, limit) restarts, as on a reload. Reads (-L -v, -S -v,
-C, save -c) sum each rule's counters over the workers.

``statewall reload`` (SIGHUP) re-reads the rule files and replaces every edit, as running
``iptables-restore`` of the files would; a worker that is restarted after a crash starts
from the edited set (``worker_loader``). Counters a ``-c``/``--counters`` gives are seeded
into the first worker only, so the sums show them once.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Final

from ..ctl import iptables as ops
from ..rules.listing import Counters
from ..ctl.server import read_reply
from ..rules.model import Rule, Ruleset, Source
from ..rules.parse import _counters_text, _Loader
from . import log as swlog
from .config import Config, Loader, Rules, RulesError

if TYPE_CHECKING:
    from .supervisor import Supervisor
    from .worker import Worker

WORD: Final = "iptables"


def ask(path: str, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """One ``iptables <json>`` request to a worker (or the supervisor); the JSON reply."""
    return ask_all([path], [req], timeout)[0]


def ask_all(paths: list[str], reqs: list[dict[str, Any]], timeout: float = 30.0
            ) -> list[dict[str, Any]]:
    """Send each path its request first, then read the replies: the workers work on
    theirs at the same time. A worker that cannot be reached answers {"ok": False}."""
    socks: list[socket.socket | None] = []
    out: list[dict[str, Any]] = []
    for path, req in zip(paths, reqs):
        sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sk.settimeout(timeout)
            sk.connect(path)
            sk.sendall(f"{WORD} {json.dumps(req)}\n".encode())
            socks.append(sk)
        except OSError as e:
            sk.close()
            socks.append(None)
            out.append({"ok": False, "error": f"{path}: {e}"})
    replies: list[dict[str, Any]] = []
    errors = iter(out)
    for path, s in zip(paths, socks):
        if s is None:
            replies.append(next(errors))
            continue
        try:
            reply = json.loads(read_reply(s))
            replies.append(reply if isinstance(reply, dict) else
                           {"ok": False, "error": f"{path}: bad reply"})
        except (OSError, ValueError) as e:
            replies.append({"ok": False, "error": f"{path}: {e}"})
        finally:
            s.close()
    return replies


# -- the supervisor side --------------------------------------------------------------------
class IptablesControl:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.models: dict[int, Ruleset] = {4: Ruleset(4, ()), 6: Ruleset(6, ())}
        self.present: dict[int, bool] = {4: False, 6: False}
        self.edited = False

    def base(self, rules: Rules) -> None:
        """What the rule files gave (at start and on every successful reload); a loader
        that gives something else than (Ruleset | None, Ruleset | None) leaves empty
        tables to edit."""
        pair = rules if isinstance(rules, tuple) and len(rules) == 2 else (None, None)
        for fam, rs in ((4, pair[0]), (6, pair[1])):
            self.present[fam] = isinstance(rs, Ruleset)
            self.models[fam] = rs if isinstance(rs, Ruleset) else Ruleset(fam, ())
        self.edited = False

    def current(self) -> Rules:
        return tuple(self.models[f] if self.present[f] else None for f in (4, 6))  # type: ignore[return-value]

    def worker_loader(self, files: Loader) -> Loader:
        """A (re)started worker's first rules are the edited set; its reloads read files."""
        if not self.edited:
            return files
        first = [self.current()]

        def load(cfg: Config) -> Rules:
            if first:
                return first.pop()
            return files(cfg)
        return load

    def _paths(self) -> list[str]:
        return self.sup.worker_paths()

    def counters(self, family: int) -> Counters:
        """Every rule's counters summed over the workers."""
        total: Counters = {}
        paths = self._paths()
        for r in ask_all(paths, [{"op": "counters", "family": family}] * len(paths), 10.0):
            for tname, cname, pc, rules in r.get("counters", []):
                key = (str(tname), str(cname))
                got = total.get(key)
                rc = [(int(a), int(b)) for a, b in rules]
                if got is None:
                    total[key] = ((int(pc[0]), int(pc[1])), rc)
                elif len(got[1]) == len(rc):
                    total[key] = ((got[0][0] + pc[0], got[0][1] + pc[1]),
                                  [(x[0] + y[0], x[1] + y[1]) for x, y in zip(got[1], rc)])
        return total

    def apply(self, family: int, change: ops.Change) -> str | None:
        """Prepare everywhere, then commit everywhere (or abort everywhere): None or why."""
        from ..rules.save import save
        text = save(change.ruleset, counters=True)
        origins = {t: {c: [kp, [list(o) if o else None for o in og]]
                       for c, (kp, og) in chains.items()}
                   for t, chains in change.origins.items()}
        paths = self._paths()
        reqs = [{"op": "prepare", "family": family, "text": text, "origins": origins,
                 "seed": k == 0} for k in range(len(paths))]
        replies = ask_all(paths, reqs)
        prepared = [p for p, r in zip(paths, replies) if r.get("ok")]
        bad = [str(r.get("error")) for r in replies if not r.get("ok")]
        error = bad[0] if bad else None
        op = "abort" if error is not None else "commit"
        for p, r in zip(prepared, ask_all(prepared, [{"op": op}] * len(prepared))):
            if not r.get("ok"):
                swlog.event(logging.ERROR, f"iptables {op}: worker did not answer", worker=p,
                            error=str(r.get("error")))
        if error is not None:
            swlog.event(logging.ERROR, "iptables change refused, the running rules stay",
                        error=error)
            return error
        self.models[family] = change.ruleset
        self.present[family] = True
        self.edited = True
        swlog.event(logging.INFO, "rules edited", family=f"ipv{family}", workers=len(paths))
        return None

    def command(self, line: str) -> dict[str, Any]:
        """``iptables <json>``: {"tool": iptables|save|restore, "family": 4|6, "argv": [...],
        "counters", "table", "noflush", "test", "text", "file"} -> {"ok", "rc", "out", "err"}.
        A bug in a command is logged and answered; it never takes the supervisor down."""
        try:
            return self._command(line)
        except Exception as e:
            swlog.get().exception("iptables command failed")
            return {"ok": False, "error": f"internal error: {e!r}"}

    def _command(self, line: str) -> dict[str, Any]:
        try:
            req = json.loads(line[len(WORD) + 1:])
            fam = int(req["family"])
            tool = str(req["tool"])
            if fam not in (4, 6) or tool not in ("iptables", "save", "restore"):
                raise ValueError("bad family or tool")
        except (ValueError, KeyError, TypeError) as e:
            return {"ok": False, "error": f"bad iptables request: {e}"}
        rs = self.models[fam]
        table = req.get("table")
        table = str(table) if table else None
        if tool == "iptables":
            argv = [str(a) for a in req.get("argv", [])]
            res = ops.iptables(rs, argv, lambda: self.counters(fam))
        elif tool == "save":
            live = self.counters(fam) if req.get("counters") else None
            stamp = time.strftime("%a %b %e %H:%M:%S %Y")     # ctime(3), as iptables-save
            res = ops.Outcome(out=ops.save_text(rs, live, table, stamp))
        else:
            res = ops.restore(rs, str(req.get("text", "")), bool(req.get("noflush")),
                              bool(req.get("counters")), table,
                              str(req.get("file") or "<stdin>"))
            if req.get("test"):
                res.change = None
        if res.change is not None:
            why = self.apply(fam, res.change)
            if why is not None:
                name = ops.tool_name(fam, "-restore" if tool == "restore" else "")
                return {"ok": True, "rc": 1, "out": res.out, "err": f"{name}: {why}\n"}
        return {"ok": True, "rc": res.rc, "out": res.out, "err": res.err}


# -- the worker side ------------------------------------------------------------------------
class WorkerIptables:
    """The worker's ``iptables`` handler: counters, prepare, commit, abort."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.pending: tuple[Any, int, dict[str, Any], bool] | None = None
        self.parsed: dict[int, dict[tuple[str, str, frozenset[str]], Any]] = {4: {}, 6: {}}

    def handle(self, line: str, now: float) -> dict[str, Any]:
        try:
            return self._handle(line)
        except Exception as e:                   # a bug: logged, the packet loop goes on
            self.pending = None
            swlog.get().exception("iptables request failed")
            return {"ok": False, "error": f"internal error: {e!r}"}

    def _handle(self, line: str) -> dict[str, Any]:
        try:
            req = json.loads(line[len(WORD) + 1:])
            op = str(req["op"])
        except (ValueError, KeyError, TypeError) as e:
            return {"ok": False, "error": f"bad iptables request: {e}"}
        if op == "counters":
            eng = self._engine(self.w.fw, int(req.get("family", 4)))
            if eng is None:
                return {"ok": True, "counters": []}
            return {"ok": True, "counters": [[t, c, list(pc), [list(x) for x in rc]]
                                             for (t, c), (pc, rc) in eng.counters().items()]}
        if op == "prepare":
            return self._prepare(req)
        if op == "commit":
            return self._commit()
        if op == "abort":
            self.pending = None
            return {"ok": True}
        return {"ok": False, "error": f"unknown iptables op {op!r}"}

    @staticmethod
    def _engine(fw: Any, family: int) -> Any:
        return fw.engine6 if family == 6 else fw.engine4

    def _prepare(self, req: dict[str, Any]) -> dict[str, Any]:
        from ..rules.errors import ConfigError
        w = self.w
        fam = int(req.get("family", 4))
        try:
            mine = self._engine(w.fw, fam)
            other = self._engine(w.fw, 10 - fam)
            # the worker's own IP sets (from the files it loaded) stay those of the edit
            sets = next((e.ruleset.sets for e in (mine, other)
                         if e is not None and e.ruleset.sets is not None), None)
            loader = CachedLoader("<iptables>", fam, self.parsed[fam], sets)
            rs = loader.run(str(req["text"]))
            self.parsed[fam] = loader.used
            rules = (rs, other.ruleset if other else None) if fam == 4 else \
                (other.ruleset if other else None, rs)
            new = w.builder(w.settings, w.tracker, rules, w.host)
        except (ConfigError, RulesError, KeyError, ValueError) as e:
            self.pending = None
            return {"ok": False, "error": str(e)}
        self.pending = (new, fam, dict(req.get("origins") or {}), bool(req.get("seed")))
        return {"ok": True}

    def _commit(self) -> dict[str, Any]:
        import gc
        if self.pending is None:
            return {"ok": False, "error": "nothing prepared"}
        new, fam, origins, seed = self.pending
        self.pending = None
        w = self.w
        old = self._engine(w.fw, fam)
        copy_counters(old.counters() if old is not None else {},
                      self._engine(new, fam), origins, seed)
        new.defrag = w.fw.defrag
        w.fw = new
        gc.collect()
        gc.freeze()
        w.counters["reloads"] += 1
        swlog.event(logging.INFO, "rules edited", entries=len(w.tracker.table))
        return {"ok": True}


class CachedLoader(_Loader):
    """The restore parser (counters kept) that reuses the rules it parsed for the previous
    change: an edit re-parses only the lines that are new, so a worker's pause for a
    change of a large rule set is mostly the compile. ``cache`` maps (table, line without
    its counters, the table's user chains) to (chain, the rules the line made); ``used``
    is the cache for the next change (only what this rule set has: bounded)."""

    def __init__(self, file: str, family: int, cache: dict[Any, Any],
                 sets: Any = None) -> None:
        super().__init__(file, family, True, sets)
        self.cache = cache
        self.used: dict[Any, Any] = {}

    def _rule_line(self, line: str) -> None:
        cur = self.cur
        assert cur is not None
        body = line.strip()
        ctr = (0, 0)
        if body.startswith("["):
            end = body.find("]")
            got = _counters_text(body[:end + 1]) if end > 0 else None
            if got is None:
                super()._rule_line(line)
                return
            ctr, body = got, body[end + 1:].strip()
        words = body.split(None, 2)
        if len(words) < 2 or words[0] != "-A" or words[1] not in cur.chains:
            super()._rule_line(line)
            return
        chain = cur.chains[words[1]]
        key = (cur.name, body, cur.user_chains())
        hit = self.cache.get(key)
        if hit is None:
            n = len(chain.rules)
            super()._rule_line(line)
            hit = tuple((r.ip, r.matches, r.target) for r in chain.rules[n:])
        else:
            src = Source(self.file, self.lineno)
            chain.rules.extend(Rule(ip, m, t, ctr, src, line.strip()) for ip, m, t in hit)
        self.used[key] = hit


def copy_counters(old: Counters, engine: Any, origins: dict[str, Any], seed: bool) -> None:
    """Fill the new compiled tables' counters: a surviving rule gets its old live counters,
    a new (or zeroed) rule the counters the rule set gave (the first worker only)."""
    for tname, t in engine.tables.items():
        per = origins.get(tname, {})
        pos = [0] * len(t.names)
        for k, ci in enumerate(t.chain_of):
            n = pos[ci]
            pos[ci] += 1
            og = per.get(t.names[ci])
            src = og[1][n] if og is not None and n < len(og[1]) else None
            got = old.get((tname, src[0])) if src else None
            if got is not None and src is not None and src[1] < len(got[1]):
                t.pkts[k], t.bytes[k] = got[1][src[1]]
            elif not seed:
                t.pkts[k] = t.bytes[k] = 0
        for ci, name in enumerate(t.names):
            og = per.get(name)
            got = old.get((tname, name))
            if og is not None and og[0] and got is not None:
                t.ppkts[ci], t.pbytes[ci] = got[0]
            elif not seed:
                t.ppkts[ci] = t.pbytes[ci] = 0


def install_worker(worker: Worker) -> None:
    """Register the worker's ``iptables`` control handler (needs ``worker.ctl``)."""
    if worker.ctl is not None:
        worker.ctl.handlers[WORD] = WorkerIptables(worker).handle


def install_supervisor(sup: Supervisor) -> IptablesControl:
    ctl = IptablesControl(sup)
    sup.commands[WORD] = ctl.command
    return ctl

