"""Conntrack's defragmentation: nf_defrag_ipv4 / nf_defrag_ipv6 in front of the tracker.

Owns: the fragment queues of both families (lookup key, offset/end arithmetic, the
duplicate/overlap policy, last-fragment consistency, ``ipfrag_max_dist``, the per-family
memory accounting against ``*_high_thresh``, the reassembly timers) and building the
reassembled datagram as raw bytes. Must not know: decoding beyond the IP header and the
IPv6 extension-header chain, conntrack, rules, clocks (``now`` is always a parameter), how
verdicts are printed. Follows net/ipv4/ip_fragment.c (``ip_defrag``, ``ip_frag_queue``,
``ip_frag_reasm``, ``ip_frag_too_far``/``ip_frag_reinit``), net/ipv4/inet_fragment.c
(``inet_frag_find``, ``inet_frag_queue_insert``, ``inet_frag_kill``, memory accounting),
net/ipv6/netfilter/nf_conntrack_reasm.c (``nf_ct_frag6_gather``/``_queue``/``_reasm``,
``find_prev_fhdr``), include/net/ipv6_frag.h (``ipv6frag_thdr_truncated``,
``ip6frag_expire_frag_queue``), net/ipv4/netfilter/nf_defrag_ipv4.c and
net/ipv6/netfilter/nf_defrag_ipv6_hooks.c (the hook verdicts), as of Linux 6.x.

API
---
``Defrag(settings)``; ``feed(pkt, now, user=0) -> DefragResult``; ``expire(now) ->
list[ExpiredQueue]``; ``next_deadline() -> float | None``; ``memory(l3num)``,
``queue_count(l3num)``, ``counters[l3num]`` (ReasmReqds/ReasmOKs/ReasmFails/ReasmTimeout/
ReasmOverlaps as in /proc/net/snmp, plus one counter per drop reason).

``feed`` takes every packet at the defrag hook (PREROUTING / LOCAL_OUT, priority -400);
non-fragments return the shared ``PASS`` result after one cheap test. ``user`` separates
defrag users the way the kernel's key does (hook direction + conntrack zone: pass e.g.
``zone << 1 | is_local_out``); queues of different users never mix. The result's ``kind``:

* ``"pass"``: hand the packet on unchanged. ``reason`` is None for a non-fragment; for an
  IPv6 fragment the kernel lets through unreassembled it says why (non-last fragment whose
  length is not a multiple of 8 - its queue is discarded too -; first fragment without the
  whole header chain up to the L4 header, RFC 8200 4.5; jumbogram). Conntrack then sees
  the fragment itself.
* ``"hold"``: queued; the packet is stolen (NF_STOLEN), the trace says HOLD.
* ``"complete"``: ``data`` is the whole datagram (IPv4: head fragment's header with total
  length, offset 0, no MF, DF as ``ip_frag_reasm`` sets it, TOS ORed with the ECN verdict,
  checksum recomputed; IPv6: head fragment's unfragmentable part with the fragment header
  removed, the previous header's next-header fixed, payload length set, traffic class ORed
  with the ECN verdict), ready for ``decode_ip``. ``fragments`` are the packets it was
  built from in offset order (``count`` of them; the current packet is one of them).
  Arrival metadata: the kernel morphs the *completing* skb into the head, so the datagram
  continues through netfilter as the last-arriving fragment (its hook traversal, input
  device ``dev`` and timestamp ``q->stamp``), while its IP header (TTL, TOS, ID, options)
  and the skb fields ``skb_morph`` copies (mark, priority) are the head fragment's
  (``fragments[0]``).
* ``"dropped"``: ``reason`` says why (one of the ``R_*`` strings).

``discarded`` lists packets that were HOLD earlier and are thrown away by this call
(``discard_reason`` says why: overlap, max_dist purge, a bad last fragment, ...) so the
caller can report each; the current packet is never in it. ``verdict`` is the kernel's hook
verdict for the current packet (NF_ACCEPT / NF_DROP / NF_STOLEN): IPv4 fragments that fail
are freed inside ``ip_defrag`` and the hook returns NF_STOLEN; IPv6 errors return NF_DROP,
duplicates and reassembly failures NF_STOLEN.

Kernel rules kept here (checked in the sources; the policy was also observed on a 6.18
kernel, see tests/test_defrag.py):

* Key: v4 (saddr, daddr, id, protocol, user); v6 (saddr, daddr, 32-bit id, user, input
  interface only when daddr is multicast or link-local). The l3mdev/VRF index is not
  modelled.
* Non-last fragments have their end rounded down to a multiple of 8 (v4; v6 instead kills
  the queue and lets the fragment pass). A last fragment ending below data already queued
  or disagreeing with an earlier last fragment, a fragment beyond a known end, a
  zero-length fragment: v4 discards the whole queue (``discard_qp``), v6 drops only that
  fragment (its queue lives on, even when it was just created for it and stays empty).
  Note the kernel updates ``q->len``/LAST_IN before the zero-length test; kept.
* Duplicates vs overlaps (``inet_frag_queue_insert``, RFC 5722 + errata 3089, both
  families): fragments are kept as "runs" of adjacent fragments appended at the tail; a
  fragment entirely inside one run is a duplicate (only it is dropped); anything else that
  intersects queued data is an overlap and the whole queue is killed. A fragment that
  exactly covers two neighbouring runs (e.g. a retransmission of two fragments that arrived
  out of order) is therefore an *overlap*.
* A killed queue is removed from the hash at once (``inet_frag_kill``): the kernel keeps no
  "dead" memory; later fragments with the same key start a new queue.
* ``ipfrag_max_dist`` (v4 only): a per-source counter counts every fragment that reaches a
  queue; when more than max_dist fragments from that source arrived since this queue's
  previous one, the queue is flushed and restarted (timer re-armed) with the new fragment.
  ``max_size``/``max_df_size`` survive the restart, as in ``ip_frag_reinit``.
* Memory (per family; v4 ``ipfrag_high_thresh``, v6 ``nf_conntrack_frag6_high_thresh``):
  every fragment is refused, even for an existing queue, while the usage is *above*
  high_thresh (``inet_frag_find``); a threshold of 0 refuses everything. Since 4.17 there
  is no evictor: ``*_low_thresh`` is unused and queues leave only by completion, failure
  or timeout. Usage = per queue the slab object (``ipq`` 200 bytes, ``frag_queue`` 184:
  the ip4-frags / nf-frags slab object sizes on 6.18) + per queued fragment the skb
  ``truesize``, approximated by ``skb_truesize()`` (what an skb built by AF_PACKET with 16
  bytes of headroom and a 14-byte Ethernet header gets; /proc/net/sockstat ``FRAG: memory``
  matched it exactly for veth on 6.18). A real NIC's page-fragment truesize differs; the
  thresholds still bound the queue count (high_thresh / qsize + 1) and the bytes held.
* Reassembled size: v4 header + data > 65535, v6 payload > 65535 -> failure; every v6
  fragment whose end exceeds 65535 is refused. ECN: a mix of Not-ECT with ECT/CE fails
  reassembly (``ip_frag_ecn_table``); CE with ECT marks the datagram CE.
* IPv6: the fragment header is found by ``find_prev_fhdr`` (only HBH, routing, AH,
  destination options before it); an atomic fragment (offset 0, M=0) goes through a queue
  and completes at once, coming out without its fragment header.
* Timers: ``ipfrag_time`` (30 s) / ``nf_conntrack_frag6_timeout`` (60 s) from the queue's
  creation; never extended by later fragments (only a max_dist restart re-arms it).
  ``ExpiredQueue.first_in`` says whether the first fragment had arrived: the kernel then
  sends ICMP "fragment reassembly time exceeded" - for IPv6 conntrack queues always, for
  IPv4 conntrack users only when the datagram was locally destined.
* Not modelled: IP_NODEFRAG sockets, locally fragmented skbs (IPSKB_FRAG_COMPLETE skips
  max_dist), checksum-offload state, the host stack's own reassembly sharing the v4 memory.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from typing import Final

from ..packet.checksum import inet_checksum
from ..packet.packet import AF_INET, AF_INET6, Packet
from .sysctl import Settings

# netfilter hook verdicts (include/uapi/linux/netfilter.h)
NF_DROP: Final = 0
NF_ACCEPT: Final = 1
NF_STOLEN: Final = 2

# result kinds
PASS_KIND: Final = "pass"
HOLD_KIND: Final = "hold"
COMPLETE_KIND: Final = "complete"
DROPPED_KIND: Final = "dropped"

# drop / discard reasons (user-facing text; also the counter names)
R_DUPLICATE: Final = "duplicate fragment"
R_OVERLAP: Final = "overlapping fragment"
R_BEYOND_END: Final = "fragment beyond end of datagram"
R_LAST_MISMATCH: Final = "last fragment inconsistent with queued data"
R_ZERO_LENGTH: Final = "zero-length fragment"
R_TOO_BIG: Final = "reassembled datagram larger than 65535 bytes"
R_OFFSET_TOO_LARGE: Final = "fragment ends beyond 65535"
R_MEMORY: Final = "fragment memory above high_thresh"
R_ECN: Final = "ECN mismatch between fragments"
R_TOO_FAR: Final = "ipfrag_max_dist exceeded"
R_TIMEOUT: Final = "reassembly timeout"
R_MALFORMED: Final = "malformed fragment"
R_V6_NOT_MULTIPLE_8: Final = "fragment length not a multiple of 8"
R_V6_TRUNCATED_HEAD: Final = "first fragment lacks the upper-layer header"
R_V6_JUMBO: Final = "jumbo payload"

# inet_frag_queue_insert results
_OK: Final = 0
_DUP: Final = 1
_OVERLAP: Final = 2

# Memory accounting. Queue objects: sizeof(struct ipq) = 200, sizeof(struct frag_queue) =
# 184 (the ip4-frags and nf-frags slab object sizes in /sys/kernel/slab on 6.18).
QSIZE_V4: Final = 200
QSIZE_V6: Final = 184
_SKB_OVERHEAD: Final = 256       # SKB_DATA_ALIGN(sizeof(struct sk_buff))
_SHINFO: Final = 320             # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
_SMALL_HEAD: Final = 256         # data room of the small-head cache (576-byte objects)
_LL_ROOM: Final = 30             # 16 bytes headroom + 14 bytes Ethernet header
IPV6_MAXPLEN: Final = 65535

# RFC 3168 5.3 as ip_frag_ecn_table: index = OR of (1 << (tos & 3)) over the fragments;
# value 0xff = drop, else the bits ORed into the reassembled TOS / traffic class.
_ECN_TABLE: Final = tuple(
    0xFF if (i & 1 and i & 0xE) else (3 if (i & 8 and i & 6) else 0) for i in range(16))

# IPv6 extension headers as ipv6_ext_hdr() knows them
_NEXTHDR_HOP: Final = 0
_NEXTHDR_ROUTING: Final = 43
_NEXTHDR_FRAGMENT: Final = 44
_NEXTHDR_AUTH: Final = 51
_NEXTHDR_NONE: Final = 59
_NEXTHDR_DEST: Final = 60
_V6_EXT: Final = frozenset((_NEXTHDR_HOP, _NEXTHDR_ROUTING, _NEXTHDR_FRAGMENT, _NEXTHDR_AUTH,
                            _NEXTHDR_NONE, _NEXTHDR_DEST))
# bytes of L4 header ipv6frag_thdr_truncated wants in the first fragment (default 1)
_V6_L4_NEED: Final = {6: 20, 17: 8, 58: 8}


def skb_truesize(iplen: int) -> int:
    """Approximate ``skb->truesize`` of a received IP datagram of ``iplen`` bytes.

    Models ``__alloc_skb``: data room = headroom + Ethernet header + datagram, 64-byte
    aligned; <= 256 bytes comes from the small-head cache (576-byte objects), else kmalloc
    rounds data + shared info up to a power of two; plus the sk_buff itself.
    """
    need = (iplen + _LL_ROOM + 63) & ~63
    if need <= _SMALL_HEAD:
        return _SMALL_HEAD + _SHINFO + _SKB_OVERHEAD
    size = 1024
    while size < need + _SHINFO:
        size <<= 1
    return size + _SKB_OVERHEAD


class DefragResult:
    """What ``Defrag.feed`` did with one packet (see the module header)."""

    __slots__ = ("kind", "reason", "data", "fragments", "discarded", "discard_reason",
                 "verdict")

    def __init__(self, kind: str, verdict: int, reason: str | None = None,
                 data: bytes | None = None, fragments: tuple[Packet, ...] = (),
                 discarded: tuple[Packet, ...] = (),
                 discard_reason: str | None = None) -> None:
        self.kind = kind
        self.verdict = verdict
        self.reason = reason
        self.data = data
        self.fragments = fragments
        self.discarded = discarded
        self.discard_reason = discard_reason

    @property
    def count(self) -> int:
        """Number of fragments the reassembled datagram was built from."""
        return len(self.fragments)

    def __repr__(self) -> str:
        return (f"DefragResult({self.kind!r}, reason={self.reason!r}, "
                f"data={None if self.data is None else len(self.data)}, "
                f"count={self.count}, discarded={len(self.discarded)})")


# The shared result for everything that is not a fragment (no allocation on the fast path).
PASS: Final = DefragResult(PASS_KIND, NF_ACCEPT)


class ExpiredQueue:
    """A queue whose timer ran out: its fragments are gone."""

    __slots__ = ("l3num", "src", "dst", "ident", "user", "fragments", "first_in", "reason")

    def __init__(self, l3num: int, src: bytes, dst: bytes, ident: int, user: int,
                 fragments: tuple[Packet, ...], first_in: bool) -> None:
        self.l3num = l3num
        self.src = src
        self.dst = dst
        self.ident = ident
        self.user = user
        self.fragments = fragments
        self.first_in = first_in
        self.reason = R_TIMEOUT

    def __repr__(self) -> str:
        return (f"ExpiredQueue(l3num={self.l3num}, id={self.ident:#x}, "
                f"fragments={len(self.fragments)}, first_in={self.first_in})")


class _Frag:
    """One queued fragment: its data is ``pkt.buf[doff:doff + end - offset]``."""

    __slots__ = ("offset", "end", "pkt", "doff", "truesize")

    def __init__(self, offset: int, end: int, pkt: Packet, doff: int, truesize: int) -> None:
        self.offset = offset
        self.end = end
        self.pkt = pkt
        self.doff = doff
        self.truesize = truesize


class _Queue:
    """struct ipq / struct frag_queue."""

    __slots__ = ("key", "l3num", "src", "dst", "ident", "user", "deadline", "len", "meat",
                 "first_in", "last_in", "frags", "run_starts", "run_ends", "ecn",
                 "max_size", "max_df_size", "rid", "peer", "nhoffset", "mem")

    def __init__(self, key: tuple[object, ...], l3num: int, src: bytes, dst: bytes,
                 ident: int, user: int, deadline: float, mem: int, peer: bool) -> None:
        self.key = key
        self.l3num = l3num
        self.src = src
        self.dst = dst
        self.ident = ident
        self.user = user
        self.deadline = deadline
        self.len = 0
        self.meat = 0
        self.first_in = False
        self.last_in = False
        self.frags: list[_Frag] = []
        # the kernel's rb-tree of "runs": disjoint [start, end) ranges sorted by start
        self.run_starts: list[int] = []
        self.run_ends: list[int] = []
        self.ecn = 0
        self.max_size = 0
        self.max_df_size = 0
        self.rid = 0
        self.peer = peer
        self.nhoffset = 0
        self.mem = mem

    def insert(self, offset: int, end: int) -> int:
        """``inet_frag_queue_insert`` on the run structure: _OK, _DUP or _OVERLAP."""
        starts = self.run_starts
        ends = self.run_ends
        if not starts:
            starts.append(offset)
            ends.append(end)
            return _OK
        tail_end = ends[-1]
        if tail_end < end:                      # the common case: goes to the end
            if offset < tail_end:
                return _OVERLAP
            if offset == tail_end:
                ends[-1] = end                  # appended to the last run
            else:
                starts.append(offset)
                ends.append(end)
            return _OK
        # Falls inside or before the known runs (can become first, never last). Runs
        # intersecting [offset, end): those starting before end and ending after offset.
        hi = bisect_left(starts, end)
        lo = bisect_right(ends, offset)
        if lo >= hi:
            starts.insert(hi, offset)
            ends.insert(hi, end)
            return _OK
        if hi - lo == 1 and starts[lo] <= offset and end <= ends[lo]:
            return _DUP
        return _OVERLAP

    def packets(self) -> tuple[Packet, ...]:
        return tuple(f.pkt for f in self.frags)


class _Family:
    """One fqdir: the queues and the memory of one address family."""

    __slots__ = ("l3num", "queues", "mem", "qsize", "counters")

    def __init__(self, l3num: int, qsize: int) -> None:
        self.l3num = l3num
        # insertion order == deadline order (timeouts are per family and timers are armed
        # only at creation or moved to the end on a max_dist restart)
        self.queues: OrderedDict[tuple[object, ...], _Queue] = OrderedDict()
        self.mem = 0
        self.qsize = qsize
        self.counters: dict[str, int] = {
            "ReasmReqds": 0, "ReasmOKs": 0, "ReasmFails": 0, "ReasmTimeout": 0,
            "ReasmOverlaps": 0}

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


class Defrag:
    """Fragment queues of one network namespace, both families."""

    __slots__ = ("settings", "v4", "v6", "peers", "counters")

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.v4 = _Family(AF_INET, QSIZE_V4)
        self.v6 = _Family(AF_INET6, QSIZE_V6)
        # inet_peer rid counters, per source address: [counter, live queues using it]
        self.peers: dict[bytes, list[int]] = {}
        self.counters: dict[int, dict[str, int]] = {
            AF_INET: self.v4.counters, AF_INET6: self.v6.counters}

    # -- public -----------------------------------------------------------------------
    def feed(self, pkt: Packet, now: float, user: int = 0) -> DefragResult:
        """Run one packet through the defrag hook (see the module header)."""
        if not (pkt.mf or pkt.fragoff) and pkt.frag_hdr_off < 0 and pkt.proto != 44:
            return PASS             # (proto 44 without frag_hdr_off: a cut fragment header)
        if pkt.l3num == AF_INET:
            return self._feed4(pkt, now, user)
        if pkt.l3num == AF_INET6:
            return self._feed6(pkt, now, user)
        return PASS

    def expire(self, now: float) -> list[ExpiredQueue]:
        """Kill every queue whose timer has run out by ``now``."""
        out: list[ExpiredQueue] = []
        for fam in (self.v4, self.v6):
            queues = fam.queues
            while queues:
                q = next(iter(queues.values()))
                if q.deadline > now:
                    break
                self._kill(fam, q)
                fam.counters["ReasmFails"] += 1
                fam.counters["ReasmTimeout"] += 1
                out.append(ExpiredQueue(fam.l3num, q.src, q.dst, q.ident, q.user,
                                        q.packets(), q.first_in))
        return out

    def next_deadline(self) -> float | None:
        best: float | None = None
        for fam in (self.v4, self.v6):
            if fam.queues:
                d = next(iter(fam.queues.values())).deadline
                if best is None or d < best:
                    best = d
        return best

    def memory(self, l3num: int = AF_INET) -> int:
        """Bytes accounted to fragment queues (``FRAG: memory`` of /proc/net/sockstat)."""
        return (self.v4 if l3num == AF_INET else self.v6).mem

    def queue_count(self, l3num: int = AF_INET) -> int:
        return len((self.v4 if l3num == AF_INET else self.v6).queues)

    # -- shared machinery -------------------------------------------------------------
    def _create(self, fam: _Family, key: tuple[object, ...], src: bytes, dst: bytes,
                ident: int, user: int, deadline: float, peer: bool) -> _Queue:
        q = _Queue(key, fam.l3num, src, dst, ident, user, deadline, fam.qsize, peer)
        fam.queues[key] = q
        fam.mem += fam.qsize
        if peer:
            ent = self.peers.get(src)
            if ent is None:
                self.peers[src] = [0, 1]
            else:
                ent[1] += 1
        return q

    def _kill(self, fam: _Family, q: _Queue) -> None:
        """``inet_frag_kill`` + destroy: unhash, free the fragments and the queue."""
        del fam.queues[q.key]
        fam.mem -= q.mem
        if q.peer:
            ent = self.peers[q.src]
            ent[1] -= 1
            if ent[1] == 0:
                del self.peers[q.src]

    def _fail(self, fam: _Family, q: _Queue, reason: str, verdict: int,
              extra: tuple[Packet, ...] = (),
              extra_reason: str | None = None) -> DefragResult:
        """Kill ``q`` and drop the current packet; queued packets become ``discarded``."""
        self._kill(fam, q)
        fam.counters["ReasmFails"] += 1
        fam.count(reason)
        gone = extra + q.packets()
        return DefragResult(DROPPED_KIND, verdict, reason, discarded=gone,
                            discard_reason=(reason if q.frags else extra_reason))

    def _add(self, fam: _Family, q: _Queue, pkt: Packet, offset: int, end: int,
             doff: int) -> None:
        ts = skb_truesize(len(pkt.buf))
        q.frags.append(_Frag(offset, end, pkt, doff, ts))
        q.meat += end - offset
        q.mem += ts
        fam.mem += ts

    def _refused(self, fam: _Family, verdict: int) -> DefragResult | None:
        """``inet_frag_find``'s memory test: None when the fragment may be queued."""
        high = (self.settings.ipfrag_high_thresh if fam.l3num == AF_INET
                else self.settings.nf_conntrack_frag6_high_thresh)
        if high and fam.mem <= high:
            return None
        fam.counters["ReasmFails"] += 1
        fam.count(R_MEMORY)
        return DefragResult(DROPPED_KIND, verdict, R_MEMORY)

    # -- IPv4: ip_defrag / ip_frag_queue / ip_frag_reasm -----------------------------
    def _feed4(self, pkt: Packet, now: float, user: int) -> DefragResult:
        fam = self.v4
        buf = pkt.buf
        if len(buf) < 20:
            fam.count(R_MALFORMED)
            return DefragResult(DROPPED_KIND, NF_STOLEN, R_MALFORMED)
        ihl = (buf[0] & 15) << 2
        if ihl < 20 or ihl > len(buf):
            fam.count(R_MALFORMED)
            return DefragResult(DROPPED_KIND, NF_STOLEN, R_MALFORMED)
        fo = buf[6] << 8 | buf[7]
        if not fo & 0x3FFF:                     # ip_is_fragment() says no
            return PASS
        fam.counters["ReasmReqds"] += 1
        refused = self._refused(fam, NF_STOLEN)
        if refused is not None:
            return refused
        src = bytes(buf[12:16])
        ident = buf[4] << 8 | buf[5]
        key: tuple[object, ...] = (src, bytes(buf[16:20]), ident, buf[9], user)
        q = fam.queues.get(key)
        if q is None:
            q = self._create(fam, key, src, bytes(buf[16:20]), ident, user,
                             now + self.settings.ipfrag_time,
                             self.settings.ipfrag_max_dist != 0)

        # ip_frag_too_far / ip_frag_reinit
        purged: tuple[Packet, ...] = ()
        max_dist = self.settings.ipfrag_max_dist
        if q.peer and max_dist:
            ent = self.peers[src]
            ent[0] += 1
            start, q.rid = q.rid, ent[0]
            if q.frags and ent[0] - start > max_dist:
                fam.counters["ReasmFails"] += 1
                fam.count(R_TOO_FAR)
                purged = q.packets()
                freed = sum(f.truesize for f in q.frags)
                q.mem -= freed
                fam.mem -= freed
                q.frags = []
                q.run_starts = []
                q.run_ends = []
                q.first_in = q.last_in = False
                q.len = q.meat = q.ecn = 0
                q.deadline = now + self.settings.ipfrag_time
                fam.queues.move_to_end(key)
        purge_reason = R_TOO_FAR if purged else None

        offset = (fo & 0x1FFF) << 3
        end = offset + len(buf) - ihl
        if not fo & 0x2000:                     # the last fragment
            if end < q.len or (q.last_in and end != q.len):
                return self._fail(fam, q, R_LAST_MISMATCH, NF_STOLEN, purged, purge_reason)
            q.last_in = True
            q.len = end
        else:
            end &= ~7
            if end > q.len:
                if q.last_in:
                    return self._fail(fam, q, R_BEYOND_END, NF_STOLEN, purged, purge_reason)
                q.len = end
        if end == offset:
            return self._fail(fam, q, R_ZERO_LENGTH, NF_STOLEN, purged, purge_reason)

        res = q.insert(offset, end)
        if res == _DUP:
            fam.count(R_DUPLICATE)
            return DefragResult(DROPPED_KIND, NF_STOLEN, R_DUPLICATE, discarded=purged,
                                discard_reason=purge_reason)
        if res == _OVERLAP:
            fam.counters["ReasmOverlaps"] += 1
            return self._fail(fam, q, R_OVERLAP, NF_STOLEN, purged, purge_reason)

        self._add(fam, q, pkt, offset, end, ihl)
        q.ecn |= 1 << (buf[1] & 3)
        if offset == 0:
            q.first_in = True
        fragsize = end - offset + ihl
        if fragsize > q.max_size:
            q.max_size = fragsize
        if fo & 0x4000 and fragsize > q.max_df_size:
            q.max_df_size = fragsize
        if q.first_in and q.last_in and q.meat == q.len:
            return self._reasm4(fam, q, purged, purge_reason)
        return DefragResult(HOLD_KIND, NF_STOLEN, None, discarded=purged,
                            discard_reason=purge_reason)

    def _reasm4(self, fam: _Family, q: _Queue, purged: tuple[Packet, ...],
                purge_reason: str | None) -> DefragResult:
        self._kill(fam, q)
        frags = sorted(q.frags, key=lambda f: f.offset)
        ecn = _ECN_TABLE[q.ecn]
        head = frags[0]
        length = head.doff + q.len
        reason = R_ECN if ecn == 0xFF else R_TOO_BIG if length > 65535 else None
        if reason is not None:
            fam.counters["ReasmFails"] += 1
            fam.count(reason)
            return self._reasm_failed(q, reason, purged, purge_reason)
        hb = head.pkt.buf
        hdr = bytearray(hb[:head.doff])
        hdr[1] |= ecn
        hdr[2] = length >> 8
        hdr[3] = length & 0xFF
        hdr[6] = 0x40 if q.max_df_size == q.max_size else 0
        hdr[7] = 0
        hdr[10] = hdr[11] = 0
        csum = inet_checksum(hdr)
        hdr[10] = csum >> 8
        hdr[11] = csum & 0xFF
        parts = [bytes(hdr)]
        parts += [f.pkt.buf[f.doff:f.doff + f.end - f.offset] for f in frags]
        fam.counters["ReasmOKs"] += 1
        return DefragResult(COMPLETE_KIND, NF_ACCEPT, None, b"".join(parts),
                            tuple(f.pkt for f in frags), purged, purge_reason)

    @staticmethod
    def _reasm_failed(q: _Queue, reason: str, purged: tuple[Packet, ...],
                      purge_reason: str | None) -> DefragResult:
        """A complete queue that cannot be glued: everything in it is freed. The current
        packet was the last one queued (``q.frags[-1]``); it is the one dropped."""
        cur = q.frags[-1].pkt
        others = tuple(f.pkt for f in q.frags if f.pkt is not cur)
        return DefragResult(DROPPED_KIND, NF_STOLEN, reason,
                            discarded=purged + others,
                            discard_reason=reason if others else purge_reason)

    # -- IPv6: nf_ct_frag6_gather / nf_ct_frag6_queue / nf_ct_frag6_reasm ------------
    def _feed6(self, pkt: Packet, now: float, user: int) -> DefragResult:
        fam = self.v6
        buf = pkt.buf
        n = len(buf)
        if n < 40:
            fam.count(R_MALFORMED)
            return DefragResult(DROPPED_KIND, NF_DROP, R_MALFORMED)
        payload_len = buf[4] << 8 | buf[5]
        if payload_len == 0:
            # Jumbo payload inhibits the fragment header: nf_ct_frag6_gather returns 0.
            return DefragResult(PASS_KIND, NF_ACCEPT, R_V6_JUMBO)
        found = _find_prev_fhdr(buf)
        if found is None:
            return PASS
        nhoff, fhoff = found
        if _thdr_truncated(buf, fhoff):
            return DefragResult(PASS_KIND, NF_ACCEPT, R_V6_TRUNCATED_HEAD)
        if fhoff + 8 > n or 40 + payload_len > n:
            fam.count(R_MALFORMED)
            return DefragResult(DROPPED_KIND, NF_DROP, R_MALFORMED)
        refused = self._refused(fam, NF_DROP)
        if refused is not None:
            return refused
        src = bytes(buf[8:24])
        dst = bytes(buf[24:40])
        ident = int.from_bytes(buf[fhoff + 4:fhoff + 8], "big")
        iif = pkt.iface if (dst[0] == 0xFF or (dst[0] == 0xFE and dst[1] & 0xC0 == 0x80)) \
            else None
        key: tuple[object, ...] = (src, dst, ident, user, iif)
        q = fam.queues.get(key)
        if q is None:
            q = self._create(fam, key, src, dst, ident, user,
                             now + self.settings.nf_conntrack_frag6_timeout, False)

        fo = buf[fhoff + 2] << 8 | buf[fhoff + 3]
        offset = fo & ~7
        end = offset + payload_len - (fhoff + 8 - 40)
        if end > IPV6_MAXPLEN:
            fam.count(R_OFFSET_TOO_LARGE)
            return DefragResult(DROPPED_KIND, NF_DROP, R_OFFSET_TOO_LARGE)
        if not fo & 1:                          # the last fragment
            if end < q.len or (q.last_in and end != q.len):
                fam.count(R_LAST_MISMATCH)
                return DefragResult(DROPPED_KIND, NF_DROP, R_LAST_MISMATCH)
            q.last_in = True
            q.len = end
        else:
            if end & 7:
                # RFC 8200: the kernel kills the queue and lets this fragment pass as is.
                self._kill(fam, q)
                fam.count(R_V6_NOT_MULTIPLE_8)
                gone = q.packets()
                return DefragResult(PASS_KIND, NF_ACCEPT, R_V6_NOT_MULTIPLE_8,
                                    discarded=gone,
                                    discard_reason=R_V6_NOT_MULTIPLE_8 if gone else None)
            if end > q.len:
                if q.last_in:
                    fam.count(R_BEYOND_END)
                    return DefragResult(DROPPED_KIND, NF_DROP, R_BEYOND_END)
                q.len = end
        if end == offset:
            fam.count(R_ZERO_LENGTH)
            return DefragResult(DROPPED_KIND, NF_DROP, R_ZERO_LENGTH)

        res = q.insert(offset, end)
        if res == _DUP:
            # "No error for duplicates, pretend they got queued" (freed, NF_STOLEN).
            fam.count(R_DUPLICATE)
            return DefragResult(DROPPED_KIND, NF_STOLEN, R_DUPLICATE)
        if res == _OVERLAP:
            fam.counters["ReasmOverlaps"] += 1
            return self._fail(fam, q, R_OVERLAP, NF_DROP)

        self._add(fam, q, pkt, offset, end, fhoff + 8)
        q.ecn |= 1 << ((buf[1] >> 4) & 3)
        if payload_len > q.max_size:
            q.max_size = payload_len
        if offset == 0:
            q.nhoffset = nhoff
            q.first_in = True
        if q.first_in and q.last_in and q.meat == q.len:
            return self._reasm6(fam, q)
        return DefragResult(HOLD_KIND, NF_STOLEN)

    def _reasm6(self, fam: _Family, q: _Queue) -> DefragResult:
        self._kill(fam, q)
        frags = sorted(q.frags, key=lambda f: f.offset)
        ecn = _ECN_TABLE[q.ecn]
        head = frags[0]
        fhoff = head.doff - 8
        payload = fhoff - 40 + q.len
        reason = R_ECN if ecn == 0xFF else R_TOO_BIG if payload > IPV6_MAXPLEN else None
        if reason is not None:
            fam.counters["ReasmFails"] += 1
            fam.count(reason)
            return self._reasm_failed(q, reason, (), None)
        hb = head.pkt.buf
        hdr = bytearray(hb[:fhoff])
        hdr[q.nhoffset] = hb[fhoff]             # next header of the removed fragment header
        hdr[4] = payload >> 8
        hdr[5] = payload & 0xFF
        hdr[1] |= ecn << 4
        parts = [bytes(hdr)]
        parts += [f.pkt.buf[f.doff:f.doff + f.end - f.offset] for f in frags]
        fam.counters["ReasmOKs"] += 1
        return DefragResult(COMPLETE_KIND, NF_ACCEPT, None, b"".join(parts),
                            tuple(f.pkt for f in frags))


def _find_prev_fhdr(buf: bytes) -> tuple[int, int] | None:
    """``find_prev_fhdr``: (offset of the next-header byte that names the fragment header,
    offset of the fragment header), or None when the chain has no fragment header."""
    nexthdr = buf[6]
    prev_nhoff = 6
    start = 40
    n = len(buf)
    while nexthdr != _NEXTHDR_FRAGMENT:
        if nexthdr not in _V6_EXT or nexthdr == _NEXTHDR_NONE:
            return None
        if n - start < 2:
            return None
        if nexthdr == _NEXTHDR_AUTH:
            hdrlen = (buf[start + 1] + 2) << 2
        else:
            hdrlen = (buf[start + 1] + 1) << 3
        prev_nhoff = start
        nexthdr = buf[start]
        start += hdrlen
    if start > n:
        return None
    # The kernel keeps prev_nhoff in a u8: past 255 bytes of extension headers the offset
    # wraps and reassembly patches the wrong byte. Kept for packet-exactness.
    return prev_nhoff & 0xFF, start


def _thdr_truncated(buf: bytes, start: int) -> bool:
    """``ipv6frag_thdr_truncated``: a first fragment without the whole header chain up to
    and including the L4 header (TCP 20, UDP 8, ICMPv6 8, anything else 1 byte)."""
    n = len(buf)
    nexthdr = _NEXTHDR_FRAGMENT
    frag_off = 0
    while nexthdr in _V6_EXT:                   # ipv6_skip_exthdr
        if nexthdr == _NEXTHDR_NONE or start + 2 > n:
            return False
        if nexthdr == _NEXTHDR_FRAGMENT:
            if start + 4 > n:
                return False
            frag_off = buf[start + 2] << 8 | buf[start + 3]
            if frag_off & ~7:
                break
            hdrlen = 8
        elif nexthdr == _NEXTHDR_AUTH:
            hdrlen = (buf[start + 1] + 2) << 2
        else:
            hdrlen = (buf[start + 1] + 1) << 3
        nexthdr = buf[start]
        start += hdrlen
    if frag_off & 0xFFF8:
        return False
    return start + _V6_L4_NEED.get(nexthdr, 1) > n
