"""Live mode configuration and rule loading.

Owns: ``Config`` (everything ``statewall run`` was told), the queue-range syntax, the
state file name of each worker, loading both rule files as one unit (``load_rules``: a
rule set with any error is refused whole) and building the ``Firewall`` for a worker.
Must not know: NFQUEUE, signals, processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..conntrack.core import Tracker
from ..conntrack.sysctl import Settings
from ..io.config import LoadError, load_ipsets, load_ruleset, load_settings
from ..firewall import Firewall
from ..host import HostModel


class RulesError(Exception):
    """A rule set that cannot be loaded (the message names file and line)."""


@dataclass
class Config:
    rules4: str | None = None
    rules6: str | None = None
    ipsets: list[str] = field(default_factory=list)     # ipset save files (-m set, -j SET)
    sysctls: list[str] = field(default_factory=list)
    profile: str = "linux"
    first_queue: int = 0
    last_queue: int = 0
    state_file: str | None = None
    fail_open: bool = False
    kernel_setup: bool = True
    backend: str = "iptables"
    checkpoint: float = 60.0         # seconds between checkpoints (0: none)
    stats_interval: float = 60.0     # seconds between stats log lines (0: none)
    control: str | None = None       # control socket path
    queue_maxlen: int = 4096
    log_level: str = "info"
    trace: str | None = None         # per-packet JSON lines (one file per worker)
    ipv6: bool = True
    flows: str | None = None         # flow records: SQLite path or postgresql:// URL
    metrics: str | None = None       # --metrics ADDR:PORT: the Prometheus endpoint

    @property
    def queues(self) -> list[int]:
        return list(range(self.first_queue, self.last_queue + 1))

    def state_path(self, queue: int) -> str | None:
        """The worker's own state file: PATH with one queue, PATH.<queue> with several."""
        if self.state_file is None:
            return None
        if self.first_queue == self.last_queue:
            return self.state_file
        return f"{self.state_file}.{queue}"

    def trace_path(self, queue: int) -> str | None:
        if self.trace is None or self.trace == "-":
            return self.trace
        if self.first_queue == self.last_queue:
            return self.trace
        return f"{self.trace}.{queue}"


def parse_queues(text: str) -> tuple[int, int]:
    """``N`` or ``A-B`` (0..65535, A <= B)."""
    try:
        if "-" in text:
            a, b = (int(x) for x in text.split("-", 1))
        else:
            a = b = int(text)
    except ValueError:
        raise ValueError(f"bad queue range {text!r} (N or A-B)") from None
    if not (0 <= a <= b <= 65535):
        raise ValueError(f"bad queue range {text!r} (0..65535, A <= B)")
    return a, b


def build_settings(profile: str, items: list[str]) -> Settings:
    return load_settings(profile, items)


# (rules4, rules6): whatever the rule engine's parser returns, or None for "no rules"
Rules = tuple[Any, Any]
Loader = Callable[[Config], Rules]
Builder = Callable[[Settings, Tracker, Rules, HostModel], Firewall]


def _parse_file(path: str, family: int, sets: Any = None) -> Any:
    """One iptables-save file through the rule engine's parser (issue 3)."""
    try:
        return load_ruleset(path, family, sets)
    except LoadError as e:
        raise RulesError(str(e)) from None


def load_rules(cfg: Config) -> Rules:
    """Both rule files (and the IP sets they name, read again with them), or RulesError:
    either both load or neither is used."""
    try:
        sets = load_ipsets(cfg.ipsets)
    except LoadError as e:
        raise RulesError(str(e)) from None
    r4 = _parse_file(cfg.rules4, 4, sets) if cfg.rules4 else None
    r6 = _parse_file(cfg.rules6, 6, sets) if cfg.rules6 else None
    return r4, r6


def build_firewall(settings: Settings, tracker: Tracker, rules: Rules,
                   host: HostModel) -> Firewall:
    """The facade for one worker; the tracker (the table) is kept across reloads."""
    try:
        return Firewall(settings, tracker=tracker, rules4=rules[0], rules6=rules[1],
                        host=host)
    except Exception as e:           # the engine refused to compile what the parser took
        raise RulesError(f"rule set refused: {e}") from None
