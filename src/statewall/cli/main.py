"""The ``statewall`` command: sub-command dispatch.

Owns: the top-level argument parser. Must not know: what the sub-commands do.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import conntrack, explain, flows, kerneldiff, replay, rules, run
from . import iptables as iptables_cli
from . import top as top_cmd


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="statewall",
        description="Linux netfilter connection tracking and stateful filtering, in Python.")
    p.add_argument("--version", action="version", version=f"statewall {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    replay.add_parser(sub)
    rules.add_parser(sub)
    explain.add_parser(sub)
    sub.add_parser("demo", help="replay the bundled captures the way the seed text walks "
                   "through them").set_defaults(func=lambda args: _demo())
    kerneldiff.add_parser(sub)
    run.add_parser(sub)
    conntrack.add_parser(sub)
    top_cmd.add_parser(sub)
    flows.add_parser(sub)
    iptables_cli.add_parser(sub)
    return p


def _demo() -> int:
    from ..demo import main as demo_main
    return demo_main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc: int = args.func(args)
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
