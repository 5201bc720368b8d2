"""The connection tracker: classify a packet, keep the table, confirm, expire (sans-I/O).

Owns: ``conntrack_in`` (lookup or create, protocol dispatch, ctinfo, SEEN_REPLY),
``confirm`` (insertion at the last hook, clash handling), entry lifetime (refresh,
accounting, kill, expiry, early drop), event generation and the ``conntrack -S`` counters;
where expectations (``expect``) and helpers (``helpers``) hook in: the template's helper
and the expectation lookup in ``init_conntrack``, the helper call in ``confirm``
(``nf_confirm``), the master's expectations removed in ``kill``, their timers in ``expire``.
Must not know: capture files, clocks, rules, output formats (events are handed to an
``EventSink`` callable). Follows net/netfilter/nf_conntrack_core.c (``nf_conntrack_in``,
``resolve_normal_ct``, ``init_conntrack``, ``__nf_conntrack_confirm``, ``early_drop``,
``nf_ct_refresh_acct``, ``nf_ct_kill``) and nf_conntrack_proto.c (``nf_confirm``).

Time is always a parameter (``now``, seconds as float in the caller's clock).
"""

from __future__ import annotations

from typing import Any, Callable, Final

from ..packet.packet import AF_INET6, Packet
from .conn import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_NEW,
    IP_CT_RELATED,
    IP_CT_RELATED_REPLY,
    IP_CT_UNTRACKED,
    IPCT_ASSURED,
    IPCT_DESTROY,
    IPCT_HELPER,
    IPCT_NEW,
    IPCT_RELATED,
    IPCT_REPLY,
    END_EARLY_DROP,
    END_KILLED,
    END_TIMEOUT,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_EXPECTED,
    IPS_FIXED_TIMEOUT,
    IPS_SEEN_REPLY,
    Conn,
    Tuple,
)
from .expect import ExpectSink, ExpectTable
from .helpers import Registry, attach, from_expectation
from .proto import registry
from .proto.base import CONTINUE, DONE, INVALID, NF_ACCEPT, NF_DROP, REPEAT, L4Tracker
from .sysctl import Settings
from .table import Table
from .template import CtTemplate

# Event sink: (now, event bits, conn) -> None. Called after the packet that caused it, or
# from expire()/kill() for DESTROY.
EventSink = Callable[[float, int, Conn], None]

# ``conntrack -S`` counters. The current kernel no longer counts found/insert (always 0).
STAT_NAMES: Final = ("found", "invalid", "insert", "insert_failed", "drop", "early_drop",
                     "error", "search_restart", "clash_resolve", "chaintoolong")

# verdicts of conntrack_in as the caller sees them
VERDICT_ACCEPT: Final = 1
VERDICT_DROP: Final = 0


class Tracker:
    """One conntrack instance (one network namespace)."""

    __slots__ = ("settings", "l4", "table", "stats", "invalid_reasons", "sink",
                 "is_24", "udp_clash", "expect", "helpers", "notifier", "why")

    def __init__(self, settings: Settings | None = None, sink: EventSink | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.is_24 = self.settings.profile == "linux-2.4"
        self.l4: list[L4Tracker] = registry.trackers(self.settings.profile)
        self.table = Table()
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.invalid_reasons: dict[str, int] = {}
        self.sink = sink
        self.expect = ExpectTable(self.settings)       # expectations (helpers create them)
        self.helpers = Registry(self.settings)         # the helpers CT --helper can name
        self.notifier: object | None = None            # ecache.Notifier: several listeners
        self.why: str = END_KILLED                     # the reason of the DESTROY being sent

    @property
    def expect_sink(self) -> ExpectSink | None:
        """Where expectation events go: (now, IPEXP_* bits, Expectation) -> None."""
        return self.expect.sink

    @expect_sink.setter
    def expect_sink(self, sink: ExpectSink | None) -> None:
        self.expect.sink = sink

    @property
    def soonest(self) -> float:
        """``expire`` has nothing to do before this time (entries and expectations)."""
        return min(self.table.soonest, self.expect.soonest)

    # -- per packet ----------------------------------------------------------------------
    def conntrack_in(self, pkt: Packet, now: float, hook: int,
                     template: CtTemplate | None = None) -> int:
        """``nf_conntrack_in``: attach ct/ctinfo to ``pkt``. Returns VERDICT_ACCEPT or
        VERDICT_DROP (table full, protocol drop); INVALID packets are accepted with
        ``pkt.ct`` None and ``pkt.reason`` set. ``template``: what a raw-table CT rule
        attached (zone for the lookup; helper for an entry this packet creates)."""
        if pkt.ct is not None or pkt.untracked:
            if pkt.untracked:
                pkt.ctinfo = IP_CT_UNTRACKED
            return VERDICT_ACCEPT
        l4 = self.l4[pkt.proto]
        ret = l4.error(self, pkt, hook, now)     # reads the header itself, bounds-checked
        if ret != CONTINUE:
            if ret == DONE:
                return VERDICT_ACCEPT
            return self._invalid(pkt, pkt.reason or "invalid packet")
        if pkt.l4err is not None:                # damage the protocol's checks don't cover
            return self._invalid(pkt, pkt.l4err)
        proto = pkt.proto
        zone = 0 if template is None else template.zone      # nf_ct_zone_tmpl
        for _ in range(3):      # REPEAT after a TCP reopen; bounded, as a loop guard
            if proto == 6 or proto == 17:
                key: Tuple = (pkt.src, pkt.dst, proto, pkt.sport, pkt.dport, zone)
            else:
                ab = l4.pkt_to_tuple(pkt)
                if ab is None:
                    return self._invalid(pkt, pkt.reason or "cannot get tuple")
                key = (pkt.src, pkt.dst, proto, ab[0], ab[1], zone)
            ct = self.table.hash.get(key)
            if ct is not None and ct.timeout <= now:
                self.kill(ct, now, END_TIMEOUT)
                ct = None
            if ct is None:
                ct = self._init_conntrack(key, l4, pkt, now, template)
                if ct is None:
                    if pkt.reason == "table full":
                        self.stats["drop"] += 1
                        return VERDICT_DROP
                    return self._invalid(pkt, pkt.reason or "cannot invert tuple")
                dir = 0
                ctinfo = IP_CT_RELATED if ct.status & IPS_EXPECTED else IP_CT_NEW
            else:
                if key == ct.orig:
                    dir = 0
                    st = ct.status
                    if st & IPS_SEEN_REPLY:
                        ctinfo = IP_CT_ESTABLISHED
                    elif st & IPS_EXPECTED:
                        ctinfo = IP_CT_RELATED
                    else:
                        ctinfo = IP_CT_NEW
                else:
                    dir = 1
                    ctinfo = IP_CT_ESTABLISHED_REPLY
            ret = l4.packet(self, ct, pkt, dir, ctinfo, now)
            if ret == NF_ACCEPT:
                break
            if not ct.status & IPS_CONFIRMED:
                self.table.count -= 1          # the unconfirmed entry dies with the skb
            if ret == REPEAT:
                self.stats["search_restart"] += 1
                continue
            if ret == NF_DROP:
                self.stats["drop"] += 1
                self._count_reason(pkt.reason or "dropped by protocol tracker")
                pkt.ct = None
                return VERDICT_DROP
            return self._invalid(pkt, pkt.reason or "invalid packet")
        else:
            return self._invalid(pkt, "repeated lookup")
        pkt.ct = ct
        pkt.ctinfo = ctinfo
        if self.is_24 and ct.help is not None and ct.help.helper is not None:
            # linux-2.4: ip_conntrack_in ran the helper here, before any rule (now: confirm);
            # a DROP keeps the classification (the caller releases an unconfirmed entry)
            if ct.help.helper.help(self, ct, pkt, ctinfo, now) != NF_ACCEPT:
                return VERDICT_DROP
        if ctinfo == IP_CT_ESTABLISHED_REPLY and not ct.status & IPS_SEEN_REPLY:
            ct.status |= IPS_SEEN_REPLY
            ct.events |= IPCT_REPLY
        return VERDICT_ACCEPT

    def _invalid(self, pkt: Packet, reason: str) -> int:
        pkt.ct = None
        pkt.ctinfo = IP_CT_NEW   # any value but IP_CT_UNTRACKED: no ct means INVALID
        pkt.reason = reason
        self.stats["invalid"] += 1
        self._count_reason(reason)
        return VERDICT_ACCEPT

    def _count_reason(self, reason: str) -> None:
        d = self.invalid_reasons
        d[reason] = d.get(reason, 0) + 1

    def _init_conntrack(self, key: Tuple, l4: L4Tracker, pkt: Packet, now: float,
                        template: CtTemplate | None = None) -> Conn | None:
        """``init_conntrack``: allocate an unconfirmed entry (None: invalid or table full)."""
        inv = l4.invert(key[3], key[4])
        if inv is None:
            pkt.reason = "cannot invert tuple (not a valid first packet)"
            return None
        table = self.table
        s = self.settings
        if table.count >= s.nf_conntrack_max:
            self.expire(now)
            if table.count >= s.nf_conntrack_max and not self._early_drop(now):
                if self.is_24:
                    # 2.4.0: "dropping packet" only printed; the packet passes untracked
                    pkt.reason = "table full, packet not tracked"
                    return None
                pkt.reason = "table full"
                return None
        reply: Tuple = (key[1], key[0], key[2], inv[0], inv[1], key[5])
        ct = Conn(key, reply, AF_INET6 if len(key[0]) == 16 else 2, now)
        table.count += 1
        # an expectation it fulfils (consumed even if the protocol then refuses the packet,
        # as in the kernel), else the template's helper; linux-2.4: helper by port, always
        exp = self.expect.find(key, now) if self.expect.count else None
        if exp is not None:
            from_expectation(ct, exp)
        elif template is not None and template.helper is not None:
            helper = self.helpers.find(template.helper, ct.l3num, key[2])
            if helper is not None:
                attach(ct, helper)
        if self.is_24:
            helper = self.helpers.by_reply_port(key[2], key[4])
            if helper is not None:
                attach(ct, helper, explicit=False)
        if not l4.new(self, ct, pkt, now):
            table.count -= 1
            if pkt.reason is None:
                pkt.reason = "invalid first packet"
            return None
        return ct

    def _early_drop(self, now: float) -> bool:
        """Evict a non-ASSURED entry. The kernel scans up to 8 hash buckets from the new
        tuple's bucket and drops every non-ASSURED entry of the first bucket holding one;
        statewall (no kernel hash layout) drops the oldest non-ASSURED entry."""
        for victim in self.table.early_drop_candidates():
            if victim.status & (IPS_ASSURED | IPS_DYING):
                continue
            self.kill(victim, now, END_EARLY_DROP)
            self.stats["early_drop"] += 1
            return True
        return False

    def confirm(self, pkt: Packet, now: float) -> int:
        """``nf_conntrack_confirm`` at the last hook: insert a new entry, deliver events.
        Returns VERDICT_DROP when insertion fails (clash)."""
        ct = pkt.ct
        if ct is None:
            return VERDICT_ACCEPT
        help = ct.help
        if (help is not None and help.helper is not None and not self.is_24
                and pkt.ctinfo != IP_CT_RELATED_REPLY):
            # nf_confirm: the entry's helper sees the packet after the rules, before the
            # insertion; its DROP drops the packet (an unconfirmed entry dies with it; the
            # packet keeps its classification for the trace)
            if help.helper.help(self, ct, pkt, pkt.ctinfo, now) != NF_ACCEPT:
                if not ct.status & IPS_CONFIRMED:
                    self.table.count -= 1
                    ct.status |= IPS_DYING
                    self.expect.remove_master(ct, now)
                return VERDICT_DROP
        if not ct.status & IPS_CONFIRMED:
            if pkt.ctinfo >= IP_CT_ESTABLISHED_REPLY:
                return VERDICT_ACCEPT          # only the original direction confirms
            table = self.table
            h = table.hash
            other = h.get(ct.orig)
            if other is None:
                other = h.get(ct.reply)
            if other is not None and other.timeout <= now:
                self.kill(other, now, END_TIMEOUT)
                other = h.get(ct.orig) or h.get(ct.reply)
            if other is not None:
                if help is not None:            # the loser's expectations die with it
                    self.expect.remove_master(ct, now)
                return self._clash(pkt, ct, other, now)
            ct.id = table.next_id
            table.next_id += 1
            table.insert(ct, now)
            ct.events |= IPCT_RELATED if ct.master is not None else IPCT_NEW
            if help is not None:
                if help.helper is not None:
                    ct.events |= IPCT_HELPER
                if ct.master is not None and ct.master.help is not None:
                    ct.master.help.children += 1      # the child's reference on its master
        if ct.events:
            ev = ct.events
            ct.events = 0
            if ct.status & IPS_DYING:
                return VERDICT_ACCEPT          # a killed entry's cached events are dropped
            if ev & IPCT_ASSURED:
                self.table.assured(ct)
            if self.sink is not None:
                self.sink(now, ev, ct)
        return VERDICT_ACCEPT

    def _clash(self, pkt: Packet, ct: Conn, other: Conn, now: float) -> int:
        """``__nf_ct_resolve_clash``: UDP may reuse the entry that won the race."""
        l4name = self.l4[ct.proto].name
        if l4name in ("udp", "udplite") and other.orig == ct.orig and other.reply == ct.reply:
            self.table.count -= 1
            self.stats["clash_resolve"] += 1
            pkt.ct = other
            pkt.ctinfo = IP_CT_ESTABLISHED if other.status & IPS_SEEN_REPLY else IP_CT_NEW
            return VERDICT_ACCEPT
        self.table.count -= 1
        self.stats["insert_failed"] += 1
        self.stats["drop"] += 1
        pkt.ct = None
        pkt.reason = "insert failed: tuple clashes with an existing entry"
        return VERDICT_DROP

    def release(self, pkt: Packet) -> None:
        """The packet was dropped before confirm: an unconfirmed entry dies with it. The
        packet keeps pointing at it (DYING) so reports still show what the rules saw."""
        ct = pkt.ct
        if ct is not None and not ct.status & (IPS_CONFIRMED | IPS_DYING):
            self.table.count -= 1
            ct.status |= IPS_DYING

    # -- entry lifetime ------------------------------------------------------------------
    def refresh_acct(self, ct: Conn, pkt: Packet, dir: int, now: float, timeout: float) -> None:
        """``nf_ct_refresh_acct``: extend the timeout (unless FIXED_TIMEOUT) and count."""
        if not ct.status & IPS_FIXED_TIMEOUT:
            t = ct.timeout = now + timeout
            if t < ct.bucket:           # moved before its bucket: re-file (extensions don't)
                self.table.file(ct, now)
        a = ct.acct
        i = dir + dir
        a[i] += 1
        a[i + 1] += len(pkt.buf)

    def acct(self, ct: Conn, pkt: Packet, dir: int) -> None:
        a = ct.acct
        i = dir + dir
        a[i] += 1
        a[i + 1] += len(pkt.buf)

    def set_assured(self, ct: Conn) -> None:
        ct.status |= IPS_ASSURED
        ct.events |= IPCT_ASSURED

    def kill(self, ct: Conn, now: float, why: str = END_KILLED) -> None:
        """``nf_ct_kill`` / ``nf_ct_delete``: remove the entry and report DESTROY (``why``:
        an ``END_*`` reason, ``self.why`` while the listeners run)."""
        if ct.status & IPS_DYING:
            return
        ct.status |= IPS_DYING
        if ct.status & IPS_CONFIRMED:
            self.table.remove(ct)
            self.table.count -= 1
            if self.sink is not None:
                self.why = why
                self.sink(now, IPCT_DESTROY, ct)
            m = ct.master
            if m is not None and m.help is not None:
                m.help.children -= 1             # drops its reference on the master
        if ct.help is not None and ct.help.expectations:
            self.expect.remove_master(ct, now)   # nf_ct_remove_expectations, after DESTROY

    def lookup(self, key: Tuple, now: float) -> Conn | None:
        """A live confirmed entry by either tuple (expired ones are reaped)."""
        ct = self.table.hash.get(key)
        if ct is not None and ct.timeout <= now:
            self.kill(ct, now, END_TIMEOUT)
            return None
        return ct

    def expire(self, now: float) -> int:
        """Remove every entry whose timeout has passed. Returns how many."""
        if now >= self.expect.soonest:
            self.expect.expire(now)              # expectation timers
        if now < self.table.soonest:
            return 0
        n = 0
        for ct in self.table.due(now):
            self.kill(ct, now, END_TIMEOUT)
            n += 1
        return n

    def next_deadline(self) -> float | None:
        a = self.table.next_deadline()
        b = self.expect.next_deadline()
        if a is None:
            return b
        return a if b is None else min(a, b)

    def entries(self, now: float) -> list[Conn]:
        """Live confirmed entries (expired ones are reaped first), oldest first."""
        self.expire(now)
        return [ct for ct in self.table.entries() if ct.timeout > now]


# -- the C accelerator (statewall/_speedups.c) ------------------------------------------------
conntrack_in_py: Final = Tracker.conntrack_in     # the reference the C path must equal


def _accelerate() -> bool:
    """Install the C ``conntrack_in`` (an established TCP segment; everything else is
    ``conntrack_in_py``, called before anything changed). False: it stays pure Python."""
    from ..accel import install
    from .proto import tcp as _tcp

    def bind() -> dict[str, Any]:
        from .. import _speedups
        return _speedups.tracker_methods(Tracker, conntrack_in_py, Table, Conn)
    return install(Tracker, bind, _tcp.ACCELERATED)   # (tcp binds Packet, Conn, Settings)


ACCELERATED: Final = _accelerate()
