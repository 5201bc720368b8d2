"""``statewall run`` (live mode through NFQUEUE), ``statewall reload``, ``statewall status``.

Owns: the options of these commands and their exit status. Must not know: how the daemon
works (``statewall.live``).
Exit status of ``run``: 0 after a clean stop, 1 when it could not start (queue busy, kernel
setup failed), 2 for bad options or a rule set statewall refuses.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..conntrack.sysctl import PROFILES, SettingError

DEFAULT_CONTROL = "/run/statewall.sock"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="filter live traffic through NFQUEUE",
        description="Filter the traffic of this host (its network namespace) with "
                    "statewall: the kernel hands packets over NFQUEUE, statewall's tracker "
                    "and rule sets decide, the kernel routes. SIGHUP reloads the rule "
                    "files, SIGTERM saves the table and stops.")
    p.add_argument("--rules", metavar="FILE", help="IPv4 rule set (iptables-save format)")
    p.add_argument("--rules6", metavar="FILE", help="IPv6 rule set (ip6tables-save format)")
    p.add_argument("--ipset", action="append", default=[], metavar="FILE",
                   help="IP sets for -m set / -j SET, as `ipset save` prints them "
                        "(repeatable; read again on reload)")
    p.add_argument("--sysctl", action="append", default=[], metavar="K=V",
                   help="a conntrack setting by sysctl name, or @FILE (sysctl.conf syntax)")
    p.add_argument("--profile", choices=PROFILES, default="linux")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--queue", metavar="N", help="the NFQUEUE number (default 0)")
    g.add_argument("--queues", metavar="A-B",
                   help="several queues, one worker process each; the kernel spreads "
                        "flows over them by address pair")
    p.add_argument("--state-file", metavar="PATH",
                   help="save the table here on SIGTERM and in checkpoints; restore it at "
                        "start (with several queues: PATH.<queue>)")
    p.add_argument("--checkpoint", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between checkpoints of the state file (0: only at stop)")
    p.add_argument("--fail-open", action="store_true",
                   help="if statewall is not there (dead, queue overflow), packets pass "
                        "(default: they are dropped)")
    p.add_argument("--no-kernel-setup", action="store_true",
                   help="do not install the kernel rules (the admin does: see "
                        "--print-kernel-setup)")
    p.add_argument("--print-kernel-setup", action="store_true",
                   help="print the kernel rules this run would install, and exit")
    p.add_argument("--kernel-backend", choices=("iptables", "nft"), default="iptables",
                   help="install the kernel rules with iptables-restore (default) or nft "
                        "(needs the kernel's nft_queue)")
    p.add_argument("--no-ipv6", action="store_true", help="leave IPv6 to the kernel")
    p.add_argument("--queue-maxlen", type=int, default=4096, metavar="N",
                   help="packets the kernel may hold for a verdict per queue")
    p.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH",
                   help=f"control socket for reload/status (default {DEFAULT_CONTROL})")
    p.add_argument("--stats-interval", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between stats lines in the log (0: none)")
    p.add_argument("--trace", metavar="FILE|-",
                   help="one JSON line per packet (with several queues: FILE.<queue>)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info")
    p.add_argument("--flows", metavar="PATH|URL",
                   help="write a record of every connection that ends to this SQLite file "
                        "or postgresql:// database (see 'statewall flows')")
    p.add_argument("--metrics", metavar="[ADDR:]PORT",
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR "
                        "default 127.0.0.1; IPv6 as [ADDR]:PORT); off unless given")
    p.set_defaults(func=run)

    r = sub.add_parser("reload", help="make a running 'statewall run' read its rules again",
                       description="Ask the running daemon to reload its rule files. A rule "
                                   "set with any error is refused and the running one stays; "
                                   "the exit status says which.")
    r.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH")
    r.add_argument("--prune", action="store_true",
                   help="then drop the entries whose first packet the new rules would "
                        "not accept any more (their [DESTROY] events; the count is in "
                        "the reply as 'pruned')")
    r.set_defaults(func=lambda a: _control(a, "reload --prune" if a.prune else "reload"))

    s = sub.add_parser("status", help="counters of a running 'statewall run' (JSON)")
    s.add_argument("--control", default=DEFAULT_CONTROL, metavar="PATH")
    s.set_defaults(func=lambda a: _control(a, "status"))


def config_from(args: argparse.Namespace) -> Any:
    from ..live.config import Config, parse_queues
    if args.queues:
        first, last = parse_queues(args.queues)
    else:
        first, last = parse_queues(args.queue or "0")
    if args.checkpoint < 0 or args.stats_interval < 0 or args.queue_maxlen < 1:
        raise ValueError("--checkpoint/--stats-interval must be >= 0, --queue-maxlen >= 1")
    return Config(rules4=args.rules, rules6=args.rules6, ipsets=list(args.ipset),
                  sysctls=list(args.sysctl),
                  profile=args.profile, first_queue=first, last_queue=last,
                  state_file=args.state_file, fail_open=args.fail_open,
                  kernel_setup=not args.no_kernel_setup, backend=args.kernel_backend,
                  checkpoint=args.checkpoint, stats_interval=args.stats_interval,
                  control=args.control or None, queue_maxlen=args.queue_maxlen,
                  log_level=args.log_level, trace=args.trace, ipv6=not args.no_ipv6,
                  flows=args.flows)


def run(args: argparse.Namespace, loader: Any = None, builder: Any = None) -> int:
    from ..live.config import build_settings
    from ..live.kernel import KernelSetup
    try:
        cfg = config_from(args)
        if getattr(args, "metrics", None) is not None:       # --metrics
            from ..live.metrics_http import format_listen, parse_listen
            cfg.metrics = format_listen(*parse_listen(args.metrics))
            if not cfg.control:
                raise ValueError("--metrics needs the control socket (--control PATH): "
                                 "the workers answer scrapes there")
        build_settings(cfg.profile, cfg.sysctls)
    except (ValueError, SettingError, OSError) as e:
        print(f"statewall run: {e}", file=sys.stderr)
        return 2
    if not args.rules and not args.print_kernel_setup:
        print("statewall run: --rules is required (a firewall without rules would pass "
              "everything)", file=sys.stderr)
        return 2
    if args.print_kernel_setup:
        k = KernelSetup(cfg.first_queue, cfg.last_queue, cfg.fail_open, ipv6=cfg.ipv6,
                        backend=cfg.backend)
        sys.stdout.write(k.text())
        return 0
    if cfg.flows:                      # flow records: the database is usable, schema there
        from ..flows import store
        try:
            store.check_target(cfg.flows)
            store.prepare(cfg.flows)
        except (ValueError, store.StoreError) as e:
            print(f"statewall run: {e}", file=sys.stderr)
            return 2
    from ..live.supervisor import Supervisor
    kw: dict[str, Any] = {}
    if loader is not None:
        kw["loader"] = loader
    if builder is not None:
        kw["builder"] = builder
    return Supervisor(cfg, **kw).run()


def _control(args: argparse.Namespace, command: str) -> int:
    from ..live.supervisor import control_request
    try:
        reply = control_request(args.control, command)
    except OSError as e:
        print(f"statewall {command}: {args.control}: {e.strerror or e} "
              "(is 'statewall run' running?)", file=sys.stderr)
        return 2
    except ValueError:
        print(f"statewall {command}: bad reply from {args.control}", file=sys.stderr)
        return 2
    json.dump(reply, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if command.startswith("reload") and not reply.get("ok"):
        errs = reply.get("errors") or {}
        msg = reply.get("error") or "; ".join(f"q{q}: {e}" for q, e in errs.items()) \
            or f"no answer from {reply.get('no_answer')}"
        print(f"statewall reload: refused: {msg}", file=sys.stderr)
        return 1
    return 0
