"""``statewall rules``: check a rule file, or print it in canonical iptables-save form.

Owns: the ``rules`` command's options and output contract::

    statewall rules check FILE [-6]        exit 0 (loads) or 1 (FILE:LINE: message on stderr)
    statewall rules save FILE [-6] [-c]    canonical iptables-save / ip6tables-save text
    statewall rules list FILE [-6] [--line-numbers]
                                           iptables -L -n -v -x text for every table

FILE is what iptables-restore (-6: ip6tables-restore) accepts; ``-`` reads standard input.
``-c`` keeps the file's counters, as ``iptables-restore -c`` + ``iptables-save -c`` would.
Must not know: how rules are parsed or printed (statewall.rules).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..io.config import LoadError, load_ipsets
from ..rules.errors import ConfigError
from ..rules.listing import list_ruleset
from ..rules.model import Ruleset
from ..rules.parse import load
from ..rules.save import save


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "rules", help="check or print an iptables-restore rule file",
        description="Load a rule file the way iptables-restore (or ip6tables-restore with "
                    "-6) would, reporting the first problem as FILE:LINE: message, and "
                    "optionally print it back in canonical iptables-save form.")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION")
    for name, helptext in (("check", "validate the file (exit 0 or 1)"),
                           ("save", "print the rule set as iptables-save would"),
                           ("list", "print the rule set as iptables -L -n -v -x would")):
        q = rsub.add_parser(name, help=helptext, description=helptext)
        q.add_argument("file", help="rule file ('-' for standard input)")
        q.add_argument("-6", dest="ipv6", action="store_true",
                       help="an IPv6 rule set (ip6tables-restore / ip6tables-save)")
        q.add_argument("--ipset", action="append", default=[], metavar="FILE",
                       help="IP sets the rules may name (-m set, -j SET), as `ipset save` "
                            "prints them (repeatable)")
        if name == "save":
            q.add_argument("-c", "--counters", action="store_true",
                           help="keep and print packet and byte counters")
        if name == "list":
            q.add_argument("--line-numbers", action="store_true", help="number the rules")
        q.set_defaults(func=run)
    p.set_defaults(func=_usage(p))


def _usage(p: argparse.ArgumentParser) -> Any:
    def usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2
    return usage


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_file(path: str, family: int, counters: bool = False, sets: Any = None) -> Ruleset:
    """Read and parse; raises OSError or ConfigError."""
    name = "<stdin>" if path == "-" else path
    return load(_read(path), name, family, counters, sets)


def run(args: argparse.Namespace) -> int:
    family = 6 if args.ipv6 else 4
    try:
        sets = load_ipsets(getattr(args, "ipset", []))
    except LoadError as e:
        print(str(e), file=sys.stderr)
        return 1
    try:
        rs = load_file(args.file, family, getattr(args, "counters", False), sets)
    except OSError as e:
        print(f"statewall rules: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.rules_command == "save":
        sys.stdout.write(save(rs, counters=args.counters))
    elif args.rules_command == "list":
        sys.stdout.write(list_ruleset(rs, line_numbers=args.line_numbers))
    return 0
