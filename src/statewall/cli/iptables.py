"""``statewall iptables|ip6tables[-save|-restore]``: iptables 1.8.9's command lines against
the rule set of a running ``statewall run``.

Owns: the six sub-commands, finding the control socket (``--control=PATH``, else
$STATEWALL_CONTROL, else the default, as ``statewall conntrack``), the options of
iptables-save (-c, -t TABLE) and iptables-restore (-n/--noflush, -c/--counters, -T TABLE,
-t/--test, FILE or standard input), sending one request and printing the reply with its
exit status. Must not know: what the commands do (``ctl.iptables``, run by the daemon's
supervisor; ``live.iptables`` swaps the result into every worker).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

from .run import DEFAULT_CONTROL

WORD = "iptables"                  # the control request word (live/iptables.py); imported
                                   # lazily: the other sub-commands start as fast as before

TOOLS = ("iptables", "ip6tables", "iptables-save", "ip6tables-save", "iptables-restore",
         "ip6tables-restore")


def add_parser(sub: Any) -> None:
    for name in TOOLS:
        what = {"": "the iptables command line (-A -I -D -R -C -F -Z -N -X -E -P -L -S)",
                "-save": "print the rule set as iptables-save does",
                "-restore": "load rules as iptables-restore does (--noflush, --counters)"
                }[name[name.find("-"):] if "-" in name else ""]
        p = sub.add_parser(name, prefix_chars="+", add_help=False,
                           help=f"{what}, against a running 'statewall run'"
                                + (" (IPv6)" if name.startswith("ip6") else ""),
                           description=f"{name} 1.8.9's options; the rule set is the running "
                                       "daemon's (control socket from --control=PATH or "
                                       "$STATEWALL_CONTROL).")
        p.add_argument("argv", nargs="*")
        p.set_defaults(func=_main_for(name))


def _main_for(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return main(name, list(args.argv))
    return run


def control_path(argv: list[str]) -> tuple[str, list[str]]:
    path = os.environ.get("STATEWALL_CONTROL") or DEFAULT_CONTROL
    rest = []
    for a in argv:
        if a.startswith("--control="):
            path = a.split("=", 1)[1]
        else:
            rest.append(a)
    return path, rest


def main(name: str, argv: list[str]) -> int:
    path, argv = control_path(argv)
    family = 6 if name.startswith("ip6") else 4
    if name.endswith("-save"):
        req = _save_options(name, argv)
    elif name.endswith("-restore"):
        req = _restore_options(name, argv)
    else:
        req = {"tool": "iptables", "argv": argv}
    if isinstance(req, int):
        return req
    req["family"] = family
    return send(path, name, req)


def send(path: str, name: str, req: dict[str, Any]) -> int:
    from ..live.supervisor import control_request
    from .relay import relay
    return relay(name, path, lambda: control_request(path, f"{WORD} {json.dumps(req)}"), 4)


def _bad(name: str, msg: str) -> int:
    print(f"{name} v1.8.9 (legacy): {msg}\nTry `{name} -h' or '{name} --help' for more "
          "information.", file=sys.stderr)
    return 2


def _save_options(name: str, argv: list[str]) -> dict[str, Any] | int:
    req: dict[str, Any] = {"tool": "save", "counters": False, "table": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a in ("-c", "--counters"):
            req["counters"] = True
        elif a in ("-t", "--table") or a.startswith("--table="):
            req["table"], i = _table_value(a, argv, i)
            if req["table"] is None:
                return _bad(name, f"option \"{a}\" requires an argument")
        elif a.startswith("-t") and len(a) > 2:
            req["table"] = a[2:]
        elif a in ("-M", "--modprobe"):
            i += 1
        else:
            return _bad(name, f"unknown option \"{a}\"")
    return req


def _table_value(a: str, argv: list[str], i: int) -> tuple[str | None, int]:
    """The table of ``-t``/``-T``/``--table`` (``--table=NAME`` or the next argument) and
    the index after it; None when it is missing."""
    if "=" in a:
        return a.split("=", 1)[1], i
    if i < len(argv):
        return argv[i], i + 1
    return None, i


def _restore_options(name: str, argv: list[str]) -> dict[str, Any] | int:
    req: dict[str, Any] = {"tool": "restore", "noflush": False, "counters": False,
                           "table": None, "test": False}
    files: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a in ("-n", "--noflush"):
            req["noflush"] = True
        elif a in ("-c", "--counters"):
            req["counters"] = True
        elif a in ("-t", "--test"):
            req["test"] = True
        elif a in ("-v", "--verbose", "-w", "--wait"):
            pass
        elif a in ("-T", "--table") or a.startswith("--table="):
            req["table"], i = _table_value(a, argv, i)
            if req["table"] is None:
                return _bad(name, f"option \"{a}\" requires an argument")
        elif a in ("-M", "--modprobe", "-W", "--wait-interval"):
            i += 1
        elif a.startswith("-") and a != "-":
            return _bad(name, f"unknown option \"{a}\"")
        else:
            files.append(a)
    if len(files) > 1:
        return _bad(name, "Unknown arguments found on commandline")
    src = files[0] if files else "-"
    try:
        if src == "-":
            req["text"] = sys.stdin.read()
            req["file"] = "<stdin>"
        else:
            with open(src, encoding="utf-8") as f:
                req["text"] = f.read()
            req["file"] = src
    except (OSError, UnicodeDecodeError) as e:
        print(f"Can't open {src}: {e}", file=sys.stderr)
        return 1
    return req
