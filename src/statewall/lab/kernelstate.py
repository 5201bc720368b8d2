"""Reading the kernel's conntrack state in a namespace: table listings and the event stream.

Owns: ``conntrack -L`` + ``/proc/net/nf_conntrack`` snapshots (taken by one shell in the
namespace, so both describe the same instant give or take a few ms), ``conntrack -S``
counters, and a ``conntrack -E -o timestamp`` listener running for the whole recording.
Must not know: scenarios, captures, how the snapshots are matched to packets.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Final

from statewall.lab.netns import Role, Topology

_SEP: Final = "@@statewall-lab@@"


@dataclass(frozen=True, slots=True)
class TableSnapshot:
    """The conntrack table at one moment: ``conntrack -L`` and ``/proc`` lines."""

    start_ns: int  # just before the listing command started
    end_ns: int  # when it returned
    conntrack: list[str]
    proc: list[str]

    def to_json(self) -> dict[str, object]:
        return {"ts": round(self.start_ns / 1e9, 6), "ts_ns": self.start_ns,
                "conntrack": self.conntrack, "proc": self.proc}


def snapshot(topo: Topology, role: Role = "fw") -> TableSnapshot:
    """List the conntrack table of ``role``'s namespace (both families)."""
    start = time.time_ns()
    r = topo.run(role, ["sh", "-c",
                        f"conntrack -L 2>/dev/null; echo {_SEP}; cat /proc/net/nf_conntrack"])
    end = time.time_ns()
    ct, _, proc = r.stdout.partition(_SEP + "\n")
    return TableSnapshot(start, end, [ln for ln in ct.splitlines() if ln.strip()],
                         [ln for ln in proc.splitlines() if ln.strip()])


def stats(topo: Topology, role: Role = "fw") -> list[str]:
    """``conntrack -S`` (per-CPU counters: found, invalid, insert_failed, drop, ...)."""
    r = topo.run(role, ["conntrack", "-S"], check=False)
    return [ln for ln in r.stdout.splitlines() if ln.strip()]


def tool_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, argv in (("kernel", ["uname", "-r"]), ("conntrack", ["conntrack", "--version"]),
                       ("iptables", ["iptables", "--version"])):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, check=False)
            out[name] = (r.stdout or r.stderr).strip()
        except OSError as exc:
            out[name] = f"unavailable: {exc}"
    return out


class EventLog:
    """``conntrack -E -o timestamp`` in ``role``'s namespace, into a temporary file."""

    def __init__(self, topo: Topology, role: Role = "fw") -> None:
        self._topo = topo
        self._role = role
        self._file = tempfile.TemporaryFile()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, settle: float = 0.3) -> EventLog:
        self._proc = self._topo.popen(self._role, ["conntrack", "-E", "-o", "timestamp"],
                                      stdout=self._file, stderr=subprocess.DEVNULL,
                                      stdin=subprocess.DEVNULL)
        time.sleep(settle)  # let it subscribe before the first packet
        return self

    def stop(self, settle: float = 0.3) -> list[str]:
        """Give pending events time to arrive, stop the listener, return its lines."""
        if self._proc is not None:
            time.sleep(settle)
            self._topo.stop(self._proc, signal.SIGINT)
            self._proc = None
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return [ln.rstrip() for ln in text.splitlines() if ln.strip()]
