#!/usr/bin/env python3
"""(Re-)record the kernel golden corpus: ``python tools/record_corpus.py [NAME...]``.

Each ``corpus/<name>.py`` scenario goes through ``statewall kernel-diff``'s engine
(``statewall.kerneldiff.run``): run against the real kernel in a fresh set of network
namespaces (needs root), ``corpus/<name>/capture.pcapng`` + ``kernel.json`` rewritten, and
the fresh recording compared with statewall at once (one line per scenario: agree, or the
number of differences; ``-v`` prints them).  No NAME: every scenario.  Idempotent:
re-running just records again; a failed scenario leaves its previous recording untouched.
Namespaces are always removed; stale ones from killed runs (``sw-<dead pid>-*``) are reaped
first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from statewall.kerneldiff.run import Options, kernel_diff  # noqa: E402
from statewall.lab.netns import lab_available, list_lab_namespaces, reap_stale  # noqa: E402
from statewall.lab.scenario import corpus_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--corpus", default=str(ROOT / "corpus"), help="corpus directory")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--missing", action="store_true", help="only scenarios not recorded yet")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every difference")
    args = ap.parse_args(argv)

    corpus = Path(args.corpus)
    files = corpus_files(corpus)
    if args.list:
        for name, path in files.items():
            done = (corpus / name / "kernel.json").exists()
            print(f"{name:32s} {'recorded' if done else '-'}")
        return 0
    unknown = [n for n in args.names if n not in files]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    ok, why = lab_available()
    if not ok:
        print(f"cannot record: {why}", file=sys.stderr)
        return 2
    for name in reap_stale():
        print(f"reaped stale namespace {name}")

    names = args.names or list(files)
    if args.missing:
        names = [n for n in names if not (corpus / n / "kernel.json").exists()]
    failed: list[str] = []
    differ: list[str] = []
    for name in names:
        t0 = time.monotonic()
        try:
            res = kernel_diff(Options(files[name]))
            rec = res.recording
            if not rec.packets:
                raise RuntimeError("no packet reached fw (see the programs' output)")
            with tempfile.TemporaryDirectory(dir=corpus) as tmp:
                rec.write(tmp)
                dest = corpus / name
                if dest.exists():
                    shutil.rmtree(dest)
                Path(tmp).chmod(0o755)
                Path(tmp).rename(dest)
                Path(tmp).mkdir()  # so TemporaryDirectory's cleanup finds it
        except Exception as exc:  # report, keep going with the others
            failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        pk = rec.packets
        states = " ".join(f"{p['ctstate'] or '-'}" + (f"/{p['dir'][0]}" if p["dir"] else "")
                          + ("" if p["verdict"] != "DROP" else "(drop)") for p in pk)
        size = sum(f.stat().st_size for f in (corpus / name).iterdir())
        cmp = res.comparison
        verdict = "statewall agrees" if cmp.agree else (
            f"statewall differs ({len(cmp.diffs)})"
            + (f", lacks {', '.join(cmp.missing)}" if cmp.missing else ""))
        if not cmp.agree:
            differ.append(name)
        print(f"ok   {name}: {len(pk)} packets, {size} bytes, "
              f"{time.monotonic() - t0:.1f} s, {verdict}: {states}", flush=True)
        for w in rec.warnings:
            print(f"     warning: {w}")
        if args.verbose:
            for m in cmp.messages():
                print("     " + m.replace("\n", "\n     "))
    left = list_lab_namespaces(f"sw-{os.getpid()}-")
    if left:
        print(f"namespaces still present: {left}", file=sys.stderr)
    if differ:
        print(f"{len(differ)} differ from statewall: {' '.join(differ)}")
    if failed:
        print(f"{len(failed)} failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
