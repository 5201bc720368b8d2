"""``statewall replay``: a capture through the firewall, with trace, events, table, counters.

Owns: the replay command's options and output contract (trace JSON lines, ``conntrack -E``
event lines, the table in conntrack/proc/ip_conntrack/json form, rule counters, LOG lines,
``--compare`` of two rule sets, ``--write``: every packet the firewall emits, as it leaves,
in a pcapng file), the replay clock (the capture's timestamps), the progress
bar, and the options every capture-driven command shares (``add_common_options``,
``build_firewall``, ``iter_packets``). Must not know: how packets are tracked or filtered
(it calls ``Firewall.process``) or how capture files are laid out (``io.capture``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any, Iterator

from ..conntrack.ecache import notifier
from ..conntrack.conn import Conn, ctinfo_state
from ..conntrack.format import (as_json, conntrack_line, event_line, expect_origin,
                                ip_conntrack_line, proc_line)
from ..conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from ..conntrack.sysctl import PROFILES, SettingError, Settings
from .. import gcpolicy
from ..firewall import HOLD, Decision, Emitted, Firewall
from ..host import HostModel, parse_iface, parse_route
from ..io.capture import CaptureError, Frame, open_capture, CaptureReader
from ..io.config import LoadError, load_ipsets, load_ruleset, load_settings
from ..packet.decode import decode_ip
from ..packet.link import ETH_P_IP, ETH_P_IPV6, l3_offset
from ..packet.packet import Packet, ParseError

FORMATS = ("conntrack", "proc", "ip_conntrack", "json")

__all__ = ["add_parser", "add_common_options", "build_firewall", "iter_packets",
           "UsageError", "CaptureError"]


class UsageError(Exception):
    """A bad option or rule file: the message names the file, line and what is wrong."""


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every capture-driven command shares (replay, explain, kernel-diff)."""
    p.add_argument("--rules", metavar="FILE",
                   help="IPv4 rule set in iptables-save / iptables-restore syntax")
    p.add_argument("--rules6", metavar="FILE",
                   help="IPv6 rule set in ip6tables-save syntax (without it IPv6 packets see "
                        "empty tables, as on a kernel with no ip6tables rules)")
    p.add_argument("--ipset", action="append", default=[], metavar="FILE",
                   help="IP sets for -m set / -j SET, as `ipset save` prints them "
                        "(repeatable)")
    p.add_argument("--iface", action="append", default=[], metavar="NAME=ADDR/PLEN[,...]",
                   help="an interface of the firewall host and its addresses; packets to "
                        "them go to INPUT, packets from them with no input interface are "
                        "locally generated (OUTPUT)")
    p.add_argument("--route", action="append", default=[], metavar="'PREFIX [via GW] dev IF'",
                   help="a route of the firewall host (connected subnets are automatic)")
    p.add_argument("--default-route", metavar="IF", help="default route out of IF")
    p.add_argument("--in-iface", metavar="IF",
                   help="input interface for packets whose capture does not name one")
    p.add_argument("--sysctl", action="append", default=[], metavar="K=V",
                   help="a conntrack setting by sysctl name, e.g. "
                        "net.netfilter.nf_conntrack_udp_timeout=3; or @FILE for a "
                        "sysctl.conf-style file")
    p.add_argument("--profile", choices=PROFILES, default="linux",
                   help="kernel behaviour: 'linux' (current kernel, default) or "
                        "'linux-2.4' (the 2001 ip_conntrack)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay", help="replay a pcap/pcapng capture through conntrack and the rules",
        description="Replay a capture through statewall's connection tracker (and rules) and "
                    "print, per packet, the verdict, the conntrack state and why, and the "
                    "state table.")
    p.add_argument("capture", help="pcap or pcapng file ('-' for standard input)")
    add_common_options(p)
    p.add_argument("--trace", metavar="FILE|-", help="write one JSON object per packet")
    p.add_argument("--events", metavar="FILE|-", help="write conntrack -E style event lines")
    p.add_argument("--expect-events", metavar="FILE|-",
                   help="write conntrack -E expect style lines (expectations created and "
                        "destroyed)")
    p.add_argument("--table", nargs="?", const="-", metavar="FILE",
                   help="print the state table at the end (or at --now)")
    p.add_argument("--expect", nargs="?", const="-", metavar="FILE",
                   help="print the expectations at the end (or at --now), as conntrack -L "
                        "expect (or /proc/net/nf_conntrack_expect with --format proc, JSON "
                        "with --format json)")
    p.add_argument("--stats", nargs="?", const="-", metavar="FILE",
                   help="print the conntrack -S counters, the INVALID/DROP reasons with "
                        "their counts, and the reassembly counters at the end")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="table format (default: conntrack; ip_conntrack with linux-2.4)")
    p.add_argument("--now", metavar="SECONDS|TIMESTAMP",
                   help="stop the replay at this time (seconds after the first packet, or "
                        "an absolute UNIX timestamp) and show the table as of then")
    p.add_argument("--list-rules", nargs="?", const="-", metavar="FILE",
                   help="after the replay, the rule counters as iptables -L -n -v -x prints")
    p.add_argument("--save-counters", nargs="?", const="-", metavar="FILE",
                   help="after the replay, the rule set with counters as iptables-save -c")
    p.add_argument("--log", metavar="FILE|-", help="write LOG target lines (kernel format)")
    p.add_argument("--write", metavar="FILE",
                   help="write every packet the firewall emits, in emission order, as it "
                        "leaves (after NAT; forwarded ones with the TTL / hop limit "
                        "decremented; REJECT's answers too) to a pcapng file: one interface "
                        "per output interface, named as in --iface, raw IP link type")
    p.add_argument("--compare", metavar="RULES",
                   help="also replay with this IPv4 rule set and list the packets and "
                        "connections whose verdict differs, grouped by connection")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: only on a terminal)")
    p.set_defaults(func=run)


# -- shared setup --------------------------------------------------------------------------
def build_settings(profile: str, items: list[str]) -> Settings:
    return load_settings(profile, items)


def load_rules(path: str | None, family: int, sets: Any = None) -> Any:
    """Parse a rule file (None: no rule set). Raises UsageError naming file and line."""
    if path is None:
        return None
    try:
        return load_ruleset(path, family, sets)
    except LoadError as e:
        raise UsageError(str(e)) from None


def load_sets(args: argparse.Namespace) -> Any:
    """The ``--ipset`` files (one registry; None without any). Raises UsageError."""
    try:
        return load_ipsets(getattr(args, "ipset", []))
    except LoadError as e:
        raise UsageError(str(e)) from None


def build_firewall(args: argparse.Namespace, trace: bool = False,
                   rules4_path: str | None = None) -> tuple[Firewall, HostModel]:
    """Settings, host model and rule sets from the common options."""
    try:
        settings = build_settings(args.profile, args.sysctl)
        host = HostModel([parse_iface(s) for s in args.iface],
                         [parse_route(r) for r in args.route], args.default_route)
    except (SettingError, ValueError) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename}: {e.strerror}") from None
    sets = load_sets(args)          # (each firewall its own copy: SET changes them)
    rules4 = load_rules(rules4_path if rules4_path is not None else args.rules, 4, sets)
    rules6 = load_rules(args.rules6, 6, sets)
    fw = Firewall(settings, rules4=rules4, rules6=rules6, host=host, trace=trace)
    return fw, host


def iter_packets(path: str, fw: Firewall, in_iface: str | None = None,
                 reader_out: list[CaptureReader] | None = None
                 ) -> Iterator[tuple[int, Frame, Packet | None, Any]]:
    """(n, frame, decoded packet, entry hook) per captured packet; for a frame that never
    reaches netfilter the packet is None and the last item is the trace line to print."""
    f: Any = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        reader = CaptureReader(f, name=path)
        if reader_out is not None:
            reader_out.append(reader)
        host = fw.host
        for n, rec in enumerate(reader, 1):
            frame = rec.data
            iface = rec.iface_name
            try:
                off, ethertype, _pkttype, ifindex, _vlan = l3_offset(rec.linktype, frame)
            except ParseError as e:
                yield n, rec, None, _line(n, rec, iface, "DROP",
                                          f"unreadable link-layer frame: {e.reason}")
                continue
            if iface is None and ifindex >= 0:
                iface = f"if{ifindex}"
            if ethertype != ETH_P_IP and ethertype != ETH_P_IPV6:
                yield n, rec, None, _line(n, rec, iface, "ACCEPT",
                                          f"not an IP packet (ethertype 0x{ethertype:04x}); "
                                          "netfilter's IP hooks never see it")
                continue
            try:
                pkt = decode_ip(frame[off:])
            except ParseError as e:
                yield n, rec, None, _line(n, rec, iface, "DROP",
                                          f"dropped by the IP layer before netfilter: {e.reason}")
                continue
            if iface is None and not host.is_local(pkt.src):
                iface = in_iface
            pkt.iface = iface
            pkt.ts = rec.ts
            hook = NF_INET_LOCAL_OUT if (iface is None and host.is_local(pkt.src)) \
                else NF_INET_PRE_ROUTING
            yield n, rec, pkt, hook
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _line(n: int, rec: Frame, iface: str | None, verdict: str, reason: str) -> dict[str, Any]:
    return {"n": n, "ts": round(rec.ts, 6), "iface": iface, "verdict": verdict,
            "ctstate": None, "dir": None, "conntrack": None, "reason": reason}


# -- the command ---------------------------------------------------------------------------
def _open_out(name: str | None, stack: list[IO[str]]) -> IO[str] | None:
    if name is None:
        return None
    if name == "-":
        return sys.stdout
    f = open(name, "w", encoding="utf-8")
    stack.append(f)
    return f


def run(args: argparse.Namespace) -> int:
    want_rules_trace = args.trace is not None or args.compare is not None
    try:
        fw, host = build_firewall(args, trace=want_rules_trace)
        other = build_firewall(args, rules4_path=args.compare)[0] if args.compare else None
    except UsageError as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    fmt = args.format or ("ip_conntrack" if args.profile == "linux-2.4" else "conntrack")
    opened: list[IO[str]] = []
    wfile: IO[bytes] | None = None
    try:
        outs = {k: _open_out(getattr(args, k), opened)
                for k in ("trace", "events", "expect_events", "table", "expect", "stats",
                          "list_rules", "save_counters", "log")}
        writer: EmitWriter | None = None
        if getattr(args, "write", None):
            wfile = open(args.write, "wb")
            writer = EmitWriter(wfile)
            fw.want_output = True
        return _replay(args, fw, other, fmt, outs, writer)
    except CaptureError as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    finally:
        for f in opened:
            f.close()
        if wfile is not None:
            wfile.close()


LINKTYPE_RAW = 101          # raw IPv4/IPv6, no link-layer header


class EmitWriter:
    """``--write``: the packets a decision emits (REJECT's answers first, as they are sent
    while the rules run, then the packet itself), one pcapng interface per output
    interface, in order of first use."""

    def __init__(self, f: IO[bytes]) -> None:
        from ..io.capture import PcapngWriter
        self.w = PcapngWriter(f, userappl="statewall replay --write")
        self.count = 0

    def decision(self, d: Decision, ts: float) -> None:
        ts_ns = int(round(ts * 1e9))
        for e in d.emitted:
            if isinstance(e, Emitted) and e.decision is not None:
                self._out(e.decision, ts_ns)
        self._out(d, ts_ns)

    def _out(self, d: Decision, ts_ns: int) -> None:
        for dev, data in d.out:
            ifid = self.w.interface(dev, LINKTYPE_RAW)
            self.w.write(data, ts_ns, ifid, flags=2)       # epb_flags: outbound
            self.count += 1


class _Progress:
    def __init__(self, total: int, mode: str) -> None:
        self.total = total
        self.on = mode == "always" or (mode == "auto" and sys.stderr.isatty() and total > 0)
        self.last = -1

    def update(self, pos: int, n: int) -> None:
        if not self.on or self.total <= 0:
            return
        pct = min(100, pos * 100 // self.total)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r[{bar:<25}] {pct:3d}% {n} packets")
            sys.stderr.flush()

    def done(self) -> None:
        if self.on:
            sys.stderr.write("\n")


def _replay(args: argparse.Namespace, fw: Firewall, other: Firewall | None, fmt: str,
            outs: dict[str, IO[str] | None], writer: EmitWriter | None = None) -> int:
    tracker = fw.tracker
    acct = bool(fw.settings.nf_conntrack_acct)
    trace, events = outs["trace"], outs["events"]
    if events is not None:
        ev_out = events

        def sink(now: float, bits: int, ct: Conn) -> None:
            sec = int(now)
            usec = int(round((now - sec) * 1e6))
            if usec >= 1000000:
                sec, usec = sec + 1, usec - 1000000
            ev_out.write(f"[{sec}.{usec:06d}]\t"
                         f"{event_line(bits, ct, now, tracker.l4[ct.proto], acct)}\n")
        notifier(tracker).add(sink)

    if outs["expect_events"] is not None:
        xout = outs["expect_events"]
        from ..conntrack.format import expect_event_line

        def xsink(now: float, bits: int, exp: Any) -> None:
            xout.write(f"[{now:.6f}]\t{expect_event_line(bits, exp, now)}\n")
        notifier(tracker).add(exp=xsink)

    now_arg: float | None = None
    if args.now is not None:
        try:
            now_arg = float(args.now)
        except ValueError:
            print(f"statewall replay: --now: not a number: {args.now!r}", file=sys.stderr)
            return 2
    size = 0 if args.capture == "-" else os.path.getsize(args.capture)
    progress = _Progress(size, args.progress)
    readers: list[CaptureReader] = []
    stop_at: float | None = None
    last_ts = 0.0
    n = 0
    diffs: list[tuple[int, Packet | None, Decision, Decision]] = []
    gcpolicy.for_packet_loop()
    for n, rec, pkt, hook in iter_packets(args.capture, fw, args.in_iface, readers):
        if stop_at is None and now_arg is not None:
            stop_at = now_arg if now_arg > 1e8 else rec.ts + now_arg
        if stop_at is not None and rec.ts > stop_at:
            n -= 1
            break
        last_ts = rec.ts
        if pkt is None:
            if trace is not None:
                trace.write(json.dumps(hook, separators=(", ", ": ")) + "\n")
            continue
        if other is not None:
            twin = decode_ip(pkt.buf)
            twin.iface, twin.ts = pkt.iface, pkt.ts
        d = fw.process(pkt, rec.ts, hook)
        if writer is not None:
            writer.decision(d, rec.ts)
        if other is not None:
            d2 = other.process(twin, rec.ts, hook)
            if d.verdict != d2.verdict:
                diffs.append((n, d.pkt, d, d2))
        if trace is not None:
            trace.write(json.dumps(trace_line(fw, d, n, rec.ts, pkt.iface),
                                   separators=(", ", ": ")) + "\n")
        if outs["log"] is not None:
            _write_logs(outs["log"], d, pkt, rec.ts, rec.data[:14] if rec.linktype == 1
                        else None)
        if n & 1023 == 0 and readers:
            progress.update(readers[0].pos, n)
    progress.done()
    damage = readers[0].error if readers else None

    when = stop_at if stop_at is not None else last_ts
    fw.expire(when)
    if outs["table"] is not None:
        _print_table(fw, when, fmt, acct, outs["table"])
    if outs["expect"] is not None:
        _print_expect(fw, when, fmt, outs["expect"])
    if outs["stats"] is not None:
        _print_stats(fw, outs["stats"])
    if outs["list_rules"] is not None:
        _print_rules(fw, outs["list_rules"], listing=True)
    if outs["save_counters"] is not None:
        _print_rules(fw, outs["save_counters"], listing=False)
    if other is not None:
        _print_compare(diffs, args.rules or "(no rules)", args.compare)
    if damage is not None:
        print(f"statewall replay: {args.capture}: capture damaged after packet {n}: {damage}",
              file=sys.stderr)
        return 1
    return 0


def trace_line(fw: Firewall, d: Decision, n: int, ts: float,
               iface: str | None) -> dict[str, Any]:
    """The trace object of one processed packet."""
    line: dict[str, Any] = {"n": n, "ts": round(ts, 6), "iface": iface, "verdict": d.verdict}
    if d.verdict == HOLD or d.pkt is None:
        line.update(ctstate=None, dir=None, conntrack=None, reason=d.reason)
        if d.discarded:
            line["discarded_fragments"] = d.discarded
        return line
    pkt = d.pkt
    ct = pkt.ct
    line["ctstate"] = ctinfo_state(ct, pkt.ctinfo)
    line["dir"] = None if ct is None else ("reply" if pkt.ctinfo >= 3 else "original")
    if ct is not None and ct.status & 8 and not ct.status & (1 << 9):
        line["conntrack"] = conntrack_line(ct, ts, fw.tracker.l4[ct.proto],
                                           bool(fw.settings.nf_conntrack_acct))
    else:
        line["conntrack"] = None
    line["reason"] = d.reason if (d.verdict != "ACCEPT" or ct is None) else None
    if ct is not None and pkt.reason and d.verdict == "ACCEPT":
        line["note"] = pkt.reason      # e.g. a segment the window tracking ignored
    if d.fragments:
        line["reassembled"] = d.fragments
    if d.discarded:
        line["discarded_fragments"] = d.discarded
    if ct is not None and ct.help is not None:
        origin = expect_origin(ct)
        if origin is not None:
            line["expectation"] = origin
    if fw.engine4 is not None or fw.engine6 is not None:
        line["hooks"] = d.path
        line["rules"] = [f"{t}/{c}#{num} {text}" for t, c, num, text in d.matched]
        line["source"] = d.source
        if d.out_iface:
            line["out_iface"] = d.out_iface
        if d.nat:
            line["nat"] = [repr(x) for x in d.nat]
        emitted = [x for x in (_emitted_json(e) for e in d.emitted) if x is not None]
        if emitted:
            line["emitted"] = emitted
    return line


def _emitted_json(e: Any) -> Any:
    """Side outputs in the trace (None: not shown, e.g. the REJECT request whose reply is
    listed as its own item)."""
    if isinstance(e, Emitted):
        sub = e.decision
        d: dict[str, Any] = {"kind": e.kind, "with": e.about,
                             "verdict": sub.verdict if sub is not None else None}
        if e.data:
            d["bytes"] = len(e.data)
            d["hex"] = e.data.hex()
        elif sub is not None and sub.reason:
            d["reason"] = sub.reason
        return d
    kind = type(e).__name__
    if kind == "RejectRecord":
        return None
    if kind == "LogRecord":
        return {"kind": "LOG", "prefix": e.prefix, "level": e.level, "rule":
                f"{e.table}/{e.chain}#{e.rulenum}"}
    if kind == "NflogRecord":
        return {"kind": "NFLOG", "group": e.group, "prefix": e.prefix, "rule":
                f"{e.table}/{e.chain}#{e.rulenum}"}
    if kind == "TraceRecord":
        return {"kind": "TRACE", "line": f"TRACE: {e.table}:{e.chain}:{e.kind}:{e.rulenum}"}
    return repr(e)


def _write_logs(out: IO[str], d: Decision, pkt: Packet, ts: float, mac: bytes | None) -> None:
    """LOG target hits as the kernel's log lines, with the capture time in front."""
    from ..packet.log import log_line
    from ..rules.result import LogRecord
    for e in d.emitted:
        if not isinstance(e, LogRecord):
            continue
        seen = d.pkt or pkt
        local_out = e.hook in ("OUTPUT",) or (e.hook == "POSTROUTING" and seen.iface is None)
        in_if = None if local_out else seen.iface
        out_if = d.out_iface if e.hook in ("FORWARD", "OUTPUT", "POSTROUTING") else None
        text = log_line(e.prefix, seen, in_if, out_if, None if local_out else mac, e.flags)
        out.write(f"[{ts:.6f}] {text}\n")


def _print_stats(fw: Firewall, out: IO[str]) -> None:
    """``conntrack -S`` (one cpu), ``conntrack -C``, then the reasons and reassembly."""
    t = fw.tracker
    out.write("cpu=0   \t" + " ".join(f"{k}={v}" for k, v in t.stats.items()) + " \n")
    out.write(f"entries={len(t.table)} max={fw.settings.nf_conntrack_max}\n")
    for reason, count in sorted(t.invalid_reasons.items(), key=lambda kv: -kv[1]):
        out.write(f"{count:8d}  {reason}\n")
    for fam, counters in sorted(fw.defrag.counters.items()):
        items = " ".join(f"{k}={v}" for k, v in counters.items() if v)
        if items:
            out.write(f"{'ipv4' if fam == 2 else 'ipv6'} reassembly: {items}\n")


def _print_rules(fw: Firewall, out: IO[str], listing: bool) -> None:
    from ..rules import listing as lst
    from ..rules import save
    for fam, engine in ((4, fw.engine4), (6, fw.engine6)):
        if engine is None:
            continue
        if listing:
            out.write(lst.list_all(engine, fam))
        else:
            out.write(save.save_ruleset(engine.ruleset, counters=engine.counters(), family=fam))


def _print_compare(diffs: list[tuple[int, Packet | None, Decision, Decision]], a: str,
                   b: str) -> None:
    """Differences between two rule sets, grouped by connection (original tuple)."""
    from ..conntrack.format import tuple_text
    groups: dict[str, list[str]] = {}
    for n, pkt, d1, d2 in diffs:
        ct = d1.ct or d2.ct or (pkt.ct if pkt is not None else None)
        key = tuple_text(ct.orig).strip() if ct is not None else "(no connection)"
        groups.setdefault(key, []).append(
            f"  packet {n}: {a}: {d1.verdict} ({d1.source or d1.reason or 'policy'}) -> "
            f"{b}: {d2.verdict} ({d2.source or d2.reason or 'policy'})")
    out = sys.stdout
    out.write(f"--compare: {len(diffs)} packets in {len(groups)} connections change verdict\n")
    for key, lines in groups.items():
        out.write(f"{key}\n")
        for line in lines:
            out.write(line + "\n")


def _print_expect(fw: Firewall, now: float, fmt: str, out: IO[str]) -> None:
    """The expectation table: ``conntrack -L expect``, /proc, 2.4 EXPECTING: or JSON."""
    from ..conntrack.format import (expect_as_json, expect_line, expect_proc_line,
                                    ip_conntrack_expect_line)
    exps = fw.tracker.expect.entries(now)
    if fmt == "json":
        out.write(json.dumps([expect_as_json(e, now) for e in exps], indent=1) + "\n")
        return
    for e in exps:
        if fmt == "proc":
            out.write(expect_proc_line(e, now) + "\n")
        elif fmt == "ip_conntrack":
            out.write(ip_conntrack_expect_line(e) + "\n")
        else:
            out.write(expect_line(e, now) + "\n")
    if fmt == "conntrack":
        print(f"statewall (conntrack-compatible): {len(exps)} expectations have been shown.",
              file=sys.stderr)


def _print_table(fw: Firewall, now: float, fmt: str, acct: bool, out: IO[str]) -> None:
    l4 = fw.tracker.l4
    entries = fw.tracker.entries(now)
    if fmt == "json":
        out.write(json.dumps([as_json(ct, now, l4[ct.proto]) for ct in entries], indent=1))
        out.write("\n")
        return
    for ct in entries:
        p = l4[ct.proto]
        if fmt == "proc":
            out.write(proc_line(ct, now, p, acct) + "\n")
        elif fmt == "ip_conntrack":
            out.write(ip_conntrack_line(ct, now, p) + "\n")
        else:
            out.write(conntrack_line(ct, now, p, acct) + "\n")
    if fmt == "conntrack":
        print(f"statewall (conntrack-compatible): {len(entries)} flow entries have been shown.",
              file=sys.stderr)
