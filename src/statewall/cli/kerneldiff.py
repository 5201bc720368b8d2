"""``statewall kernel-diff``: a capture through a real kernel firewall and through statewall.

Owns: the command's options, its root/lab checks, reading the rules files, and the exit
status (0: statewall agrees with the kernel on every packet, 1: differences, 2: the run
could not be made - bad options, not root, no namespaces, a lab command failed).  The work
is ``statewall.kerneldiff.run``; the output is ``statewall.kerneldiff.report``.
Must not know: how the lab or the comparison work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..conntrack.sysctl import SettingError, parse_assignment, parse_sysctl_file
from ..host import parse_iface


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "kernel-diff", help="replay a capture through the Linux kernel and statewall, "
                            "report every difference (root)",
        description="Build a firewall in network namespaces with the capture's interfaces, "
                    "load the rules and settings, inject every packet of the capture with "
                    "its timing, record what the kernel's conntrack and iptables made of "
                    "each (ctstate, verdict, conntrack -L after it, events); replay the "
                    "same packets through statewall with the same rules and settings; "
                    "print both outcomes per packet and every difference.  Needs root; "
                    "everything runs inside namespaces it creates and removes again.",
        epilog="exit status: 0 full agreement, 1 differences, 2 the run failed")
    p.add_argument("capture", help="pcap/pcapng capture (or a corpus scenario file .py)")
    p.add_argument("--rules", metavar="FILE", help="iptables-save format rules for IPv4")
    p.add_argument("--rules6", metavar="FILE", help="ip6tables-save format rules for IPv6")
    p.add_argument("--sysctl", action="append", default=[], metavar="K=V",
                   help="a firewall setting, e.g. nf_conntrack_tcp_loose=0 (short or full "
                        "name; @FILE for a sysctl.conf-style file); repeatable")
    p.add_argument("--iface", action="append", default=[], metavar="NAME=ADDR/PLEN[,...]",
                   help="an interface of the firewall and its own addresses: packets from "
                        "them are sent by the firewall (OUTPUT), packets to them delivered "
                        "to it (INPUT)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--interfaces", dest="mode", action="store_const", const="interfaces",
                     help="one lab interface per interface the capture names (default "
                          "when it names two or more)")
    how.add_argument("--sides", dest="mode", action="store_const", const="sides",
                     help="two lab interfaces, client and server side, found from the "
                          "addresses like tcpprep --auto (default otherwise)")
    p.set_defaults(mode="auto")
    p.add_argument("--side-names", default="c0,s0", metavar="CLIENT,SERVER",
                   help="interface names for --sides (default c0,s0)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="replay X times faster; every conntrack timeout is divided by X "
                        "to match (default 1)")
    p.add_argument("--snapshots", default="auto", metavar="all|none|N",
                   help="list the kernel's table after every packet, every N-th, or only at "
                        "--mark times and the end (default: every packet up to 400)")
    p.add_argument("--mark", action="append", type=float, default=[], metavar="SECONDS",
                   help="also list the table this many seconds into the capture")
    p.add_argument("--linger", type=float, default=0.0, metavar="SECONDS",
                   help="keep recording after the last packet (to see expiry)")
    p.add_argument("--any-address", action="store_true",
                   help="allow addresses outside the documentation ranges (they exist "
                        "only inside the lab's namespaces)")
    p.add_argument("--fw-stack", action="store_true",
                   help="let the firewall's own stack answer (resets, ICMP errors, echo "
                        "replies); by default only the capture's packets exist")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--diffs-only", action="store_true",
                   help="list only the packets that differ")
    p.add_argument("--save", metavar="DIR",
                   help="keep the lab's recording (capture.pcapng + kernel.json) in DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"statewall kernel-diff: {msg}", file=sys.stderr)
    return 2


def _sysctls(items: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in items:
        if item.startswith("@"):
            path = item[1:]
            with open(path, encoding="utf-8") as f:
                out.extend(parse_sysctl_file(f.read(), path))
        else:
            out.append(parse_assignment(item))
    return out


def run(args: argparse.Namespace) -> int:
    from ..kerneldiff import report
    from ..kerneldiff.plan import PlanError
    from ..kerneldiff.run import Options, kernel_diff
    from ..lab.netns import LabError, lab_available, reap_stale

    try:
        sysctls = _sysctls(args.sysctl)
        fw_ifaces = []
        for text in args.iface:
            name, addrs = parse_iface(text)
            fw_ifaces.append((name, [str(a) for a in addrs]))
        rules4 = Path(args.rules).read_text() if args.rules else None
        rules6 = Path(args.rules6).read_text() if args.rules6 else None
        snaps: str | int = args.snapshots
        if snaps not in ("auto", "all", "none"):
            snaps = int(snaps)
            if snaps <= 0:
                raise ValueError("--snapshots N needs N > 0")
        names = [n.strip() for n in args.side_names.split(",")]
        if len(names) != 2:
            raise ValueError("--side-names needs CLIENT,SERVER")
        if args.speed <= 0:
            raise ValueError("--speed must be positive")
    except (SettingError, ValueError, OSError) as e:
        return _fail(str(e))
    src = Path(args.capture)
    if not src.is_file():
        return _fail(f"{src}: no such file")
    if sys.platform != "linux":
        return _fail("needs Linux (network namespaces, netfilter)")
    ok, why = lab_available()
    if not ok:
        return _fail(f"cannot build the lab: {why}")
    reap_stale()
    opts = Options(src, rules4, rules6, sysctls, fw_ifaces, args.mode,
                   (names[0], names[1]), args.speed, snaps, list(args.mark), args.linger,
                   args.any_address, not args.fw_stack)
    say = None if args.quiet or args.json else (lambda m: print(m, file=sys.stderr,
                                                                flush=True))
    try:
        res = kernel_diff(opts, log=say, save=Path(args.save) if args.save else None)
    except (PlanError, LabError, ValueError, OSError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("statewall kernel-diff: interrupted; the lab is gone", file=sys.stderr)
        return 130
    if args.json:
        sys.stdout.write(report.as_json(res.comparison, res.info))
    else:
        sys.stdout.write(report.text(res.comparison, res.info,
                                     all_packets=not args.diffs_only))
    return 0 if res.comparison.agree else 1
