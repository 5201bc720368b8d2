"""Scenarios: what to do to the lab, as data.  One scenario per ``corpus/<name>.py``.

Owns: the step types (``Send`` a crafted packet from a side, ``Sleep``, ``Snapshot`` the
table, ``Run`` real programs in the peers), the ``Scenario`` record (sysctls for fw, extra
iptables/ip6tables rules, whether the peers' stacks answer) and loading scenario files.
Must not know: how a scenario is executed or recorded (``record``), namespaces.

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
from typing import Literal, SupportsBytes, Union

Side = Literal["client", "server"]


@dataclass(frozen=True)
class Send:
    """Inject one crafted packet on ``side``'s veth, towards fw; wait ``delay`` seconds
    (counted from the injection) before the next step."""

    side: Side
    packet: object  # scapy Packet (IP/IPv6 or Ether) or L3 bytes
    delay: float = 0.0
    note: str = ""

    def __post_init__(self) -> None:
        if self.side not in ("client", "server"):
            raise ValueError(f"Send side must be 'client' or 'server', not {self.side!r}")


@dataclass(frozen=True)
class Sleep:
    """Wait (while still recording whatever arrives)."""

    seconds: float


@dataclass(frozen=True)
class Snapshot:
    """Record the conntrack table now (e.g. to see a timeout counting down)."""

    label: str = ""


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


@dataclass(frozen=True, eq=False)
class Scenario:
    """A named sequence of steps plus the fw configuration to run it under."""

    name: str
    description: str
    steps: Sequence[object]
    sysctls: Mapping[str, str | int] = field(default_factory=dict)
    rules_v4: str = ""  # extra iptables-restore text (applied with --noflush)
    rules_v6: str = ""  # extra ip6tables-restore text
    live_peers: bool | None = None  # default: True iff there is a Run step
    pace: bool | None = None  # space the peers' packets (default: iff live peers)
    settle: float = 0.05  # seconds between seeing a packet and listing the table

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(_normalise_step(s) for s in self.steps))
        object.__setattr__(self, "sysctls",
                           {sysctl_name(k): v for k, v in dict(self.sysctls).items()})

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
