"""From a capture to a lab plan: fw's interfaces, which peer injects which packet, and when.

Owns: reading a capture's packets into an injection plan for ``statewall.lab``: which of
them entered the firewall (and on which interface), which ones it sent itself (its own
addresses, ``--iface``), which ones are its output (forwarded copies, its own answers:
not injected); the lab's interfaces - the capture's pcapng interface names, or two sides
found from the addresses like ``tcpprep --auto`` - with a permanent neighbour entry for
every address on its side; the scenario the lab runs (capture timing, optionally sped
up with every conntrack timeout scaled to match).
Must not know: namespaces or the kernel (``lab``), statewall's tracker.

Directions, most reliable first: pcapng ``epb_flags``; the Linux cooked header's packet
type (``tcpdump -i any``); otherwise a frame whose bytes (TTL/hop limit and IPv4 checksum
masked) repeat a frame seen up to ``FORWARD_WINDOW`` seconds before on another interface is
that frame leaving the firewall, and every other frame is arriving.

Sides, when the capture has fewer than two named interfaces: every address gets votes for
"client" (opens connections: TCP SYN, ICMP queries, the higher port) or "server" (answers
them: SYN/ACK, ICMP replies, a port below 1024 against one above); in a conversation
between two undecided addresses the first speaker is the client; the remaining addresses
take the side opposite to the hosts they talk to; ties go to the client side.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..conntrack.sysctl import DEFAULTS
from ..io.capture import Frame
from ..lab import pktinfo
from ..lab.netns import LinkSpec, is_doc_address
from ..lab.scenario import FW, Scenario, Send, Sleep, Snapshot
from ..packet.link import ETH_P_IP, ETH_P_IPV6, PACKET_OUTGOING, l3_offset
from ..packet.packet import ParseError

FORWARD_WINDOW: Final = 2.0
SIDE_NAMES: Final = ("c0", "s0")
_IFNAME: Final = re.compile(r"[^A-Za-z0-9_.-]")

# every timeout, scaled by --speed (seconds; the kernel's defaults from statewall's table)
TIMEOUT_SYSCTLS: Final = tuple(k for k in DEFAULTS if "timeout" in k
                               or k == "net.ipv4.ipfrag_time")


class PlanError(ValueError):
    """The capture cannot be replayed as asked (the message says why)."""


@dataclass(frozen=True)
class Planned:
    """One packet to inject: ``side`` is a fw interface (the peer behind it sends) or
    ``"fw"`` (fw sends it itself)."""

    index: int  # 1-based position in the capture
    ts_ns: int
    side: str
    l3: bytes
    summary: str


@dataclass
class Plan:
    mode: str  # "interfaces" (the capture's names) or "sides" (from the addresses)
    links: list[LinkSpec]
    packets: list[Planned]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    side_of: dict[str, str] = field(default_factory=dict)  # address -> fw interface
    fw_addrs: set[str] = field(default_factory=set)
    total: int = 0

    def describe(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for _, why in self.skipped:
            reasons[why] = reasons.get(why, 0) + 1
        return {
            "mode": self.mode,
            "interfaces": {ln.fw_ifname: {"fw_addrs": list(ln.fw_addrs),
                                          "hosts": len(ln.neighbours)}
                           for ln in self.links},
            "capture_packets": self.total,
            "injected": len(self.packets),
            "sent_by_fw": sum(1 for p in self.packets if p.side == FW),
            "skipped": reasons,
            "warnings": self.warnings,
        }


@dataclass
class _Seen:
    index: int
    ts_ns: int
    iface: str | None
    direction: int  # 1 in, 2 out, 0 unknown
    l3: bytes
    info: pktinfo.PacketInfo


def _ifname(name: str) -> str:
    clean = _IFNAME.sub("_", name)[:15] or "if"
    return "if_lo" if clean == "lo" else clean


def _read(frames: Iterable[Frame], plan: Plan) -> list[_Seen]:
    out: list[_Seen] = []
    n = 0
    for fr in frames:
        n += 1
        try:
            off, ethertype, pkttype, ifindex, _vlan = l3_offset(fr.linktype, fr.data)
        except ParseError as e:
            plan.skipped.append((n, f"unreadable link layer ({e.reason})"))
            continue
        if ethertype not in (ETH_P_IP, ETH_P_IPV6):
            plan.skipped.append((n, "not IPv4/IPv6"))
            continue
        raw = fr.data[off:]
        info = pktinfo.parse(raw)
        if info is None:
            plan.skipped.append((n, "not decodable"))
            continue
        if fr.truncated or len(raw) < info.length:
            plan.skipped.append((n, "cut by the snapshot length"))
            continue
        l3 = raw[:info.length]
        iface = fr.iface_name
        if iface is None and ifindex >= 0:
            iface = f"if{ifindex}"
        direction = fr.flags & 3
        if not direction and pkttype >= 0:
            direction = 2 if pkttype == PACKET_OUTGOING else 1
        out.append(_Seen(n, fr.ts_ns, iface, direction, l3, info))
    plan.total = n
    return out


def _ttl(l3: bytes) -> int:
    """TTL / hop limit."""
    return l3[8] if l3[0] >> 4 == 4 else l3[7]


def _addresses(info: pktinfo.PacketInfo) -> list[str]:
    out = [info.src, info.dst]
    if info.inner is not None:
        out += [info.inner.src, info.inner.dst]
    return out


def _routable(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return not (ip.is_multicast or ip.is_unspecified or ip.is_loopback
                or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")))


def check_addresses(seen: Sequence[_Seen]) -> None:
    """Refuse addresses outside the documentation ranges (multicast, unspecified and
    link-local ones are fine: they never leave a link)."""
    bad: set[str] = set()
    for s in seen:
        for a in _addresses(s.info):
            ip = ipaddress.ip_address(a)
            if is_doc_address(a) or ip.is_multicast or ip.is_unspecified or ip.is_link_local:
                continue
            bad.add(a)
    if bad:
        few = ", ".join(sorted(bad)[:5]) + (" ..." if len(bad) > 5 else "")
        raise PlanError(f"the capture uses {len(bad)} address(es) outside the documentation "
                        f"ranges ({few}); they would exist only inside the lab's namespaces, "
                        "but pass --any-address to confirm that this is what you want")


# -- sides -----------------------------------------------------------------------------
def _votes(seen: Sequence[_Seen]) -> dict[str, list[float]]:
    """address -> [client votes, server votes]."""
    v: dict[str, list[float]] = {}

    def vote(addr: str, who: int, w: float = 1.0) -> None:
        if _routable(addr):
            v.setdefault(addr, [0.0, 0.0])[who] += w

    for s in seen:
        i = s.info
        for a in (i.src, i.dst):
            if _routable(a):
                v.setdefault(a, [0.0, 0.0])
        if i.proto == 6 and i.tcp_flags:
            if "S" in i.tcp_flags and "A" not in i.tcp_flags:
                vote(i.src, 0, 2)
                vote(i.dst, 1, 2)
                continue
            if "S" in i.tcp_flags and "A" in i.tcp_flags:
                vote(i.src, 1, 2)
                vote(i.dst, 0, 2)
                continue
        if i.sport is not None and i.dport is not None and i.inner is None:
            if i.sport < 1024 <= i.dport:
                vote(i.src, 1, 0.5)
                vote(i.dst, 0, 0.5)
            elif i.dport < 1024 <= i.sport:
                vote(i.src, 0, 0.5)
                vote(i.dst, 1, 0.5)
        if i.icmp_type is not None and i.inner is None:
            queries = {8, 13, 15, 17, 128} if i.proto in (1, 58) else set()
            replies = {0, 14, 16, 18, 129}
            if i.icmp_type in queries:
                vote(i.src, 0)
                vote(i.dst, 1)
            elif i.icmp_type in replies:
                vote(i.src, 1)
                vote(i.dst, 0)
        if i.inner is not None:  # an error travels back to the quoted packet's source
            vote(i.dst, 0, 0.5)
            vote(i.src, 1, 0.5)
    return v


def assign_sides(seen: Sequence[_Seen], names: Sequence[str] = SIDE_NAMES) -> dict[str, str]:
    """address -> ``names[0]`` (client side) or ``names[1]`` (server side)."""
    votes = _votes(seen)
    side: dict[str, int] = {}
    for a, (cv, sv) in votes.items():
        if cv != sv:
            side[a] = 0 if cv > sv else 1
    peers: dict[str, set[str]] = {}
    for s in seen:
        peers.setdefault(s.info.src, set()).add(s.info.dst)
        peers.setdefault(s.info.dst, set()).add(s.info.src)
        # a conversation nobody has a vote for: whoever speaks first is the client
        if (s.info.src in votes and s.info.dst in votes and s.info.src not in side
                and s.info.dst not in side):
            side[s.info.src], side[s.info.dst] = 0, 1
    for _ in range(len(votes) + 1):
        changed = False
        for a in votes:
            if a in side:
                continue
            known = [side[p] for p in peers.get(a, ()) if p in side]
            if known:
                side[a] = 1 - max(set(known), key=known.count)
                changed = True
        if not changed:
            break
    return {a: names[side.get(a, 0)] for a in votes}


# -- the plan --------------------------------------------------------------------------
def plan_capture(frames: Iterable[Frame], *, fw_ifaces: Sequence[tuple[str, Sequence[str]]] = (),
                 mode: str = "auto", side_names: Sequence[str] = SIDE_NAMES,
                 any_address: bool = False) -> Plan:
    """Work out the lab for a capture.

    ``fw_ifaces``: fw's own interfaces and addresses (``--iface NAME=ADDR/PLEN,...``);
    packets from those addresses are sent by fw itself.  ``mode``: ``"interfaces"`` (the
    capture's interface names), ``"sides"`` (two sides from the addresses) or ``"auto"``
    (interfaces when the capture names at least two).
    """
    plan = Plan("?", [], [])
    seen = _read(frames, plan)
    if not seen:
        raise PlanError("the capture holds no IPv4/IPv6 packet")
    if not any_address:
        check_addresses(seen)
    own: dict[str, str] = {}  # fw address -> interface
    fw_addr_specs: dict[str, list[str]] = {}
    for name, addrs in fw_ifaces:
        for a in addrs:
            iface = ipaddress.ip_interface(a)
            own[str(iface.ip)] = name
            fw_addr_specs.setdefault(name, []).append(str(iface))
    plan.fw_addrs = set(own)
    names = {s.iface for s in seen if s.iface}
    if mode == "auto":
        mode = "interfaces" if len(names) >= 2 else "sides"
    if mode == "interfaces" and len(names) < 1:
        raise PlanError("the capture names no interface: use --sides")
    plan.mode = mode

    # directions: forwarded copies (and fw's own answers) are not injected
    recent: dict[bytes, list[_Seen]] = {}
    inbound: list[_Seen] = []
    for s in seen:
        key = pktinfo.forward_key(s.l3)
        cands = [e for e in recent.get(key, ())
                 if s.ts_ns - e.ts_ns <= FORWARD_WINDOW * 1e9
                 and _ttl(e.l3) == _ttl(s.l3) + 1]
        match: _Seen | None = None
        if s.direction == 2:
            outbound = True
            match = cands[0] if cands else None
        elif s.direction == 0:
            match = next((e for e in cands if mode == "sides" or e.iface != s.iface), None)
            outbound = match is not None
        else:
            outbound = False
        if outbound:
            if match is not None:
                plan.skipped.append((s.index, "forwarded copy"))
                recent[key].remove(match)
            elif s.info.src in own:
                inbound.append(s)
            else:
                plan.skipped.append((s.index, "sent by the firewall (its own answer)"))
            continue
        recent.setdefault(key, []).append(s)
        inbound.append(s)

    # where every address lives
    if mode == "sides":
        if len(side_names) != 2 or len(set(side_names)) != 2:
            raise PlanError("--side-names needs two different interface names")
        names_l = [_ifname(n) for n in side_names]
        side_of = assign_sides([s for s in inbound if s.info.src not in own], names_l)
    else:
        iface_names = sorted({_ifname(n) for n in names})
        names_l = iface_names
        side_of = {}
        for s in inbound:
            if s.iface and s.info.src not in own and _routable(s.info.src):
                side_of.setdefault(s.info.src, _ifname(s.iface))
        for s in seen:  # destinations: where their forwarded copies left
            if s.direction == 2 and s.iface and _routable(s.info.dst):
                side_of.setdefault(s.info.dst, _ifname(s.iface))
        for s in inbound:
            for a in (s.info.dst, *((s.info.inner.src, s.info.inner.dst)
                                    if s.info.inner else ())):
                if a in side_of or a in own or not _routable(a):
                    continue
                others = [n for n in iface_names if n != _ifname(s.iface or "")]
                if others:
                    side_of[a] = others[0]
                    if len(others) > 1:
                        plan.warnings.append(f"{a} never sends and is never seen leaving: "
                                             f"routed out of {others[0]}")
    for name in fw_addr_specs:
        if _ifname(name) not in names_l:
            names_l.append(_ifname(name))
    for a in list(side_of):
        if a in own:
            del side_of[a]
    plan.side_of = side_of

    for s in inbound:
        if s.info.src in own:
            plan.packets.append(Planned(s.index, s.ts_ns, FW, s.l3, s.info.summary()))
            continue
        if mode == "interfaces":
            side = _ifname(s.iface) if s.iface else side_of.get(s.info.src, names_l[0])
        else:
            side = side_of.get(s.info.src, names_l[0])
        plan.packets.append(Planned(s.index, s.ts_ns, side, s.l3, s.info.summary()))
    hosts: dict[str, list[str]] = {n: [] for n in names_l}
    for a, n in side_of.items():
        if _routable(a):
            hosts.setdefault(n, []).append(a)
    plan.links = [LinkSpec(n, tuple(fw_addr_specs.get(n, ())), (), tuple(hosts.get(n, ())))
                  for n in names_l]
    if not plan.packets:
        raise PlanError("nothing to inject: every packet of the capture is output of the "
                        "firewall")
    return plan


def scaled_timeouts(speed: float, given: Mapping[str, str]) -> dict[str, str]:
    """Every timeout sysctl divided by ``speed`` (at least 1 s), starting from the value
    given on the command line or the kernel's default."""
    out: dict[str, str] = {}
    for name in TIMEOUT_SYSCTLS:
        base = int(given.get(name, DEFAULTS[name]))
        out[name] = str(max(1, round(base / speed)))
    return out


def to_scenario(plan: Plan, name: str, *, rules_v4: str = "", rules_v6: str = "",
                sysctls: Mapping[str, str] | None = None, speed: float = 1.0,
                snapshots: str | int = "all", marks: Sequence[float] = (),
                linger: float = 0.0, fw_silent: bool = True) -> Scenario:
    """The lab scenario replaying ``plan``: each packet at its capture time (divided by
    ``speed``), ``Snapshot`` steps at ``marks`` (seconds into the capture), ``linger``
    seconds of recording after the last packet."""
    if speed <= 0:
        raise PlanError("--speed must be positive")
    sc = dict(sysctls or {})
    if speed != 1.0:
        sc.update(scaled_timeouts(speed, sc))
    t0 = plan.packets[0].ts_ns
    steps: list[object] = []
    pending = sorted(marks)
    for p in plan.packets:
        at = (p.ts_ns - t0) / 1e9 / speed
        while pending and pending[0] / speed <= at:
            m = pending.pop(0)
            steps.append(Snapshot(f"mark {m:g} s", at=m / speed))
        steps.append(Send(p.side, p.l3, at=at, note=f"capture packet {p.index}"))
    last = (plan.packets[-1].ts_ns - t0) / 1e9 / speed
    for m in pending:
        steps.append(Snapshot(f"mark {m:g} s", at=m / speed))
        last = max(last, m / speed)
    if linger > 0:
        steps.append(Sleep(linger))
    from .model import has_rules

    desc = (f"capture replay: {plan.describe()['injected']} packets, lab from "
            f"{'the capture interfaces' if plan.mode == 'interfaces' else 'address sides'}")
    return Scenario(name=name, description=desc, steps=steps, sysctls=sc, rules_v4=rules_v4,
                    rules_v6=rules_v6, links=plan.links, snapshots=snapshots,
                    fw_silent=fw_silent, any_address=True,  # plan_capture checked them
                    requires=("rules",) if has_rules(rules_v4, rules_v6) else ())
