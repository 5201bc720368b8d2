"""NAT bindings: ranges, unique tuple selection, ``setup_info``, null bindings (sans-I/O).

Owns: ``NatRange`` (``struct nf_nat_range2``: flags, address and port/id range, base port),
the per-entry NAT extension (``NatExt``: MASQUERADE's output interface, the seqadj state),
the binding of an unconfirmed entry (``setup_info``: current = invert(reply), new =
``get_unique_tuple``, reply := invert(new), IPS_SRC_NAT/IPS_DST_NAT, *_NAT_DONE), the
null binding, the "is this tuple taken" checks (``used_tuple``, ``used_tuple_new``,
``used_tuple_harder`` with its TIME_WAIT eviction), the by-source index that lets a source
keep its mapping (``find_appropriate_src``), the address choice (``find_best_ips_proto``,
the kernel's jhash2 - deterministic, so statewall picks the same address as Linux) and the
port/id search (``l4proto_unique_tuple``).
Must not know: packet bytes (``manip``), rules (the caller turns a target into a range:
``targets``), helpers, output formats.
Follows net/netfilter/nf_nat_core.c of Linux 6.18 (``nf_nat_setup_info``,
``get_unique_tuple``, ``nf_nat_used_tuple*``, ``nf_nat_may_kill``,
``find_appropriate_src``, ``find_best_ips_proto``, ``nf_nat_l4proto_unique_tuple``,
``__nf_nat_alloc_null_binding``), include/linux/jhash.h and include/uapi/linux/netfilter/
nf_nat.h.

Randomness. The kernel starts the port search at ``get_random_u16()`` (for a source manip
or with --random/--random-fully; a destination manip without them starts at offset 0, and a
base port at the fixed offset). statewall is deterministic instead: the start offset is the
first 16 bits of ``blake2b(key=seed, data=<salt> <original tuple> <round>)``, ``seed``
being ``NatCore.seed`` (default empty: every run of a capture picks the same ports).
Everything else - which port is kept, when a clash forces a search, the range searched,
the order of the search from the start offset, the number of attempts (128, then halved
down to 16), the TIME_WAIT eviction in the last 32 attempts, the address chosen from a
range (jhash2 with the kernel's fixed initval, as Linux: "the same client comes from the
same IP, even across reboots") - is the kernel's. So statewall and the kernel agree on the
port whenever it is kept or the range leaves one choice, and otherwise both pick a free
port from the same range.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING, Final

from ..conntrack.conn import (IPS_CONFIRMED, IPS_DST_NAT, IPS_DYING, IPS_FIXED_TIMEOUT,
                              IPS_SRC_NAT, Conn, Tuple)
from ..conntrack.proto.tcp import (TCP_CONNTRACK_SYN_SENT, TCP_CONNTRACK_TIME_WAIT, TD_END)

if TYPE_CHECKING:
    from ..conntrack.core import Tracker

# enum nf_nat_manip_type
NF_NAT_MANIP_SRC: Final = 0
NF_NAT_MANIP_DST: Final = 1

# include/uapi/linux/netfilter/nf_nat.h
NF_NAT_RANGE_MAP_IPS: Final = 1 << 0
NF_NAT_RANGE_PROTO_SPECIFIED: Final = 1 << 1
NF_NAT_RANGE_PROTO_RANDOM: Final = 1 << 2
NF_NAT_RANGE_PERSISTENT: Final = 1 << 3
NF_NAT_RANGE_PROTO_RANDOM_FULLY: Final = 1 << 4
NF_NAT_RANGE_PROTO_OFFSET: Final = 1 << 5
NF_NAT_RANGE_NETMAP: Final = 1 << 6
NF_NAT_RANGE_PROTO_RANDOM_ALL: Final = NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY

# status bits (enum ip_conntrack_status)
IPS_NAT_MASK: Final = IPS_SRC_NAT | IPS_DST_NAT
IPS_SEQ_ADJUST: Final = 1 << 6
IPS_SRC_NAT_DONE: Final = 1 << 7
IPS_DST_NAT_DONE: Final = 1 << 8
IPS_NAT_DONE_MASK: Final = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
IPS_OFFLOAD_MASK: Final = (1 << 14) | (1 << 15)

NF_NAT_MAX_ATTEMPTS: Final = 128
NF_NAT_HARDER_THRESH: Final = NF_NAT_MAX_ATTEMPTS // 4

IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_GRE: Final = 47
IPPROTO_ICMPV6: Final = 58
IPPROTO_UDPLITE: Final = 136

# protocols whose tuple carries ports (a = source, b = destination) in statewall's tuples;
# ICMP/ICMPv6 carry the identifier in ``a`` for both directions. (SCTP and DCCP are tracked
# by the generic tracker here, without ports: NAT rewrites only their addresses.)
PORT_PROTOS: Final = frozenset((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE))
ID_PROTOS: Final = frozenset((IPPROTO_ICMP, IPPROTO_ICMPV6))
# l4proto->allow_clash (udp, udplite, icmp, icmpv6)
ALLOW_CLASH: Final = frozenset((IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_ICMP, IPPROTO_ICMPV6))

_M32: Final = 0xFFFFFFFF
_LE4: Final = struct.Struct("<4I")
_BE4: Final = struct.Struct(">4I")


class NatRange:
    """``struct nf_nat_range2``: addresses as bytes (4 or 16), ports/ids as ints."""

    __slots__ = ("flags", "min_addr", "max_addr", "min_proto", "max_proto", "base_proto")

    def __init__(self, flags: int = 0, min_addr: bytes = b"", max_addr: bytes = b"",
                 min_proto: int = 0, max_proto: int = 0, base_proto: int = 0) -> None:
        self.flags = flags
        self.min_addr = min_addr
        self.max_addr = max_addr
        self.min_proto = min_proto
        self.max_proto = max_proto
        self.base_proto = base_proto

    def __repr__(self) -> str:
        return (f"NatRange(flags={self.flags:#x}, {self.min_addr.hex()}-{self.max_addr.hex()}, "
                f"{self.min_proto}-{self.max_proto}/{self.base_proto})")


class NatExt:
    """``struct nf_conn_nat`` + ``struct nf_conn_seqadj`` of one entry, created only for
    the entries that need one (MASQUERADE's ``masq_index``; TCP sequence adjustment after a
    helper changed a payload's length; the packet whose checksum a helper left to be
    computed on output, as CHECKSUM_PARTIAL)."""

    __slots__ = ("masq_iface", "seqadj", "partial")

    def __init__(self) -> None:
        self.masq_iface: str | None = None
        # per direction: [correction_pos, offset_before, offset_after] (u32 / s32 mod 2**32)
        self.seqadj: list[list[int]] | None = None
        self.partial: object = None


def ext(ct: Conn) -> NatExt:
    """``nf_ct_nat_ext_add``: the entry's NAT extension (created on first use)."""
    e: NatExt | None = ct.nat
    if e is None:
        e = ct.nat = NatExt()
    return e


def hook2manip(hook: int) -> int:
    """HOOK2MANIP: POST_ROUTING (4) and LOCAL_IN (1) change the source."""
    return NF_NAT_MANIP_SRC if hook == 4 or hook == 1 else NF_NAT_MANIP_DST


def initialized(ct: Conn, manip: int) -> bool:
    """``nf_nat_initialized``."""
    return bool(ct.status & (IPS_SRC_NAT_DONE if manip == NF_NAT_MANIP_SRC
                             else IPS_DST_NAT_DONE))


# -- jhash (include/linux/jhash.h) ---------------------------------------------------------
def _rol32(w: int, s: int) -> int:
    return ((w << s) | (w >> (32 - s))) & _M32


def jhash2(k: tuple[int, ...], initval: int) -> int:
    """``jhash2``: the kernel's Jenkins hash of u32 words (JHASH_INITVAL 0xdeadbeef)."""
    length = len(k)
    a = b = c = (0xDEADBEEF + (length << 2) + initval) & _M32
    i = 0
    while length > 3:
        a = (a + k[i]) & _M32
        b = (b + k[i + 1]) & _M32
        c = (c + k[i + 2]) & _M32
        # __jhash_mix
        a = (a - c) & _M32; a ^= _rol32(c, 4); c = (c + b) & _M32      # noqa: E702
        b = (b - a) & _M32; b ^= _rol32(a, 6); a = (a + c) & _M32      # noqa: E702
        c = (c - b) & _M32; c ^= _rol32(b, 8); b = (b + a) & _M32      # noqa: E702
        a = (a - c) & _M32; a ^= _rol32(c, 16); c = (c + b) & _M32     # noqa: E702
        b = (b - a) & _M32; b ^= _rol32(a, 19); a = (a + c) & _M32     # noqa: E702
        c = (c - b) & _M32; c ^= _rol32(b, 4); b = (b + a) & _M32      # noqa: E702
        length -= 3
        i += 3
    if length == 0:
        return c
    if length == 3:
        c = (c + k[i + 2]) & _M32
    if length >= 2:
        b = (b + k[i + 1]) & _M32
    a = (a + k[i]) & _M32
    # __jhash_final
    c ^= b; c = (c - _rol32(b, 14)) & _M32      # noqa: E702
    a ^= c; a = (a - _rol32(c, 11)) & _M32      # noqa: E702
    b ^= a; b = (b - _rol32(a, 25)) & _M32      # noqa: E702
    c ^= b; c = (c - _rol32(b, 16)) & _M32      # noqa: E702
    a ^= c; a = (a - _rol32(c, 4)) & _M32       # noqa: E702
    b ^= a; b = (b - _rol32(a, 14)) & _M32      # noqa: E702
    c ^= b; c = (c - _rol32(b, 24)) & _M32      # noqa: E702
    return c


def _u3_words(addr: bytes) -> list[int]:
    """``union nf_inet_addr`` as the CPU reads its u32 words (x86: little-endian); an IPv4
    address fills the first word, the rest is zero."""
    return list(_LE4.unpack(addr.ljust(16, b"\0")))


def _be_words(addr: bytes) -> list[int]:
    """The same words in host order after ``ntohl``."""
    return list(_BE4.unpack(addr.ljust(16, b"\0")))


def find_best_ips_proto(zone: int, t: Tuple, rng: NatRange, manip: int) -> Tuple:
    """``find_best_ips_proto``: the address from the range, by a hash of the addresses."""
    if not rng.flags & NF_NAT_RANGE_MAP_IPS:
        return t
    idx = 0 if manip == NF_NAT_MANIP_SRC else 1
    if rng.min_addr == rng.max_addr:
        new = rng.min_addr
    else:
        v4 = len(t[0]) == 4
        last = 0 if v4 else 3
        src_w = _u3_words(t[0])
        dst_w = _u3_words(t[1])
        var = src_w if idx == 0 else dst_w          # written in place, as var_ipp
        persistent = rng.flags & NF_NAT_RANGE_PERSISTENT
        j = jhash2(tuple(src_w), 0 if persistent else (dst_w[last] ^ zone) & _M32)
        mins = _be_words(rng.min_addr)
        maxs = _be_words(rng.max_addr)
        max_le = _u3_words(rng.max_addr)
        full_range = False
        for i in range(last + 1):
            if not full_range:
                minip = mins[i]
                dist = (maxs[i] - minip + 1) & _M32
            else:
                minip = 0
                dist = _M32
            val = (minip + ((j * dist) >> 32)) & _M32
            le = int.from_bytes(val.to_bytes(4, "big"), "little")
            var[i] = le
            if le != max_le[i]:
                full_range = True
            if not persistent:
                j ^= dst_w[i]
        new = _LE4.pack(*var)[:len(t[0])]
    if idx == 0:
        return (new, t[1], t[2], t[3], t[4], t[5])
    return (t[0], new, t[2], t[3], t[4], t[5])


def l4proto_in_range(t: Tuple, manip: int, lo: int, hi: int) -> bool:
    """``l4proto_in_range``: the manipulable port (or ICMP id) lies in [lo, hi]."""
    p = t[2]
    if p in ID_PROTOS:
        return lo <= t[3] <= hi
    if p in PORT_PROTOS:
        v = t[3] if manip == NF_NAT_MANIP_SRC else t[4]
        return lo <= v <= hi
    return True


def nf_in_range(t: Tuple, rng: NatRange) -> bool:
    """``nf_in_range``: would a source mapping to ``t`` meet the range?"""
    if rng.flags & NF_NAT_RANGE_MAP_IPS and not rng.min_addr <= t[0] <= rng.max_addr:
        return False
    if not rng.flags & NF_NAT_RANGE_PROTO_SPECIFIED:
        return True
    return l4proto_in_range(t, NF_NAT_MANIP_SRC, rng.min_proto, rng.max_proto)


class NatCore:
    """The NAT state of one network namespace: the by-source index, the seed, counters."""

    __slots__ = ("tracker", "bysource", "_sweep_at", "seed", "seqadj_seen", "stats")

    def __init__(self, tracker: Tracker, seed: bytes = b"") -> None:
        self.tracker = tracker
        # (src addr, src port/id, proto, zone) -> entries mapped from that source, newest
        # first (``nf_nat_bysource``); only entries whose source part was changed are kept,
        # the others can never be an "appropriate source" (their mapping is the identity)
        self.bysource: dict[tuple[bytes, int, int, int], list[Conn]] = {}
        self._sweep_at = 1024
        self.seed = seed
        self.seqadj_seen = False          # some entry has had its sequence numbers adjusted
        self.stats: dict[str, int] = {"nat_setup": 0, "nat_changed": 0,
                                      "port_searches": 0, "timewait_evicted": 0,
                                      "null_bindings": 0}

    # -- tuples ----------------------------------------------------------------------
    def invert(self, t: Tuple) -> Tuple:
        """``nf_ct_invert_tuple``."""
        inv = self.tracker.l4[t[2]].invert(t[3], t[4])
        if inv is None:                   # never for an entry's own tuples
            inv = (t[4], t[3])
        return (t[1], t[0], t[2], inv[0], inv[1], t[5])

    def _rand16(self, t: Tuple, salt: int) -> int:
        """statewall's ``get_random_u16()``: a seeded hash (see the module header)."""
        h = hashlib.blake2b(t[0] + t[1] + struct.pack("!BHHIH", t[2], t[3], t[4],
                                                    t[5] & _M32, salt & 0xFFFF),
                            digest_size=2, key=self.seed)
        return int.from_bytes(h.digest(), "big")

    def rand_below(self, t: Tuple, salt: int, n: int) -> int:
        """``get_random_u32_below(n)``, deterministic like ``_rand16``."""
        h = hashlib.blake2b(t[0] + t[1] + struct.pack("!BHHIH", t[2], t[3], t[4],
                                                    t[5] & _M32, salt & 0xFFFF),
                            digest_size=4, key=self.seed)
        return (int.from_bytes(h.digest(), "big") * n) >> 32 if n > 0 else 0

    # -- "is it taken" ----------------------------------------------------------------
    def tuple_taken(self, reply: Tuple, ignored: Conn, now: float) -> bool:
        """``nf_conntrack_tuple_taken``: another confirmed entry has this tuple (an
        expired one is skipped; one with the same original tuple is the same flow)."""
        other = self.tracker.table.hash.get(reply)
        if other is None or other is ignored or other.timeout <= now:
            return False
        return other.orig != ignored.orig

    def used_tuple(self, t: Tuple, ignored: Conn, now: float) -> bool:
        """``nf_nat_used_tuple``: is the reply of ``t`` someone else's?"""
        return self.tuple_taken(self.invert(t), ignored, now)

    def used_tuple_new(self, t: Tuple, ignored: Conn, now: float) -> bool:
        """``nf_nat_used_tuple_new``: as ``used_tuple``, but a clash with an entry that is
        the exact reverse of ours (both unNATed, for protocols that allow clashes) is left
        to clash resolution at insertion."""
        if not self.used_tuple(t, ignored, now):
            return False
        if t[2] not in ALLOW_CLASH:
            return True
        uses_nat = IPS_NAT_MASK | IPS_SEQ_ADJUST
        if ignored.status & uses_nat:
            return True
        h = self.tracker.table.hash
        other = h.get(t)
        if other is None:
            other = h.get(self.invert(t))
            if other is None:
                return False
        if other.status & uses_nat:
            return True
        return other.orig != ignored.reply

    def used_tuple_harder(self, t: Tuple, ignored: Conn, attempts_left: int,
                          now: float) -> bool:
        """``nf_nat_used_tuple_harder``: in the last attempts for a TCP SYN, a clashing
        SNAT entry in TIME_WAIT or later whose sequence the new SYN has passed is evicted
        and its tuple reused."""
        reply = self.invert(t)
        if (attempts_left > NF_NAT_HARDER_THRESH or t[2] != IPPROTO_TCP
                or ignored.state != TCP_CONNTRACK_SYN_SENT):
            return self.tuple_taken(reply, ignored, now)
        tracker = self.tracker
        other = tracker.lookup(reply, now)
        if other is None:
            return False
        if reply == other.orig or other is ignored:
            return True
        flags = other.status
        if other.state < TCP_CONNTRACK_TIME_WAIT or flags & (IPS_FIXED_TIMEOUT | IPS_DYING) \
                or not flags & IPS_SRC_NAT:
            return True
        # nf_seq_has_advanced: (s32)(new.seen[0].td_end - old.seen[0].td_end) > 0
        d = (ignored.l4[TD_END] - other.l4[TD_END]) & _M32
        if d == 0 or d >= 0x80000000:
            return True
        tracker.kill(other, now)
        self.stats["timewait_evicted"] += 1
        return bool(flags & IPS_OFFLOAD_MASK)

    # -- by source ---------------------------------------------------------------------
    def _index(self, ct: Conn) -> None:
        o = ct.orig
        key = (o[0], o[3], o[2], o[5])
        lst = self.bysource.get(key)
        if lst is None:
            self.bysource[key] = [ct]
        else:
            lst.insert(0, ct)                     # hlist_add_head_rcu
        if len(self.bysource) >= self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        """Forget entries that are gone (the kernel unlinks them when they are freed)."""
        keep: dict[tuple[bytes, int, int, int], list[Conn]] = {}
        for key, lst in self.bysource.items():
            live = [c for c in lst if c.status & IPS_CONFIRMED and not c.status & IPS_DYING]
            if live:
                keep[key] = live
        self.bysource = keep
        self._sweep_at = max(1024, 2 * len(keep))

    def find_appropriate_src(self, t: Tuple, rng: NatRange) -> Tuple | None:
        """``find_appropriate_src``: an existing mapping of the same source that is in
        the range (newest first)."""
        lst = self.bysource.get((t[0], t[3], t[2], t[5]))
        if not lst:
            return None
        for ct in lst:
            st = ct.status
            if not st & IPS_CONFIRMED or st & IPS_DYING:
                continue
            inv = self.invert(ct.reply)
            res: Tuple = (inv[0], t[1], t[2], inv[3], t[4], t[5])
            if nf_in_range(res, rng):
                return res
        return None

    # -- the search ------------------------------------------------------------------
    def l4proto_unique_tuple(self, t: Tuple, rng: NatRange, manip: int, ct: Conn,
                             now: float) -> Tuple:
        """``nf_nat_l4proto_unique_tuple``: search the port (or id) range for a free
        tuple; when none is found the last one tried stays (confirm then drops)."""
        proto = t[2]
        flags = rng.flags
        if proto in ID_PROTOS:
            idx = 3
            if not flags & NF_NAT_RANGE_PROTO_SPECIFIED:
                lo, size = 0, 65536
            else:
                lo, size = rng.min_proto, rng.max_proto - rng.min_proto + 1
        elif proto in PORT_PROTOS:
            idx = 3 if manip == NF_NAT_MANIP_SRC else 4
            if not flags & NF_NAT_RANGE_PROTO_SPECIFIED:
                if manip == NF_NAT_MANIP_DST:
                    return t                      # a destination port is never changed
                port = t[3] if idx == 3 else t[4]
                if port < 1024:
                    # loose convention: < 512 is credential passing
                    lo, size = (1, 511) if port < 512 else (600, 1023 - 600 + 1)
                else:
                    lo, size = 1024, 65535 - 1024 + 1
            else:
                lo, hi = rng.min_proto, rng.max_proto
                if hi < lo:
                    lo, hi = hi, lo
                size = hi - lo + 1
        else:
            return t                              # GRE without a PPTP master, others
        self.stats["port_searches"] += 1
        key = t[3] if idx == 3 else t[4]
        if flags & NF_NAT_RANGE_PROTO_OFFSET:
            off = (key - rng.base_proto) & 0xFFFF
        elif flags & NF_NAT_RANGE_PROTO_RANDOM_ALL or manip != NF_NAT_MANIP_DST:
            off = self._rand16(ct.orig, 0)
        else:
            off = 0
        attempts = min(size, NF_NAT_MAX_ATTEMPTS)
        cand: Tuple = t
        rnd = 0
        while True:
            for i in range(attempts):
                key = lo + off % size
                cand = (t[0], t[1], t[2], key, t[4], t[5]) if idx == 3 else \
                    (t[0], t[1], t[2], t[3], key, t[5])
                if not self.used_tuple_harder(cand, ct, attempts - i, now):
                    return cand
                off = (off + 1) & 0xFFFF
            if attempts >= size or attempts < 16:
                return cand
            attempts //= 2
            rnd += 1
            off = self._rand16(ct.orig, rnd)

    def get_unique_tuple(self, orig: Tuple, rng: NatRange, ct: Conn, manip: int,
                         now: float) -> Tuple:
        """``get_unique_tuple``."""
        flags = rng.flags
        if manip == NF_NAT_MANIP_SRC and not flags & NF_NAT_RANGE_PROTO_RANDOM_ALL:
            # 1) keep the original if it is in range and free; else reuse this source's
            # current mapping if that one is
            if nf_in_range(orig, rng):
                if not self.used_tuple_new(orig, ct, now):
                    return orig
            else:
                found = self.find_appropriate_src(orig, rng)
                if found is not None and not self.used_tuple(found, ct, now):
                    return found
        # 2) the address
        t = find_best_ips_proto(ct.zone, orig, rng, manip)
        # 3) the port, unless it is already in range and free
        if not flags & NF_NAT_RANGE_PROTO_RANDOM_ALL:
            if flags & NF_NAT_RANGE_PROTO_SPECIFIED:
                if (not flags & NF_NAT_RANGE_PROTO_OFFSET
                        and l4proto_in_range(t, manip, rng.min_proto, rng.max_proto)
                        and (rng.min_proto == rng.max_proto
                             or not self.used_tuple(t, ct, now))):
                    return t
            elif not self.used_tuple(t, ct, now):
                return t
        return self.l4proto_unique_tuple(t, rng, manip, ct, now)

    # -- bindings --------------------------------------------------------------------
    def setup_info(self, ct: Conn, rng: NatRange, manip: int, now: float) -> bool:
        """``nf_nat_setup_info``: bind an unconfirmed entry. False = NF_DROP."""
        st = ct.status
        if st & IPS_CONFIRMED:
            return True
        if initialized(ct, manip):
            return False                          # WARN_ON in the kernel
        self.stats["nat_setup"] += 1
        curr = self.invert(ct.reply)
        new = self.get_unique_tuple(curr, rng, ct, manip, now)
        if new != curr:
            ct.reply = self.invert(new)           # nf_conntrack_alter_reply
            ct.status |= IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
            self.stats["nat_changed"] += 1
        if manip == NF_NAT_MANIP_SRC:
            o = ct.orig
            m = self.invert(ct.reply)
            if m[0] != o[0] or m[3] != o[3]:
                self._index(ct)
            ct.status |= IPS_SRC_NAT_DONE
        else:
            ct.status |= IPS_DST_NAT_DONE
        return True

    def null_binding(self, ct: Conn, manip: int, now: float) -> bool:
        """``__nf_nat_alloc_null_binding``: map to the address the entry already has
        (the reply's destination for a source manip), any port: a clash still moves the
        port."""
        r = ct.reply
        ip = r[1] if manip == NF_NAT_MANIP_SRC else r[0]
        self.stats["null_bindings"] += 1
        return self.setup_info(ct, NatRange(NF_NAT_RANGE_MAP_IPS, ip, ip), manip, now)
