"""Scenarios: what to do to the lab, as data.  One scenario per ``corpus/<name>.py``.

Owns: the step types (``Send`` a crafted packet from a side - a peer, or ``"fw"`` itself
through its OUTPUT path -, ``Sleep``, ``Snapshot`` the table, ``Run`` real programs in the
peers), the ``Scenario`` record (sysctls for fw, iptables/ip6tables rules, whether the
peers' stacks answer, which statewall features the comparison needs, the lab's interfaces
for capture replays) and loading scenario files.
Must not know: how a scenario is executed or recorded (``record``).

A scenario file is a Python module defining ``SCENARIO = Scenario(...)``; it may import
scapy to build packets.  A step may also be written as a plain tuple
``(side, packet, delay)``, which means ``Send(side, packet, delay)``.  Packets are scapy
packets or bytes starting at the IPv4/IPv6 header (the lab adds the Ethernet header
addressed to fw's MAC), or scapy ``Ether`` frames used as they are.
"""

from __future__ import annotations

import importlib.util
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, SupportsBytes, Union

if TYPE_CHECKING:
    from statewall.lab.netns import LinkSpec

Side = str  # "client", "server" (the corpus lab), a capture lab's interface name, or "fw"
FW: str = "fw"  # Send side: fw itself sends the packet (raw socket, OUTPUT path)

# Scenario.requires: statewall features a comparison needs besides the tracker
REQUIRES_RULES = "rules"  # an iptables ruleset that changes the outcome


@dataclass(frozen=True)
class Send:
    """Inject one crafted packet on ``side``'s veth, towards fw (``side="fw"``: fw sends it
    itself through its OUTPUT path); wait ``delay`` seconds (counted from the injection)
    before the next step.  ``at``: inject no earlier than ``at`` seconds after the first
    step started (capture replays keep the capture's timing that way)."""

    side: Side
    packet: object  # scapy Packet (IP/IPv6 or Ether) or L3 bytes
    delay: float = 0.0
    note: str = ""
    at: float | None = None


@dataclass(frozen=True)
class Sleep:
    """Wait (while still recording whatever arrives)."""

    seconds: float


@dataclass(frozen=True)
class Snapshot:
    """Record the conntrack table now (e.g. to see a timeout counting down); ``at``: not
    before that many seconds after the first step started."""

    label: str = ""
    at: float | None = None


Argv = Union[str, Sequence[str]]


@dataclass(frozen=True)
class Run:
    """Real programs: ``server`` starts in the background in the server namespace, after
    ``server_ready`` seconds ``client`` runs in the client namespace until it exits (at most
    ``timeout``), then the lab records for ``quiet`` more seconds and stops the server."""

    client: Argv | None = None
    server: Argv | None = None
    server_ready: float = 0.5
    timeout: float = 30.0
    quiet: float = 1.0
    delay: float = 0.0

    @staticmethod
    def argv(cmd: Argv | None) -> list[str] | None:
        if cmd is None:
            return None
        return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


Step = Union[Send, Sleep, Snapshot, Run]


def packet_bytes(packet: object) -> bytes:
    """The wire bytes of a scenario packet (scapy packet or bytes)."""
    if isinstance(packet, (bytes, bytearray, memoryview)):
        return bytes(packet)
    if isinstance(packet, SupportsBytes):
        return bytes(packet)
    raise TypeError(f"not a packet: {packet!r}")


def is_ethernet(packet: object) -> bool:
    """A scapy ``Ether`` frame (used as is) rather than an IPv4/IPv6 packet."""
    return getattr(packet, "name", None) == "Ethernet"


def l3_bytes(packet: object) -> bytes:
    """The IPv4/IPv6 part of a scenario packet."""
    raw = packet_bytes(packet)
    return raw[14:] if is_ethernet(packet) else raw


def _normalise_step(step: object) -> Step:
    if isinstance(step, (Send, Sleep, Snapshot, Run)):
        return step
    if isinstance(step, tuple) and len(step) in (2, 3):
        side, pkt = step[0], step[1]
        delay = float(step[2]) if len(step) == 3 else 0.0
        return Send(side, pkt, delay)
    raise TypeError(f"not a scenario step: {step!r}")


def sysctl_name(name: str) -> str:
    """``nf_conntrack_udp_timeout`` -> ``net.netfilter.nf_conntrack_udp_timeout``."""
    return name if "." in name else f"net.netfilter.{name}"


SNAPSHOT_POLICIES = ("all", "none")


@dataclass(frozen=True, eq=False)
class Scenario:
    """A named sequence of steps plus the fw configuration to run it under.

    ``rules_v4``/``rules_v6``: iptables-restore / ip6tables-restore text loaded into fw
    (with ``--noflush``) before the lab's own observation rules; ``ipsets``: ``ipset
    restore`` text loaded into fw before them.  ``requires``: what the
    statewall side needs to reproduce the kernel (``"rules"``: the rule engine).
    ``fw_silent``: fw's own stack may not send anything (its TCP resets, ICMP errors, echo
    replies, ND...: raw OUTPUT DROP for every packet not sent by a ``Send("fw", ...)``
    step) - the recorded traffic is then exactly the scenario's; turn it off to see what fw
    answers (``fw_sent``).  ``snapshots``: list the table after every packet (``"all"``),
    after every N-th (an int) or only at ``Snapshot`` steps and the end (``"none"``).
    ``links``: the lab's fw interfaces (capture replays); None = the corpus lab.
    ``any_address``: allow addresses outside the documentation ranges (they still exist
    only inside the lab's namespaces).
    """

    name: str
    description: str
    steps: Sequence[object]
    sysctls: Mapping[str, str | int] = field(default_factory=dict)
    rules_v4: str = ""  # iptables-restore text (applied with --noflush)
    rules_v6: str = ""  # ip6tables-restore text
    ipsets: str = ""  # ipset restore text (before the rules: they may name the sets)
    live_peers: bool | None = None  # default: True iff there is a Run step
    pace: bool | None = None  # space the peers' packets (default: iff live peers)
    settle: float = 0.05  # seconds between seeing a packet and listing the table
    requires: tuple[str, ...] = ()
    fw_silent: bool = True
    snapshots: str | int = "all"
    links: Sequence[LinkSpec] | None = None
    any_address: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(_normalise_step(s) for s in self.steps))
        object.__setattr__(self, "sysctls",
                           {sysctl_name(k): v for k, v in dict(self.sysctls).items()})
        object.__setattr__(self, "requires", tuple(self.requires))
        if not (self.snapshots in SNAPSHOT_POLICIES
                or (isinstance(self.snapshots, int) and self.snapshots > 0)):
            raise ValueError(f"snapshots must be 'all', 'none' or a positive int, "
                             f"not {self.snapshots!r}")
        if self.links is not None:
            object.__setattr__(self, "links", tuple(self.links))

    @property
    def normalised_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if isinstance(s, (Send, Sleep, Snapshot, Run)))

    @property
    def has_programs(self) -> bool:
        return any(isinstance(s, Run) for s in self.steps)

    @property
    def is_live(self) -> bool:
        return self.has_programs if self.live_peers is None else self.live_peers

    @property
    def is_paced(self) -> bool:
        return self.is_live if self.pace is None else self.pace


def load_scenario(path: str | Path) -> Scenario:
    """Import a scenario file and return its ``SCENARIO``."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"statewall_corpus_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load scenario file {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    scn = getattr(mod, "SCENARIO", None)
    if not isinstance(scn, Scenario):
        raise TypeError(f"{path} does not define SCENARIO = Scenario(...)")
    if scn.name != path.stem:
        raise ValueError(f"{path}: SCENARIO.name {scn.name!r} differs from the file name")
    return scn


def corpus_files(corpus_dir: str | Path) -> dict[str, Path]:
    """name -> scenario file for every ``<corpus_dir>/<name>.py`` (``_*.py`` excluded)."""
    d = Path(corpus_dir)
    return {p.stem: p for p in sorted(d.glob("*.py")) if not p.name.startswith("_")}
