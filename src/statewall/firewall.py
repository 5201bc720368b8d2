"""The facade: one packet in, one decision out, through the netfilter hooks (sans-I/O).

Owns: the order in which a packet meets defragmentation, the rule tables and conntrack at
each hook, the routing decision between PREROUTING and INPUT/FORWARD, packets the firewall
itself generates (REJECT's replies take the OUTPUT path, attached to the original's entry as
RELATED like ``nf_ct_attach``), the per-packet ``Decision`` handed to front ends, and the
clock-driven housekeeping (``expire(now)``, ``next_deadline()``). Must not know: capture
files, NFQUEUE, output formats, how a rule matches.

Hook order and priorities as in the kernel (include/uapi/linux/netfilter_ipv4.h):
  arriving:  defrag -400, raw -300, conntrack -200, mangle -150, nat(DNAT) -100, routing,
             then INPUT (mangle, filter, nat(SNAT) +100) or FORWARD (mangle, filter) +
             POSTROUTING (mangle, nat(SNAT) +100); helpers +300 and confirm last.
  local out: defrag -400, raw -300, conntrack -200, mangle -150, nat(DNAT) -100, filter 0,
             routing, POSTROUTING (mangle, nat(SNAT)), helpers, confirm.
NAT (``statewall.nat``, only when the rule set has a nat table, as the kernel registers its
NAT hooks only then): at PREROUTING/OUTPUT the destination manip, at POSTROUTING/INPUT the
source manip, each as ``nf_nat_inet_fn``: the nat table is consulted only for an entry's
first packet whose manip is not bound yet (a NAT target binds it, else a null binding),
every packet is rewritten from the entry's binding (``pkt.buf`` becomes the rewritten
bytes), ICMP errors about a NATed entry are translated inside and out. Routing follows the
destination after PREROUTING's DNAT (and OUTPUT's, ``ip_route_me_harder``). At the confirm
hook, after the helper (which may rewrite an FTP command: ``nf_nat_ftp``), TCP sequence
numbers are adjusted. With ``want_output`` the decision also carries the bytes that leave
(``Decision.out``): forwarded packets with the TTL / hop limit decremented and reassembled
datagrams cut into fragments again.
Without rule sets every table is empty (policy ACCEPT), as a kernel with no rules loaded;
IPv6 packets without ``rules6`` likewise.
"""

from __future__ import annotations

from typing import Any, Final, Sequence

from .conntrack.conn import (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, IP_CT_RELATED,
                             IP_CT_RELATED_REPLY, IPS_CONFIRMED, IPS_SEEN_REPLY, Conn)
from .conntrack.core import VERDICT_DROP, Tracker
from .conntrack.defrag import Defrag
from .conntrack.proto.base import (NF_INET_FORWARD, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT,
                                   NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING)
from .conntrack.sysctl import Settings
from .flowcache import FlowEntry, Step, replay, steps, store
from .host import HostModel
from .packet.decode import decode_ip
from .packet.packet import AF_INET6, Packet, ParseError

ACCEPT: Final = "ACCEPT"
DROP: Final = "DROP"
HOLD: Final = "HOLD"

HOOK_NAMES: Final = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
_HOOK_NUM: Final = {name: i for i, name in enumerate(HOOK_NAMES)}

# per hook: the tables consulted after conntrack, in priority order ("nat" only for an
# entry's first packet); raw runs before conntrack and is handled separately
_AFTER_CT: Final[dict[int, tuple[str, ...]]] = {
    NF_INET_PRE_ROUTING: ("mangle", "nat"),
    NF_INET_LOCAL_IN: ("mangle", "filter", "nat"),
    NF_INET_FORWARD: ("mangle", "filter"),
    NF_INET_LOCAL_OUT: ("mangle", "nat", "filter"),
    NF_INET_POST_ROUTING: ("mangle", "nat"),
}


class Decision:
    """What happened to one packet.

    verdict: ACCEPT, DROP or HOLD (a fragment kept for reassembly). pkt: the packet
    conntrack saw (the reassembled datagram when this fragment completed one), or None.
    reason: why (INVALID, DROP); source: the rule or policy that decided ("filter/FORWARD#3",
    "filter/INPUT policy"), or None. path: the hooks traversed, e.g. ["PREROUTING",
    "FORWARD", "POSTROUTING"]. matched: (table, chain, rule number, rule text) of every
    rule whose target ran (when tracing). emitted: side outputs in order (LOG lines, NFLOG
    records, TRACE lines, generated packets as ``Emitted``). nat: the NAT targets that
    bound the entry (``NatRequest``s). out_iface: the routing decision. out: with
    ``Firewall.want_output``, what leaves the box for this packet, in order: (output
    interface, bytes from the network header) - one item, or one per fragment. seen: the
    bytes as conntrack saw them, when NAT has rewritten ``pkt.buf`` since (else None).
    rule: the filter table's deciding rule or policy ("filter/FORWARD#3"); a new entry
    keeps it as ``Conn.rule`` when it is confirmed (``conntrack -D --rule``).
    """

    __slots__ = ("verdict", "pkt", "reason", "ct", "ctinfo", "fragments", "discarded",
                 "source", "path", "matched", "emitted", "nat", "out_iface", "route_drop",
                 "out", "seen", "rule")

    def __init__(self, verdict: str, pkt: Packet | None, reason: str | None = None) -> None:
        self.verdict = verdict
        self.pkt = pkt
        self.reason = reason
        self.ct: Conn | None = None
        self.ctinfo = 0
        self.fragments = 0        # fragments merged into pkt (0: not reassembled)
        self.discarded = 0        # earlier held fragments thrown away by this packet
        self.source: str | None = None
        # sequences start as the shared empty tuple (no allocation on the fast path) and
        # are replaced, never mutated in place
        self.path: Sequence[str] = ()
        self.matched: Sequence[tuple[str, str, int, str]] = ()
        self.emitted: Sequence[Any] = ()
        self.nat: Sequence[Any] = ()
        self.out_iface: str | None = None
        self.route_drop: str | None = None
        self.out: Sequence[tuple[str | None, bytes]] = ()
        self.seen: bytes | None = None
        self.rule: str | None = None


_REJECT_HOOK: Final = {"INPUT": NF_INET_LOCAL_IN, "FORWARD": NF_INET_FORWARD,
                       "OUTPUT": NF_INET_LOCAL_OUT}


def _forwarded_copy(pkt: Packet) -> Packet:
    """The packet as FORWARD sees it: ``ip_forward`` has already decremented the TTL (and
    fixed the header checksum) / ``ip6_forward`` the hop limit."""
    from .nat.forward import forwarded
    try:
        out = decode_ip(forwarded(pkt.buf))
    except ParseError:
        return pkt
    out.iface, out.ts, out.mark = pkt.iface, pkt.ts, pkt.mark
    return out


class Emitted:
    """A packet the firewall generated (REJECT): its bytes as they leave (after NAT on its
    way out), the decision on its own way out through OUTPUT/POSTROUTING, and what it
    answers."""

    __slots__ = ("kind", "data", "decision", "about")

    def __init__(self, kind: str, data: bytes, decision: Decision, about: str) -> None:
        self.kind = kind
        self.data = data
        self.decision = decision
        self.about = about


class Firewall:
    """A host with conntrack and, optionally, iptables/ip6tables rule sets."""

    __slots__ = ("settings", "tracker", "defrag", "host", "engine4", "engine6", "trace",
                 "_ctx_type", "nat", "want_output", "_plans", "flow_cache", "wall_offset")

    def __init__(self, settings: Settings | None = None, tracker: Tracker | None = None,
                 rules4: Any = None, rules6: Any = None, host: HostModel | None = None,
                 trace: bool = False, want_output: bool = False,
                 flow_cache: bool = True) -> None:
        self.settings = settings if settings is not None else Settings()
        self.tracker = tracker if tracker is not None else Tracker(self.settings)
        self.defrag = Defrag(self.settings)
        self.host = host if host is not None else HostModel()
        self.trace = trace
        self.want_output = want_output      # fill Decision.out (replay --write)
        self.flow_cache = flow_cache        # replay established flows' traversals
        # UNIX time minus the ``now`` the caller passes (0: ``now`` is wall-clock time, as
        # a capture's timestamps; live mode passes the monotonic clock and sets it)
        self.wall_offset = 0.0
        self._plans: dict[int, dict[int, tuple[str, ...]]] = {}
        self.nat: Any = None                # statewall.nat.Nat when a nat table is loaded
        self.engine4: Any = None
        self.engine6: Any = None
        self._ctx_type: Any = None
        if rules4 is not None or rules6 is not None:
            from .rules.context import Context
            from .rules.engine import Engine
            self._ctx_type = Context
            self.engine4 = Engine(rules4) if rules4 is not None else None
            self.engine6 = Engine(rules6) if rules6 is not None else None
            if any(e is not None and "nat" in e.tables for e in (self.engine4, self.engine6)):
                from .nat import Nat
                self.nat = Nat(self.tracker, self.host)

    # -- the packet path -----------------------------------------------------------------
    def process(self, pkt: Packet, now: float, hook: int = NF_INET_PRE_ROUTING) -> Decision:
        """Run one decoded datagram through the path. ``hook`` is where it enters:
        NF_INET_PRE_ROUTING (arrived on ``pkt.iface``) or NF_INET_LOCAL_OUT (sent by the
        firewall host itself)."""
        tracker = self.tracker
        if now >= tracker.table.soonest or now >= tracker.expect.soonest:
            tracker.expire(now)
        defrag = self.defrag
        if defrag.v4.queues or defrag.v6.queues:
            defrag.expire(now)                  # reassembly timers (ipfrag_time)
        if not (pkt.mf or pkt.fragoff or pkt.frag_hdr_off >= 0 or pkt.proto == 44):
            # not a fragment: the common case
            engine = self.engine6 if pkt.l3num == AF_INET6 else self.engine4
            if engine is None:
                return self._conntrack_only(pkt, now, hook)
            return self._with_rules(engine, pkt, now, hook)
        merged = 0
        res = self.defrag.feed(pkt, now, 1 if hook == NF_INET_LOCAL_OUT else 0)
        kind = res.kind
        discarded = len(res.discarded)
        if kind == "hold":
            d = Decision(HOLD, None, res.reason or "fragment queued for reassembly")
            d.discarded = discarded
            return d
        if kind == "dropped":
            d = Decision(DROP, None, f"defragmentation: {res.reason}")
            d.discarded = discarded
            return d
        if kind == "complete":
            assert res.data is not None
            try:
                whole = decode_ip(res.data)
            except ParseError as e:
                return Decision(DROP, None, f"reassembled datagram: {e.reason}")
            head = res.fragments[0]
            whole.iface = pkt.iface
            whole.ts = pkt.ts
            whole.mark = head.mark
            merged = res.count
            pkt = whole
        # "pass": not reassembled (IPv6 cases the kernel lets through); tracked as is
        engine = self.engine6 if pkt.l3num == AF_INET6 else self.engine4
        if engine is None:
            d = self._conntrack_only(pkt, now, hook)
        else:
            d = self._with_rules(engine, pkt, now, hook)
        d.fragments = merged
        d.discarded = discarded
        if merged and d.out:
            # ip_do_fragment / ip6_fragment: out again along the original fragments' cuts
            from .nat.forward import refragment
            offsets = [f.fragoff for f in res.fragments]
            ident = res.fragments[0].ipid
            d.out = [(dev, part) for dev, data in d.out
                     for part in refragment(data, offsets, ident)]
        return d

    def _conntrack_only(self, pkt: Packet, now: float, hook: int) -> Decision:
        """Empty tables: conntrack and confirm only (the fast path)."""
        tracker = self.tracker
        if tracker.conntrack_in(pkt, now, hook) == VERDICT_DROP:
            tracker.release(pkt)
            return Decision(DROP, pkt, pkt.reason)
        d = Decision(ACCEPT, pkt, pkt.reason)
        if self.host.ifaces:
            d.out_iface = self._route(pkt, hook, d)
            if d.route_drop is not None:
                tracker.release(pkt)
                d.verdict = DROP
                d.reason = d.route_drop
                d.source = "routing"
                return d
        ct = pkt.ct
        if ct is not None and (ct.events or ct.help is not None
                               or not ct.status & IPS_CONFIRMED):
            # (confirm has nothing to do for a confirmed entry without helper or events)
            if tracker.confirm(pkt, now) == VERDICT_DROP:
                d.verdict = DROP
                d.reason = pkt.reason
                return d
        d.ct = pkt.ct
        d.ctinfo = pkt.ctinfo
        if self.want_output:
            self._output(d, pkt, hook)
        return d

    def _output(self, d: Decision, pkt: Packet, hook: int) -> None:
        """``Decision.out`` of an accepted packet: a forwarded one as ``ip_forward`` sends
        it on (TTL / hop limit one less), one the host sent as it is; nothing for one
        delivered to the host."""
        if d.verdict != ACCEPT:
            return
        if hook == NF_INET_LOCAL_OUT:
            d.out = [(d.out_iface, pkt.buf)]
        elif "FORWARD" in d.path or not self.host.ifaces:
            from .nat.forward import forwarded
            d.out = [(d.out_iface, forwarded(pkt.buf))]

    def _route(self, pkt: Packet, hook: int, d: Decision) -> str | None:
        """Routing decision: fills ``d.path`` and returns the output interface. A packet
        the routing code drops (``ip_route_input`` / ``ip_forward``) gets ``d.path`` =
        ["PREROUTING"] and ``d.route_drop`` says why: it never reaches INPUT/FORWARD and
        its new entry is never confirmed."""
        host = self.host
        if hook == NF_INET_LOCAL_OUT:
            d.path = ["OUTPUT", "POSTROUTING"]
            return host.route(pkt.dst)
        local, unjoined, out = host.arrival(pkt.dst)
        if local:
            d.path = ["PREROUTING", "INPUT"]
            return None
        if unjoined:
            d.path = ["PREROUTING"]
            d.route_drop = "multicast group not joined by the host (not forwarded)"
            return None
        if out is None:
            d.path = ["PREROUTING"]
            d.route_drop = "no route to the destination (ip_route_input: unreachable)"
            return None
        if pkt.ttl <= 1:
            d.path = ["PREROUTING"]
            d.route_drop = ("TTL expired in transit (ip_forward drops it and sends ICMP "
                            "time exceeded)" if pkt.l3num != AF_INET6 else
                            "hop limit expired in transit (ip6_forward drops it and sends "
                            "ICMPv6 time exceeded)")
            return out
        d.path = ["PREROUTING", "FORWARD", "POSTROUTING"]
        return out

    def _with_rules(self, engine: Any, pkt: Packet, now: float, hook: int,
                    generated: bool = False) -> Decision:
        if (hook == NF_INET_PRE_ROUTING and self.flow_cache and not generated
                and not self.trace and (pkt.proto == 6 or pkt.proto == 17)
                and "nat" not in engine.tables):
            hit = self._cached(engine, pkt, now)     # an established flow (flowcache.py)
            if hit is not None:
                return hit
        tracker = self.tracker
        host = self.host
        d = Decision(ACCEPT, pkt)
        local_out = hook == NF_INET_LOCAL_OUT
        if local_out:
            # a local packet is routed by its socket before OUTPUT
            out_iface = self._route(pkt, hook, d) if host.ifaces else None
            if not host.ifaces:
                d.path = ["OUTPUT", "POSTROUTING"]
        else:
            out_iface = None                # routing comes after PREROUTING (after DNAT)
            d.path = ["PREROUTING"]
        d.out_iface = out_iface
        in_iface = pkt.iface if not local_out else None
        ctx = self._ctx_type(now=now, in_iface=in_iface, out_iface=None,
                             local_addrs=host.local, tracker=tracker, pkttype=None,
                             wall_offset=self.wall_offset)
        nat = self.nat if "nat" in engine.tables else None
        first = HOOK_NAMES[hook]
        # raw, before conntrack (only when the rule set loads a raw table: the kernel
        # registers a table's hooks only then)
        template = None
        if engine.has_chain("raw", first):
            res = engine.run("raw", first, pkt, ctx, trace=self.trace)
            if not self._absorb(d, res, "raw", first):
                return d
            template = res.ct_template
        if nat is not None:
            nat.prime(tracker, pkt, 0 if template is None else template.zone)
        if template is not None:
            ret = tracker.conntrack_in(pkt, now, hook, template)
        else:
            ret = tracker.conntrack_in(pkt, now, hook)
        return self._after_conntrack(engine, d, ctx, pkt, now, hook, generated, ret,
                                     out_iface)

    def _after_conntrack(self, engine: Any, d: Decision, ctx: Any, pkt: Packet, now: float,
                         hook: int, generated: bool, ret: int,
                         out_iface: str | None) -> Decision:
        """Everything after conntrack_in: the tables of each hook, routing, confirm."""
        tracker = self.tracker
        host = self.host
        local_out = hook == NF_INET_LOCAL_OUT
        nat = self.nat if "nat" in engine.tables else None
        plan = self._plan(engine)
        if ret == VERDICT_DROP:
            if not generated:
                tracker.release(pkt)
            d.verdict = DROP
            d.reason = pkt.reason
            d.source = "conntrack"
            return d
        d.reason = pkt.reason
        seen = pkt.buf
        if nat is not None:
            nat.after_conntrack(pkt, now)
        i = 0
        while i < len(d.path):
            hname = d.path[i]
            h = _HOOK_NUM[hname]
            if hname in ("FORWARD", "POSTROUTING", "OUTPUT"):
                ctx.out_iface = out_iface if hname != "OUTPUT" or out_iface else None
            dst = pkt.dst
            for table in plan[h]:
                if table == "nat":
                    if nat is None:
                        continue
                    ok = self._nat_hook(engine, d, nat, pkt, ctx, h, hname, out_iface, now)
                else:
                    res = engine.run(table, hname, pkt, ctx, trace=self.trace)
                    if (res.verdict == 1 and not res.emitted and res.nat is None
                            and not self.trace):
                        if table == "filter":       # (_absorb, when nothing else to take)
                            d.rule = res.source
                        continue
                    ok = self._absorb(d, res, table, hname)
                if not ok:
                    if not generated:
                        tracker.release(pkt)
                    self._reject_replies(engine, d, pkt, now, hook)
                    return d
            if i == 0:
                if not local_out:
                    # the routing decision, on the destination PREROUTING left
                    if host.ifaces:
                        out_iface = self._route(pkt, hook, d)
                    else:
                        d.path = ["PREROUTING", "FORWARD", "POSTROUTING"]
                    d.out_iface = out_iface
                    if d.route_drop is not None:
                        if not generated:
                            tracker.release(pkt)
                        d.verdict = DROP
                        d.reason = d.route_drop
                        d.source = "routing"
                        return d
                elif pkt.dst != dst and host.ifaces:
                    # OUTPUT's DNAT changed the destination: ip_route_me_harder (a local
                    # destination, e.g. REDIRECT's 127.0.0.1, goes out through lo)
                    out_iface = "lo" if host.delivers_locally(pkt.dst) else host.route(pkt.dst)
                    d.out_iface = out_iface
            i += 1
        ct = pkt.ct
        fresh = ct is not None and not ct.status & IPS_CONFIRMED
        if tracker.confirm(pkt, now) == VERDICT_DROP:
            d.verdict = DROP
            d.reason = pkt.reason
            d.source = "conntrack confirm"
            return d
        if fresh and pkt.ct is ct:
            ct.rule = d.rule                    # which rule let the entry in (-D --rule)
        if nat is not None:
            why = nat.seq_adjust(pkt)           # nf_confirm: after the helper
            if why is not None:
                d.verdict = DROP
                d.reason = why
                d.source = "conntrack confirm"
                return d
        d.ct = pkt.ct
        d.ctinfo = pkt.ctinfo
        if pkt.buf is not seen:
            d.seen = seen
        if self.want_output:
            self._output(d, pkt, hook)
        return d

    # -- the flow cache (flowcache.py) ---------------------------------------------------
    def _cached(self, engine: Any, pkt: Packet, now: float) -> Decision | None:
        """An established TCP/UDP packet whose direction has a valid record: replay it
        (None: take the full path)."""
        tracker = self.tracker
        key = (pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport, 0)
        ct = tracker.table.hash.get(key)
        if ct is None:
            return None
        if ct.timeout <= now:
            return None
        fc = ct.fc
        if key == ct.orig:
            if not ct.status & IPS_SEEN_REPLY:
                return None
            e: FlowEntry | None = fc[0] if fc is not None else None
            want = IP_CT_ESTABLISHED
        else:
            e = fc[1] if fc is not None else None
            want = IP_CT_ESTABLISHED_REPLY
        if (e is None or e.engine is not engine or e.iface != pkt.iface or e.ctinfo != want
                or e.mark != pkt.mark or e.tos != pkt.tos or e.hostgen != self.host.gen):
            return self._learn(engine, pkt, now, ct, want)
        if e.pre:
            replay(e.pre, len(pkt.buf))
        ret = tracker.conntrack_in(pkt, now, NF_INET_PRE_ROUTING)
        if ret == VERDICT_DROP or pkt.ct is not ct or pkt.ctinfo != want:
            return self._diverged(engine, pkt, now, ret)
        return self._replay(e, pkt, now, ct, want)

    def _replay(self, e: FlowEntry, pkt: Packet, now: float, ct: Conn, want: int) -> Decision:
        """The recorded traversals after conntrack: counters, the decision, confirm."""
        tracker = self.tracker
        replay(e.post, len(pkt.buf))
        verdict = e.verdict
        d = Decision(verdict, pkt, pkt.reason if verdict == ACCEPT else e.reason)
        d.path = e.path
        d.out_iface = e.out_iface
        d.source = e.source
        if verdict != ACCEPT:
            return d
        if (ct.events or ct.help is not None) and tracker.confirm(pkt, now) == VERDICT_DROP:
            d.verdict = DROP
            d.reason = pkt.reason
            d.source = "conntrack confirm"
            return d
        d.ct = ct
        d.ctinfo = want
        if self.want_output:
            self._output(d, pkt, NF_INET_PRE_ROUTING)
        return d

    def _learn(self, engine: Any, pkt: Packet, now: float, ct: Conn,
               want: int) -> Decision | None:
        """An established packet whose direction has no valid record: walk the tables
        without effects (``Engine.walk``), keep the record, replay it. None (nothing was
        done yet): take the full path; after conntrack, a walk that finds something not
        flow-stable hands over to the full path from there (``_diverged``)."""
        tracker = self.tracker
        host = self.host
        ctx = self._ctx_type(now=now, in_iface=pkt.iface, out_iface=None,
                             local_addrs=host.local, tracker=tracker, pkttype=None,
                             wall_offset=self.wall_offset)
        pre: list[Step] = []
        if engine.has_chain("raw", "PREROUTING"):
            w = engine.walk("raw", "PREROUTING", pkt, ctx)
            if w is None or w[0] != 1:
                return None
            pre = steps(engine.tables["raw"], w[2])
            replay(tuple(pre), len(pkt.buf))      # raw ran
        ret = tracker.conntrack_in(pkt, now, NF_INET_PRE_ROUTING)
        e = None
        if ret != VERDICT_DROP and pkt.ct is ct and pkt.ctinfo == want:
            e = self._walk_after(engine, pkt, ctx, want, tuple(pre))
        if e is None:
            return self._diverged(engine, pkt, now, ret)   # the full path from here
        store(ct, 0 if want == IP_CT_ESTABLISHED else 1, e)
        return self._replay(e, pkt, now, ct, want)

    def _walk_after(self, engine: Any, pkt: Packet, ctx: Any, want: int,
                    pre: tuple[Step, ...]) -> FlowEntry | None:
        """``_after_conntrack``'s hooks, tables and routing as ``Engine.walk`` sees them:
        the record of an established packet, or None."""
        host = self.host
        plan = self._plan(engine)
        post: list[Step] = []
        d = Decision(ACCEPT, pkt)                  # (for _route: path, out_iface)
        hooks: Sequence[str] = ("PREROUTING",)
        out_iface: str | None = None
        i = 0
        while i < len(hooks):
            hname = hooks[i]
            if hname == "FORWARD" or hname == "POSTROUTING":
                ctx.out_iface = out_iface
            for table in plan[_HOOK_NUM[hname]]:
                if table == "nat":
                    continue                       # (no nat table: nothing to bind)
                w = engine.walk(table, hname, pkt, ctx)
                if w is None:
                    return None
                post += steps(engine.tables[table], w[2])
                if w[0] != 1:                      # as _absorb: anything else drops
                    return FlowEntry(engine, pkt.iface, pkt.mark, pkt.tos, host.gen, want,
                                     pre, tuple(post), tuple(hooks), out_iface, DROP, w[1],
                                     f"dropped by {w[1]}")
            if i == 0:
                if host.ifaces:
                    out_iface = self._route(pkt, NF_INET_PRE_ROUTING, d)
                    if d.route_drop is not None:
                        return None
                    hooks = tuple(d.path)
                else:
                    hooks = ("PREROUTING", "FORWARD", "POSTROUTING")
            i += 1
        return FlowEntry(engine, pkt.iface, pkt.mark, pkt.tos, host.gen, want, pre,
                         tuple(post), tuple(hooks), out_iface, ACCEPT, None, None)

    def _diverged(self, engine: Any, pkt: Packet, now: float, ret: int) -> Decision:
        """A cached packet that conntrack sees otherwise (INVALID, a reopen): the rest of
        the full path (raw already ran)."""
        d = Decision(ACCEPT, pkt)
        d.path = ["PREROUTING"]
        host = self.host
        ctx = self._ctx_type(now=now, in_iface=pkt.iface, out_iface=None,
                             local_addrs=host.local, tracker=self.tracker, pkttype=None,
                             wall_offset=self.wall_offset)
        return self._after_conntrack(engine, d, ctx, pkt, now, NF_INET_PRE_ROUTING, False,
                                     ret, None)

    def _plan(self, engine: Any) -> dict[int, tuple[str, ...]]:
        """Per hook, the tables after conntrack that the rule set loads (nat always kept:
        ``_nat_hook`` decides), computed once per engine."""
        plan = self._plans.get(id(engine))
        if plan is None:
            plan = {h: tuple(t for t in tables if t == "nat"
                             or engine.has_chain(t, HOOK_NAMES[h]))
                    for h, tables in _AFTER_CT.items()}
            self._plans[id(engine)] = plan
        return plan

    def _nat_hook(self, engine: Any, d: Decision, nat: Any, pkt: Packet, ctx: Any, h: int,
                  hname: str, out_iface: str | None, now: float) -> bool:
        """The NAT hook at ``h`` (``nf_nat_ipv4_fn`` / ``nf_nat_ipv6_fn``): the nat table
        for an entry's first packet and its binding, the translation for every packet.
        False: the packet is dropped (``d`` says why)."""
        if nat.needs_rules(pkt, h):
            res = engine.run("nat", hname, pkt, ctx, trace=self.trace)
            if not self._absorb(d, res, "nat", hname):
                return False
            why = nat.bind(pkt, h, res.nat, out_iface, now)
        else:
            why = nat.translate(pkt, h, out_iface, now)
        if why is not None:
            d.verdict = DROP
            d.reason = why
            d.source = f"nat/{hname}"
            return False
        return True

    def _absorb(self, d: Decision, res: Any, table: str, hook: str) -> bool:
        """Take one table's result into the decision; False when the packet is dropped."""
        if self.trace and res.matched:
            d.matched = [*d.matched, *res.matched]
        if res.emitted:
            d.emitted = [*d.emitted, *res.emitted]
        nat = getattr(res, "nat", None)
        if nat:
            d.nat = [*d.nat, nat]
        if res.verdict != 1:
            d.verdict = DROP
            d.source = res.source
            d.reason = f"dropped by {res.source}"
            return False
        src = res.source
        if table == "filter":
            d.rule = src
        if self.trace and src and not src.endswith("no such chain"):
            # an accepted packet's source: the last rule that accepted it, else the last
            # policy that did
            if "#" in src or d.source is None or "#" not in d.source:
                d.source = src
        return True

    def _reject_replies(self, engine: Any, d: Decision, pkt: Packet, now: float,
                        hook: int) -> None:
        """Build REJECT's packets and send them out through OUTPUT like the kernel
        (``nf_send_unreach`` / ``nf_send_reset``, then ``ip_local_out``)."""
        from .packet.reject import reject
        from .rules.result import RejectRecord
        rejects = [e for e in d.emitted if isinstance(e, RejectRecord)]
        for item in rejects:
            where = _REJECT_HOOK.get(item.hook, NF_INET_FORWARD)
            seen = _forwarded_copy(pkt) if where == NF_INET_FORWARD else pkt
            try:
                built = reject(seen, item.with_, where, src_addr=self._icmp_source(pkt, where))
            except (ValueError, NotImplementedError) as e:
                d.emitted = [*d.emitted, Emitted("REJECT-none", b"",
                                                 Decision(DROP, None, str(e)), item.with_)]
                continue
            if built.data is None:
                d.emitted = [*d.emitted, Emitted("REJECT-none", b"",
                                                 Decision(DROP, None, built.reason),
                                                 item.with_)]
                continue
            try:
                out = decode_ip(built.data)
            except ParseError:
                continue
            if pkt.ct is not None:
                # nf_ct_attach: the reply is RELATED to the entry, in the other direction
                out.ct = pkt.ct
                out.ctinfo = IP_CT_RELATED if pkt.ctinfo >= IP_CT_ESTABLISHED_REPLY \
                    else IP_CT_RELATED_REPLY
                if self.nat is not None and out.proto == 6:
                    # nf_send_reset leaves the RST's checksum CHECKSUM_PARTIAL: computed
                    # in full after NAT
                    from .nat.core import ext
                    ext(pkt.ct).partial = out
            sub = self._with_rules(engine, out, now, NF_INET_LOCAL_OUT, generated=True)
            # the bytes as they leave: after NAT on OUTPUT/POSTROUTING
            d.emitted = [*d.emitted, Emitted("REJECT", out.buf, sub, item.with_)]

    def _icmp_source(self, pkt: Packet, hook: int) -> bytes | None:
        """The address an ICMP error leaves from: the original destination when it is
        ours; else (IPv4) the address of the interface routing picks toward the sender,
        (IPv6) an address of the input interface; else the original destination."""
        host = self.host
        if pkt.dst in host.local:
            return pkt.dst
        version = 6 if pkt.l3num == AF_INET6 else 4
        dev = pkt.iface if version == 6 else host.route(pkt.src)
        src = host.source_for(dev, version)
        return src if src is not None else pkt.dst

    # -- housekeeping --------------------------------------------------------------------
    def expire(self, now: float) -> None:
        self.tracker.expire(now)
        self.defrag.expire(now)

    def next_deadline(self) -> float | None:
        a = self.tracker.next_deadline()
        b = self.defrag.next_deadline()
        if a is None:
            return b
        return a if b is None else min(a, b)


# -- the C accelerator (statewall/_speedups.c) ------------------------------------------------
process_py: Final = Firewall.process     # the reference the C path must equal


def _accelerate() -> bool:
    """Install the C ``process``: an established TCP segment without rule sets and
    interfaces, or one whose direction has a flow cache record; everything else is
    ``process_py``, called before anything changed. False: it stays pure Python."""
    from .accel import install
    from .conntrack import core
    from .rules import engine

    def bind() -> dict[str, Any]:
        from . import _speedups
        from .conntrack.defrag import _Family
        from .conntrack.expect import ExpectTable
        from .rules.compile import CompiledTable
        from .rules.context import Context
        return _speedups.firewall_methods(Firewall, process_py, Decision,
                                          Decision(ACCEPT, None), Defrag, _Family, ExpectTable,
                                          HostModel, engine.Engine, FlowEntry, ACCEPT, DROP,
                                          Context, Context(), CompiledTable, dict(_HOOK_NUM))
    # (the flow cache's recording walks the chains in C: engine's bind comes first)
    return install(Firewall, bind, core.ACCELERATED, engine.ACCELERATED)


ACCELERATED: Final = _accelerate()
