"""NAT at the netfilter hooks: bind an entry's first packet, translate every packet.

Owns: what the kernel's NAT hook functions do at PREROUTING and LOCAL_OUT (destination)
and POSTROUTING and LOCAL_IN (source): ICMP errors RELATED to an entry have their quoted
header and their outer header translated (and never see the nat table); an entry's first
packet (NEW, RELATED, RELATED_REPLY) whose manip is not set up yet runs the nat table -
a NAT target binds it, else a null binding does -; every packet is then rewritten as the
entry's binding says (original direction per IPS_SRC_NAT/IPS_DST_NAT, reply direction the
inverse); MASQUERADE's entries are killed when their original direction leaves through
another interface; the expected connections of a NAT helper follow their master from
conntrack on (``exp->expectfn``); the TCP tracker is primed with sequence offsets.
Must not know: how the rule engine runs (the caller runs the nat table and hands over the
NAT target it hit, if any), routing, capture files.
Follows net/netfilter/nf_nat_core.c (``nf_nat_inet_fn``, ``nf_nat_packet``,
``nf_nat_oif_changed``), nf_nat_proto.c (``nf_nat_ipv4_fn``, ``nf_nat_ipv6_fn``,
``nf_nat_manip_pkt``, ``nf_nat_icmp*_reply_translation``) and nf_nat_masquerade.c.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..conntrack.conn import (IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY, IP_CT_RELATED,
                              IP_CT_RELATED_REPLY, IPS_CONFIRMED, IPS_DST_NAT, IPS_SRC_NAT)
from . import seqadj
from .core import (IPS_NAT_DONE_MASK, IPS_NAT_MASK, IPS_SEQ_ADJUST, NF_NAT_MANIP_SRC,
                   NatCore, ext, hook2manip, initialized)
from .helpers import run_expectfn
from .manip import (ICMP_REDIRECT, ICMP_QUERY_TYPES, ICMPV6_ECHO, NDISC_REDIRECT,
                    icmp_checksum_ok, icmp_reply_translation, l4_full_checksum, manip_ip)
from .targets import target_range

if TYPE_CHECKING:
    from ..conntrack.conn import Conn
    from ..conntrack.core import Tracker
    from ..host import HostModel
    from ..packet.packet import Packet
    from ..rules.result import NatRequest

NF_INET_POST_ROUTING: Final = 4
_ZERO4: Final = bytes(4)


class Nat:
    """NAT of one firewall host (one network namespace, both families)."""

    __slots__ = ("core", "host", "stats")

    def __init__(self, tracker: Tracker, host: HostModel, seed: bytes = b"") -> None:
        self.core = NatCore(tracker, seed)
        self.host = host
        self.stats: dict[str, int] = {"translated": 0, "icmp_translated": 0,
                                      "masq_oif_changed": 0, "dropped": 0}

    # -- around conntrack ------------------------------------------------------------
    @staticmethod
    def prime(tracker: Tracker, pkt: Packet, zone: int) -> None:
        """Before conntrack: the sequence offset the TCP window check needs (only once some
        entry has had a payload length changed by a NAT helper)."""
        if pkt.proto == 6 and seqadj.ACTIVE and pkt.ct is None:
            seqadj.prime(tracker.table.hash, pkt, zone)

    def after_conntrack(self, pkt: Packet, now: float) -> None:
        """``init_conntrack``'s ``exp->expectfn``: a new entry made from a NAT helper's
        expectation is bound like its master at once (``nf_nat_follow_master``)."""
        ct = pkt.ct
        if (ct is not None and ct.help is not None and ct.master is not None
                and not ct.status & (IPS_CONFIRMED | IPS_NAT_DONE_MASK)):
            run_expectfn(self.core, ct, now)

    # -- the hook ----------------------------------------------------------------------
    @staticmethod
    def _icmp_offset(pkt: Packet) -> int:
        """Offset of the ICMP/ICMPv6 header of a RELATED packet that is one, else -1."""
        if pkt.proto == (58 if pkt.l3num == 10 else 1) and pkt.l4err is None \
                and not pkt.fragoff:
            return pkt.l4off
        return -1

    def needs_rules(self, pkt: Packet, hook: int) -> bool:
        """Does the nat table see this packet here (an entry's first packet whose manip
        for this hook is not set up yet)?"""
        ct = pkt.ct
        if ct is None:
            return False
        ci = pkt.ctinfo
        if ci == IP_CT_ESTABLISHED or ci == IP_CT_ESTABLISHED_REPLY or ci > 4:
            return False
        if (ci == IP_CT_RELATED or ci == IP_CT_RELATED_REPLY) and self._icmp_offset(pkt) >= 0:
            return False
        return not initialized(ct, hook2manip(hook))

    def bind(self, pkt: Packet, hook: int, req: NatRequest | None, out_iface: str | None,
             now: float) -> str | None:
        """After the nat table ran for a first packet: bind by the target it hit, or make
        the null binding; then translate. Returns None, or why the packet is dropped."""
        ct = pkt.ct
        assert ct is not None
        manip = hook2manip(hook)
        if req is not None:
            why = self._setup(pkt, ct, hook, req, out_iface, now)
            if why is not None:
                return self._drop(why)
        if not initialized(ct, manip):
            if not self.core.null_binding(ct, manip, now):
                return self._drop("nat: binding already set up")
        return self._nat_packet(pkt, ct, manip)

    def translate(self, pkt: Packet, hook: int, out_iface: str | None, now: float
                  ) -> str | None:
        """Every other packet at a NAT hook. Returns None, or why it is dropped."""
        ct = pkt.ct
        if ct is None or pkt.ctinfo > 4:
            return None
        ci = pkt.ctinfo
        manip = hook2manip(hook)
        if ci == IP_CT_RELATED or ci == IP_CT_RELATED_REPLY:
            off = self._icmp_offset(pkt)
            if off >= 0:
                return self._icmp_reply(pkt, ct, manip, off)
        e = ct.nat
        if (e is not None and e.masq_iface is not None and hook == NF_INET_POST_ROUTING
                and ci < 3 and out_iface != e.masq_iface):
            # nf_nat_oif_changed: the masqueraded flow now leaves through another device
            self.stats["masq_oif_changed"] += 1
            self.core.tracker.kill(ct, now)
            return self._drop("MASQUERADE: output interface changed, entry killed")
        return self._nat_packet(pkt, ct, manip)

    def _drop(self, why: str) -> str:
        self.stats["dropped"] += 1
        return why

    def _setup(self, pkt: Packet, ct: Conn, hook: int, req: NatRequest,
               out_iface: str | None, now: float) -> str | None:
        """A NAT target's binding (xt_nat / xt_MASQUERADE / xt_REDIRECT / xt_NETMAP)."""
        if req.kind == "MASQUERADE" and ct.orig[0] == _ZERO4:
            return None             # from 0.0.0.0: "probably not supposed to be masqueraded"
        got = target_range(req, hook, pkt, self.host, out_iface)
        if got is None:
            if req.kind == "MASQUERADE":
                return f"MASQUERADE: {out_iface} has no address"
            return f"{req.kind}: {pkt.iface} has no address"
        rng, manip = got
        if req.kind == "MASQUERADE":
            ext(ct).masq_iface = out_iface
        if not self.core.setup_info(ct, rng, manip, now):
            return f"{req.kind}: binding already set up"
        return None

    # -- rewriting ---------------------------------------------------------------------
    @staticmethod
    def is_partial(pkt: Packet) -> bool:
        """Is this packet's transport checksum computed in full on output
        (CHECKSUM_PARTIAL: a NAT helper changed its payload)?"""
        ct = pkt.ct
        return ct is not None and ct.nat is not None and ct.nat.partial is pkt

    def _nat_packet(self, pkt: Packet, ct: Conn, manip: int, partial: bool = False
                    ) -> str | None:
        """``nf_nat_packet``: rewrite if this direction is translated for this manip."""
        dir = 1 if pkt.ctinfo >= 3 else 0
        bit = IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
        if dir:
            bit ^= IPS_NAT_MASK
        if not ct.status & bit:
            return None
        target = self.core.invert(ct.orig if dir else ct.reply)
        partial = partial or self.is_partial(pkt)
        b = bytearray(pkt.buf)
        if not manip_ip(b, 0, target, manip, partial):
            return self._drop("nat: packet too short to rewrite")
        proto = pkt.proto
        first = not pkt.fragoff and pkt.l4err is None
        if partial and first:
            l4_full_checksum(b, pkt.l4off, proto, pkt.l3num == 10)
        pkt.buf = bytes(b)
        self.stats["translated"] += 1
        if manip == NF_NAT_MANIP_SRC:
            pkt.src = target[0]
            if first and (proto == 6 or proto == 17 or proto == 136):
                pkt.sport = target[3]
        else:
            pkt.dst = target[1]
            if first and (proto == 6 or proto == 17 or proto == 136):
                pkt.dport = target[4]
        if first and ((proto == 1 and pkt.icmp_type in ICMP_QUERY_TYPES)
                      or (proto == 58 and pkt.icmp_type in ICMPV6_ECHO)):
            pkt.sport = target[3]
        return None

    def _icmp_reply(self, pkt: Packet, ct: Conn, manip: int, hdrlen: int) -> str | None:
        """``nf_nat_icmp_reply_translation``: an ICMP error about a NATed entry."""
        v6 = pkt.l3num == 10
        b = bytearray(pkt.buf)
        if len(b) < hdrlen + 8 + (40 if v6 else 20):
            return self._drop("nat: ICMP error too short")
        if not icmp_checksum_ok(b, hdrlen, v6):
            return self._drop("nat: ICMP error with a bad checksum")
        st = ct.status
        if b[hdrlen] == (NDISC_REDIRECT if v6 else ICMP_REDIRECT):
            if st & IPS_NAT_DONE_MASK != IPS_NAT_DONE_MASK or st & IPS_NAT_MASK:
                return self._drop("nat: redirect about a NATed entry")
        dir = 1 if pkt.ctinfo >= 3 else 0
        bit = IPS_SRC_NAT if manip == NF_NAT_MANIP_SRC else IPS_DST_NAT
        if dir:
            bit ^= IPS_NAT_MASK
        if not st & bit:
            return None
        other = ct.orig if dir else ct.reply
        if not icmp_reply_translation(b, hdrlen, other, self.core.invert(other), manip):
            return self._drop("nat: cannot rewrite the ICMP error")
        pkt.buf = bytes(b)
        if v6:
            pkt.src, pkt.dst = bytes(b[8:24]), bytes(b[24:40])
        else:
            pkt.src, pkt.dst = bytes(b[12:16]), bytes(b[16:20])
        self.stats["icmp_translated"] += 1
        return None

    def seq_adjust(self, pkt: Packet) -> str | None:
        """``nf_confirm``'s sequence adjustment (after the helper), for TCP segments of an
        entry with IPS_SEQ_ADJUST, except ICMP replies."""
        ct = pkt.ct
        if (ct is None or not ct.status & IPS_SEQ_ADJUST or pkt.ctinfo == IP_CT_RELATED_REPLY
                or pkt.proto != 6 or pkt.fragoff or pkt.l4err is not None):
            return None
        if not seqadj.seq_adjust(pkt, ct, 1 if pkt.ctinfo >= 3 else 0, self.is_partial(pkt)):
            return self._drop("seqadj: malformed TCP options")
        return None
