"""The kernel lab: record what the real Linux conntrack does with a sequence of packets.

Owns: everything that talks to a live kernel in network namespaces - topology
(``netns``), live capture (``capture``; files go through ``statewall.io.capture``), the kernel's per-packet verdict on ctstate
(``nflog``), table listings and events (``kernelstate``), pacing of real programs
(``delayline``), scenarios as data (``scenario``, ``craft``) and running them into
recordings (``record``).  It is edge (I/O) code and the engine of ``corpus/`` and of
``statewall kernel-diff`` (``statewall.kerneldiff``), which also builds labs with any set of
interfaces (``LinkSpec``) from a capture.
Must not know: statewall's tracker (recordings are the yardstick it is measured against).
Importing it never imports scapy; only scenario files and ``craft`` helpers (inside their
functions) do.

Typical use::

    from statewall.lab import Scenario, Send, record
    rec = record(Scenario("x", "doc", [Send("client", pkt, 0.1)]))
    rec.kernel_json()["packets"]   # per packet: n, ts, iface, ctstate, dir, entry, ...
    rec.write("corpus/x")          # capture.pcapng + kernel.json
"""

from statewall.lab.netns import LabError, LinkSpec, Topology, lab_available, reap_stale
from statewall.lab.record import Recording, record, record_to
from statewall.lab.scenario import (FW, Run, Scenario, Send, Sleep, Snapshot, corpus_files,
                                    load_scenario)

__all__ = [
    "FW", "LabError", "LinkSpec", "Recording", "Run", "Scenario", "Send", "Sleep", "Snapshot",
    "Topology",
    "corpus_files", "lab_available", "load_scenario", "reap_stale", "record", "record_to",
]
