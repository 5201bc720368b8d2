"""``statewall replay``: a capture through the firewall, with trace, events and table.

Owns: the replay command's options and output contract (trace JSON lines, ``conntrack -E``
event lines, the table in conntrack/proc/ip_conntrack/json form), the replay clock (the
capture's timestamps), the progress bar. Must not know: how packets are tracked (it calls
``Firewall.process``) or how capture files are laid out (``io.capture``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any

from ..conntrack.conn import Conn, ctinfo_state
from ..conntrack.format import (
    as_json,
    conntrack_line,
    event_line,
    ip_conntrack_line,
    proc_line,
)
from ..conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from ..conntrack.sysctl import PROFILES, Settings, SettingError, parse_assignment, parse_sysctl_file
from ..firewall import HOLD, Decision, Firewall
from ..io.capture import CaptureError, CaptureReader
from ..packet.decode import decode_ip
from ..packet.link import ETH_P_IP, ETH_P_IPV6, l3_offset
from ..packet.packet import Packet, ParseError
from ..host import HostModel, parse_iface

FORMATS = ("conntrack", "proc", "ip_conntrack", "json")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "replay", help="replay a pcap/pcapng capture through conntrack",
        description="Replay a capture through statewall's connection tracker and print, "
                    "per packet, the verdict and conntrack state, and the state table.")
    p.add_argument("capture", help="pcap or pcapng file ('-' for standard input)")
    p.add_argument("--iface", action="append", default=[], metavar="NAME=ADDR/PLEN[,...]",
                   help="an interface of the firewall host and its addresses; packets "
                        "from a local address are treated as locally generated (OUTPUT)")
    p.add_argument("--sysctl", action="append", default=[], metavar="K=V",
                   help="a conntrack setting by sysctl name, e.g. "
                        "net.netfilter.nf_conntrack_udp_timeout=3; or @FILE for a "
                        "sysctl.conf-style file")
    p.add_argument("--profile", choices=PROFILES, default="linux",
                   help="kernel behaviour: 'linux' (current kernel, default) or "
                        "'linux-2.4' (the 2001 ip_conntrack)")
    p.add_argument("--trace", metavar="FILE|-", help="write one JSON object per packet")
    p.add_argument("--events", metavar="FILE|-", help="write conntrack -E style event lines")
    p.add_argument("--table", nargs="?", const="-", metavar="FILE",
                   help="print the state table at the end (or at --now)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="table format (default: conntrack; ip_conntrack with linux-2.4)")
    p.add_argument("--now", metavar="SECONDS|TIMESTAMP",
                   help="stop the replay at this time (seconds after the first packet, or "
                        "an absolute UNIX timestamp) and show the table as of then")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: only on a terminal)")
    p.set_defaults(func=run)


def _open_out(name: str | None, stack: list[IO[str]]) -> IO[str] | None:
    if name is None:
        return None
    if name == "-":
        return sys.stdout
    f = open(name, "w", encoding="utf-8")
    stack.append(f)
    return f


def build_settings(profile: str, items: list[str]) -> Settings:
    pairs: list[tuple[str, str]] = []
    for item in items:
        if item.startswith("@"):
            path = item[1:]
            with open(path, encoding="utf-8") as f:
                pairs.extend(parse_sysctl_file(f.read(), path))
        else:
            pairs.append(parse_assignment(item))
    return Settings(profile, pairs)


def run(args: argparse.Namespace) -> int:
    try:
        settings = build_settings(args.profile, args.sysctl)
        host = HostModel([parse_iface(s) for s in args.iface])
    except (SettingError, ValueError) as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    fmt = args.format or ("ip_conntrack" if args.profile == "linux-2.4" else "conntrack")
    opened: list[IO[str]] = []
    try:
        trace = _open_out(args.trace, opened)
        events = _open_out(args.events, opened)
        table_out = _open_out(args.table, opened)
        return _replay(args, settings, host, fmt, trace, events, table_out)
    except CaptureError as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"statewall replay: {e}", file=sys.stderr)
        return 2
    finally:
        for f in opened:
            f.close()


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


def _replay(args: argparse.Namespace, settings: Settings, host: HostModel, fmt: str,
            trace: IO[str] | None, events: IO[str] | None, table_out: IO[str] | None) -> int:
    fw = Firewall(settings)
    tracker = fw.tracker
    acct = bool(settings.nf_conntrack_acct)
    if events is not None:
        out = events

        def sink(now: float, bits: int, ct: Conn) -> None:
            sec = int(now)
            usec = int(round((now - sec) * 1e6))
            if usec >= 1000000:
                sec, usec = sec + 1, usec - 1000000
            out.write(f"[{sec}.{usec:06d}]\t"
                      f"{event_line(bits, ct, now, tracker.l4[ct.proto], acct)}\n")
        tracker.sink = sink

    stop_at: float | None = None
    now_arg: float | None = None
    if args.now is not None:
        try:
            now_arg = float(args.now)
        except ValueError:
            print(f"statewall replay: --now: not a number: {args.now!r}", file=sys.stderr)
            return 2

    if args.capture == "-":
        f = sys.stdin.buffer
        size = 0
    else:
        f = open(args.capture, "rb")
        size = os.fstat(f.fileno()).st_size
    progress = _Progress(size, args.progress)
    first_ts: float | None = None
    last_ts = 0.0
    n = 0
    try:
        reader = CaptureReader(f, name=args.capture)
        for rec in reader:
            ts = rec.ts
            if first_ts is None:
                first_ts = ts
                if now_arg is not None:
                    stop_at = now_arg if now_arg > 1e8 else first_ts + now_arg
            if stop_at is not None and ts > stop_at:
                break
            n += 1
            last_ts = ts
            line = _one(fw, host, rec, n, ts)
            if trace is not None:
                trace.write(json.dumps(line, separators=(", ", ": ")) + "\n")
            if n & 1023 == 0:
                progress.update(reader.pos, n)
        progress.done()
        damage = reader.error
    finally:
        if f is not sys.stdin.buffer:
            f.close()

    when = last_ts
    if stop_at is not None:
        when = stop_at
    fw.expire(when)
    if table_out is not None:
        _print_table(fw, when, fmt, acct, table_out)
    if damage is not None:
        print(f"statewall replay: {args.capture}: capture damaged after packet {n}: {damage}",
              file=sys.stderr)
        return 1
    return 0


def _one(fw: Firewall, host: HostModel, rec: Any, n: int, ts: float) -> dict[str, Any]:
    """Process one capture record; return its trace object."""
    frame = rec.data
    iface = rec.iface_name
    try:
        off, ethertype, _pkttype, ifindex, _vlan = l3_offset(rec.linktype, frame)
    except ParseError as e:
        return {"n": n, "ts": round(ts, 6), "iface": iface, "verdict": "DROP",
                "ctstate": None, "dir": None, "conntrack": None,
                "reason": f"unreadable link-layer frame: {e.reason}"}
    if iface is None and ifindex >= 0:
        iface = f"if{ifindex}"
    line: dict[str, Any] = {"n": n, "ts": round(ts, 6), "iface": iface}
    if ethertype != ETH_P_IP and ethertype != ETH_P_IPV6:
        line.update(verdict="ACCEPT", ctstate=None, dir=None, conntrack=None,
                    reason=f"not an IP packet (ethertype 0x{ethertype:04x}); "
                           "netfilter's IP hooks never see it")
        return line
    try:
        pkt = decode_ip(frame[off:])
    except ParseError as e:
        line.update(verdict="DROP", ctstate=None, dir=None, conntrack=None,
                    reason=f"dropped by the IP layer before netfilter: {e.reason}")
        return line
    if rec.truncated and rec.origlen - rec.caplen > 0 and len(pkt.buf) + off < rec.origlen:
        line["snaplen_cut"] = rec.origlen - rec.caplen
    pkt.iface = iface
    pkt.ts = ts
    hook = NF_INET_LOCAL_OUT if (iface is None and host.is_local(pkt.src)) \
        else NF_INET_PRE_ROUTING
    d = fw.process(pkt, ts, hook)
    return _trace(fw, d, line, ts)


def _trace(fw: Firewall, d: Decision, line: dict[str, Any], now: float) -> dict[str, Any]:
    line["verdict"] = d.verdict
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
        line["conntrack"] = conntrack_line(ct, now, fw.tracker.l4[ct.proto],
                                           bool(fw.settings.nf_conntrack_acct))
    else:
        line["conntrack"] = None
    line["reason"] = d.reason if (d.verdict != "ACCEPT" or ct is None) else None
    if ct is not None and d.reason:
        line["note"] = d.reason      # e.g. a segment the window tracking ignored
    if d.fragments:
        line["reassembled"] = d.fragments
    if d.discarded:
        line["discarded_fragments"] = d.discarded
    return line


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
