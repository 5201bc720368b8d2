"""The connection table: one dict for both directions, expiry buckets, early-drop order.

Owns: the hash (``tuple -> Conn`` for the original and the reply tuple of every confirmed
entry), the entry count (unconfirmed entries included, as ``nf_conntrack_count``), expiry
bookkeeping, the order in which non-ASSURED entries are offered to early drop, ids.
Must not know: protocols, packets, events, formatting. Follows the data side of
net/netfilter/nf_conntrack_core.c (hash, ``nf_conntrack_count``, ``early_drop``, gc).

Expiry: an entry is dead once ``now >= ct.timeout``; lookups treat it as absent (the caller
reaps it). ``expire(now)`` sweeps time buckets instead of walking the table or keeping a
timer per entry: an entry is filed in the bucket of its timeout, at a granularity that grows
with the distance (1 s near, 64 s within ~1 h, 4096 s beyond), and re-filed only when a sweep
finds it still alive or when a refresh moves its timeout before its bucket's key. A refresh
that only extends the timeout costs nothing; the sweep re-files it. So each entry has at most
a few stale references, whatever the packet rate. Bucket keys: 64 s and 4096 s windows are
keyed by their start (swept as soon as the window opens, survivors re-filed finer); 1 s
buckets too, and an entry still alive when its second's bucket is swept is filed under its
exact timeout, so a sweep at any ``now`` reports exactly the entries dead by then.
"""

from __future__ import annotations

from itertools import islice
from typing import Final, Iterator

from .conn import IPS_ASSURED, IPS_CONFIRMED, Conn, Tuple

_FINE: Final = 1.0
_MID: Final = 64.0
_COARSE: Final = 4096.0
_INF: Final = float("inf")


def _bucket_of(timeout: float, now: float) -> float:
    """Bucket key: when to look at the entry again (see the module header)."""
    delta = timeout - now
    if delta < _MID:
        return (timeout // _FINE) * _FINE           # start of its second
    if delta < _COARSE:
        return (timeout // _MID) * _MID             # start of its 64 s window (> now)
    return (timeout // _COARSE) * _COARSE           # start of its 4096 s window (> now)


class Table:
    """Confirmed entries, both directions in one dict, and the global entry count."""

    __slots__ = ("hash", "count", "confirmed", "buckets", "unassured", "next_id", "soonest")

    def __init__(self) -> None:
        self.hash: dict[Tuple, Conn] = {}
        self.count = 0                               # nf_conntrack_count (incl. unconfirmed)
        self.buckets: dict[float, list[Conn]] = {}   # bucket key -> entries filed there
        self.soonest = _INF                          # smallest bucket key (sweep not before)
        self.unassured: dict[Conn, None] = {}        # confirmed non-ASSURED, oldest first
        self.confirmed = 0                           # entries in the hash
        self.next_id = 1

    def __len__(self) -> int:
        return self.confirmed

    # -- lookups -------------------------------------------------------------------------
    def get(self, key: Tuple) -> Conn | None:
        return self.hash.get(key)

    def entries(self) -> Iterator[Conn]:
        """Confirmed entries once each, in insertion order (live or not yet reaped)."""
        # the dict keeps the key object first inserted, so identity picks the original
        # direction's slot, also when both tuples are equal (generic self-talk)
        for key, ct in list(self.hash.items()):
            if key is ct.orig:
                yield ct

    # -- membership ----------------------------------------------------------------------
    def insert(self, ct: Conn, now: float) -> None:
        """Put a confirmed entry in the hash (caller checked for clashes)."""
        self.hash[ct.orig] = ct
        self.hash[ct.reply] = ct
        ct.status |= IPS_CONFIRMED
        self.confirmed += 1
        if not ct.status & IPS_ASSURED:
            self.unassured[ct] = None
        self.file(ct, now)

    def remove(self, ct: Conn) -> None:
        """Unlink a confirmed entry (its bucket references go stale and are skipped)."""
        h = self.hash
        if h.get(ct.orig) is ct:
            del h[ct.orig]
            self.confirmed -= 1
        if h.get(ct.reply) is ct:
            del h[ct.reply]
        self.unassured.pop(ct, None)
        ct.bucket = -1

    def assured(self, ct: Conn) -> None:
        """The entry became ASSURED: no longer an early-drop candidate."""
        self.unassured.pop(ct, None)

    # -- expiry --------------------------------------------------------------------------
    def file(self, ct: Conn, now: float) -> None:
        """(Re)file a confirmed entry by its current timeout if that moved it earlier."""
        b = _bucket_of(ct.timeout, now)
        if ct.bucket == -1 or b < ct.bucket:
            self._put(ct, b)

    def _put(self, ct: Conn, b: float) -> None:
        ct.bucket = b
        lst = self.buckets.get(b)
        if lst is None:
            self.buckets[b] = [ct]
            if b < self.soonest:
                self.soonest = b
        else:
            lst.append(ct)

    def due(self, now: float) -> Iterator[Conn]:
        """Entries whose timeout has passed, each once; still-alive ones are re-filed.

        The caller must remove (kill) every entry yielded before asking for more.
        """
        buckets = self.buckets
        while buckets:
            first = min(buckets)
            if first > now:
                break
            lst = buckets.pop(first)
            for ct in lst:
                if ct.bucket != first:
                    continue                    # stale reference: re-filed or removed
                ct.bucket = -1
                t = ct.timeout
                if t <= now:
                    yield ct
                elif t - now < _FINE:
                    self._put(ct, t)            # its last second: look again exactly then
                else:
                    self.file(ct, now)          # files it under a key > now
        self.soonest = min(buckets) if buckets else _INF

    def next_deadline(self) -> float | None:
        """The time of the next sweep that may have something to do, or None."""
        return None if not self.buckets else self.soonest

    def early_drop_candidates(self) -> Iterator[Conn]:
        """Non-ASSURED confirmed entries, oldest first (``early_drop``'s victims)."""
        return iter(list(islice(self.unassured, 8)))
