"""How a long packet loop uses Python's cyclic garbage collector.

A packet loop allocates a few objects per packet that die at once (reference counting frees
them) and keeps many long-lived ones (table entries, compiled rules) that hold no reference
cycles worth finding. With the default thresholds (a young collection every 700 net
allocations, a full one every 100 young ones) the collector runs every few hundred packets
and its full collections walk the whole table: measured on the bench capture, 10-15 % of a
replay's time, growing with the table. ``for_packet_loop()`` freezes what exists (modules,
the compiled rule set: never scanned again) and raises the thresholds, so collections
still happen (cycles are still found) but rarely.

The live worker goes further (automatic collection off, young generations collected every
few thousand packets, a full collection every ten minutes: live/worker.py), because there a
collection is also a latency spike for the packet that waits.
Owns: the thresholds. Must not know: packets.
"""

from __future__ import annotations

import gc
from typing import Final

THRESHOLDS: Final = (50_000, 20, 100)


def for_packet_loop() -> tuple[int, int, int]:
    """Freeze what exists and raise the thresholds; returns the old ones."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return old
