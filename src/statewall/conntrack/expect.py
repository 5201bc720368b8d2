"""Expectations: connections a helper announced before their first packet (sans-I/O).

Owns: ``Expectation`` (tuple + mask, master, class, flags, timeout), ``ExpectTable`` (the
per-namespace expectation table: registration with the kernel's replacement, clash and limit
rules, lookup for a new connection, removal with the master, expiry, the
``conntrack -S expect`` counters and ``IPEXP_*`` events). Must not know: packets, protocol
parsing (helpers build expectations), output formats.
Follows net/netfilter/nf_conntrack_expect.c (``nf_ct_expect_init``, ``__nf_ct_expect_check``,
``nf_ct_expect_insert``, ``evict_oldest_expect``, ``nf_ct_find_expectation``,
``nf_ct_remove_expectations``, ``nf_ct_unlink_expect_report``) and, for the ``linux-2.4``
profile, ip_conntrack_core.c of Linux 2.4.0 (``ip_conntrack_expect_related``: one
expectation per master, replaced by the next, no timer, no global limit).

An expectation's destination (address, port, protocol) is always exact; its source address
and port are masked (a helper uses an exact address and any port). Expectations are kept per
destination, newest first, like the kernel's hash chains; every operation touches only the
few expectations with the same destination or the same master. Expiry uses a heap of
deadlines with lazy deletion, compacted when it holds mostly dead entries, so the memory is
bounded by the live expectations (themselves bounded by ``nf_conntrack_expect_max``).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Callable, Final, NamedTuple

from .conn import IPS_CONFIRMED, IPS_DYING

if TYPE_CHECKING:
    from .conn import Conn
    from .sysctl import Settings

# expectation flags (include/uapi/linux/netfilter/nf_conntrack_common.h)
NF_CT_EXPECT_PERMANENT: Final = 0x1
NF_CT_EXPECT_INACTIVE: Final = 0x2
NF_CT_EXPECT_USERSPACE: Final = 0x4

NF_CT_EXPECT_CLASS_DEFAULT: Final = 0

# expectation events (enum ip_conntrack_expect_events)
IPEXP_NEW: Final = 1 << 0
IPEXP_DESTROY: Final = 1 << 1

# errors of ExpectTable.related (negative errno, as the kernel returns them)
EALREADY: Final = -114
EBUSY: Final = -16
EMFILE: Final = -24
ESHUTDOWN: Final = -108

EXPECT_STAT_NAMES: Final = ("expect_new", "expect_create", "expect_delete")

_INF: Final = float("inf")

# Event sink for expectations: (now, IPEXP_* bits, expectation) -> None
ExpectSink = Callable[[float, int, "Expectation"], None]


class ExpectPolicy(NamedTuple):
    """``struct nf_conntrack_expect_policy``: per helper and expectation class."""

    max_expected: int     # 0: unlimited
    timeout: int          # seconds from registration
    name: str = ""


class Expectation:
    """``struct nf_conntrack_expect``.

    The tuple: l3num, proto, src (masked by ``smask``), sport (masked by ``sport_mask``),
    dst, dport (exact). ``skind`` classifies the address mask for the fast path: 0 any,
    1 exact, 2 partial. master: the Conn whose helper created it; zone: the master's zone.
    cls: expectation class; flags: NF_CT_EXPECT_*; helper: the helper the expected
    connection gets (None for FTP/TFTP); timeout: absolute deadline (None: no timer, 2.4);
    id: registration order; live: still in the table.
    """

    __slots__ = ("l3num", "proto", "src", "smask", "skind", "sport", "sport_mask", "dst",
                 "dport", "zone", "master", "cls", "flags", "helper", "timeout", "id", "live")

    l3num: int
    proto: int
    src: bytes
    smask: bytes
    skind: int
    sport: int
    sport_mask: int
    dst: bytes
    dport: int
    zone: int
    master: Conn
    cls: int
    flags: int
    helper: Any
    timeout: float | None
    id: int
    live: bool

    def __init__(self, master: Conn, cls: int, l3num: int, src: bytes | None, dst: bytes,
                 proto: int, sport: int | None, dport: int, smask: bytes | None = None) -> None:
        """``nf_ct_expect_init``: ``src`` None means any source address, ``sport`` None any
        source port; ``smask`` (with ``src``) a partial address mask."""
        n = 4 if l3num == 2 else 16
        self.master = master
        self.cls = cls
        self.l3num = l3num
        self.proto = proto
        if src is None:
            self.src = bytes(n)
            self.smask = bytes(n)
            self.skind = 0
        else:
            m = b"\xff" * n if smask is None else smask
            self.smask = m
            self.src = bytes(a & b for a, b in zip(src[:n], m))
            self.skind = 1 if m == b"\xff" * n else (0 if not any(m) else 2)
        self.sport_mask = 0 if sport is None else 0xFFFF
        self.sport = 0 if sport is None else sport & 0xFFFF
        self.dst = dst[:n]
        self.dport = dport & 0xFFFF
        self.zone = master.zone
        self.flags = 0
        self.helper = None
        self.timeout = None
        self.id = 0
        self.live = False

    @property
    def key(self) -> tuple[bytes, int, int, int]:
        """What the kernel hashes on: destination address, port, protocol (+ zone)."""
        return (self.dst, self.dport, self.proto, self.zone)

    def matches(self, src: bytes, sport: int) -> bool:
        """``nf_ct_tuple_mask_cmp`` for the source part (the destination is the key)."""
        if (sport & self.sport_mask) != self.sport:
            return False
        k = self.skind
        if k == 1:
            return src == self.src
        if k == 0:
            return True
        return bytes(a & b for a, b in zip(src, self.smask)) == self.src

    def same(self, other: Expectation) -> bool:
        """``expect_matches``: equal tuple and mask (the key is already equal)."""
        return (self.src == other.src and self.smask == other.smask
                and self.sport == other.sport and self.sport_mask == other.sport_mask
                and self.l3num == other.l3num)

    def clash(self, other: Expectation) -> bool:
        """``expect_clash``: equal under the intersection of both source masks."""
        if self.l3num != other.l3num:
            return False
        pm = self.sport_mask & other.sport_mask
        if (self.sport & pm) != (other.sport & pm):
            return False
        return all((a ^ b) & m1 & m2 == 0
                   for a, b, m1, m2 in zip(self.src, other.src, self.smask, other.smask))

    def remaining(self, now: float) -> int:
        """Seconds left as the kernel prints them (``(expires - jiffies) / HZ``, >= 0)."""
        if self.timeout is None:
            return 0
        left = self.timeout - now
        return int(left) if left > 0 else 0

    def __repr__(self) -> str:
        return (f"<Expectation id={self.id} proto={self.proto} dst={self.dst.hex()}:"
                f"{self.dport} master={self.master.id}>")


class ExpectTable:
    """The expectations of one tracker, per destination (newest first), plus expiry."""

    __slots__ = ("by_dst", "count", "settings", "heap", "soonest", "sink", "stats",
                 "next_id")

    def __init__(self, settings: Settings) -> None:
        self.by_dst: dict[tuple[bytes, int, int, int], list[Expectation]] = {}
        self.count = 0                       # cnet->expect_count
        self.settings = settings
        self.heap: list[tuple[float, int, Expectation]] = []
        self.soonest = _INF                  # no expectation expires before this
        self.sink: ExpectSink | None = None
        self.stats: dict[str, int] = dict.fromkeys(EXPECT_STAT_NAMES, 0)
        self.next_id = 1

    def __len__(self) -> int:
        return self.count

    # -- registration ------------------------------------------------------------------
    def related(self, exp: Expectation, now: float) -> int:
        """``nf_ct_expect_related``: register ``exp`` (0) or refuse it (negative errno).

        An identical expectation of the same master is replaced; one that overlaps under
        both masks (from any master) refuses with -EBUSY; if the master already has its
        helper's ``max_expected`` of this class the oldest goes; a full table
        (``nf_conntrack_expect_max``) refuses with -EMFILE."""
        if now >= self.soonest:
            self.expire(now)
        master = exp.master
        help = master.help
        if help is None:
            return ESHUTDOWN
        lst = self.by_dst.get(exp.key)
        if lst:
            for i in list(lst):
                if i.master is master and i.same(exp):
                    if i.cls != exp.cls:
                        return EALREADY
                    self._unlink(i, now)
                    break
                if i.clash(exp):
                    return EBUSY
        helper = help.helper
        timeout: float | None = None
        if helper is not None:
            p: ExpectPolicy = helper.policy[exp.cls]
            if p.max_expected and self._expecting(help, exp.cls) >= p.max_expected:
                self._evict_oldest(help, exp.cls, now)
                if self._expecting(help, exp.cls) >= p.max_expected:
                    return EMFILE
            timeout = now + p.timeout
        if self.count >= self.settings.nf_conntrack_expect_max:
            return EMFILE                    # "nf_conntrack: expectation table full"
        self._insert(exp, now, timeout)
        return 0

    def related_24(self, exp: Expectation, now: float) -> int:
        """Linux 2.4.0 ``ip_conntrack_expect_related``: a master has at most one
        expectation (the new one replaces it), -EBUSY if it clashes with another master's,
        no timer, no global limit."""
        help = exp.master.help
        if help is None:
            return ESHUTDOWN
        for old in list(help.expectations):
            self._unlink(old, now)
        for i in self.by_dst.get(exp.key, ()):
            if i.clash(exp):
                return EBUSY
        self._insert(exp, now, None)
        return 0

    @staticmethod
    def _expecting(help: Any, cls: int) -> int:
        return sum(1 for e in help.expectations if e.cls == cls)

    def _evict_oldest(self, help: Any, cls: int, now: float) -> None:
        """``evict_oldest_expect``: the master's oldest expectation of this class."""
        last: Expectation | None = None
        for e in help.expectations:          # newest first
            if e.cls == cls:
                last = e
        if last is not None:
            self._unlink(last, now)

    def _insert(self, exp: Expectation, now: float, timeout: float | None) -> None:
        """``nf_ct_expect_insert`` + the IPEXP_NEW event."""
        exp.id = self.next_id
        self.next_id += 1
        exp.timeout = timeout
        exp.live = True
        lst = self.by_dst.get(exp.key)
        if lst is None:
            self.by_dst[exp.key] = [exp]
        else:
            lst.insert(0, exp)
        help = exp.master.help
        assert help is not None
        help.expectations.insert(0, exp)
        self.count += 1
        self.stats["expect_create"] += 1
        if timeout is not None:
            heapq.heappush(self.heap, (timeout, exp.id, exp))
            if timeout < self.soonest:
                self.soonest = timeout
        if self.sink is not None:
            self.sink(now, IPEXP_NEW, exp)

    def _unlink(self, exp: Expectation, now: float) -> None:
        """``nf_ct_unlink_expect_report``: out of the table and the master's list, count,
        IPEXP_DESTROY event."""
        if not exp.live:
            return
        exp.live = False
        key = exp.key
        lst = self.by_dst[key]
        lst.remove(exp)
        if not lst:
            del self.by_dst[key]
        help = exp.master.help
        assert help is not None
        help.expectations.remove(exp)
        self.count -= 1
        self.stats["expect_delete"] += 1
        heap = self.heap
        if len(heap) > 64 and len(heap) > 4 * self.count:
            self.heap = heap = [(e.timeout, e.id, e) for _, _, e in heap
                                if e.live and e.timeout is not None]
            heapq.heapify(heap)
            self.soonest = heap[0][0] if heap else _INF
        if self.sink is not None:
            self.sink(now, IPEXP_DESTROY, exp)

    # -- use ---------------------------------------------------------------------------
    def find(self, key: tuple[bytes, bytes, int, int, int, int], now: float
             ) -> Expectation | None:
        """``nf_ct_find_expectation`` for a new connection's original tuple: the newest
        active expectation that matches, if its master is confirmed and alive; it is
        unlinked (unless PERMANENT)."""
        if now >= self.soonest:
            self.expire(now)
        lst = self.by_dst.get((key[1], key[4], key[2], key[5]))
        if not lst:
            return None
        src = key[0]
        sport = key[3]
        for e in lst:
            if not e.flags & NF_CT_EXPECT_INACTIVE and e.matches(src, sport):
                break
        else:
            return None
        st = e.master.status
        if not st & IPS_CONFIRMED or st & IPS_DYING:
            return None
        if not e.flags & NF_CT_EXPECT_PERMANENT:
            self._unlink(e, now)
        self.stats["expect_new"] += 1
        return e

    def remove_master(self, ct: Conn, now: float) -> None:
        """``nf_ct_remove_expectations``: the master died; its expectations go too."""
        help = ct.help
        if help is not None and help.expectations:
            for e in list(help.expectations):
                self._unlink(e, now)

    def remove(self, exp: Expectation, now: float) -> None:
        """``nf_ct_unexpect_related`` (e.g. ``conntrack -D expect``)."""
        self._unlink(exp, now)

    # -- time --------------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Remove every expectation whose timeout has passed. Returns how many."""
        if now < self.soonest:
            return 0
        heap = self.heap
        n = 0
        while heap and heap[0][0] <= now:
            t, _, e = heapq.heappop(heap)
            if e.live and e.timeout == t:
                self._unlink(e, now)
                n += 1
            heap = self.heap                 # _unlink may have compacted it
        self.soonest = heap[0][0] if heap else _INF
        return n

    def next_deadline(self) -> float | None:
        heap = self.heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
        self.soonest = heap[0][0] if heap else _INF
        return heap[0][0] if heap else None

    def entries(self, now: float) -> list[Expectation]:
        """Live expectations, oldest first (the kernel lists them in hash order)."""
        self.expire(now)
        out = [e for lst in self.by_dst.values() for e in lst]
        out.sort(key=lambda e: e.id)
        return out
