#!/usr/bin/env python3
"""(Re-)record the kernel golden corpus: ``python tools/record_corpus.py [NAME...]``.

Each ``corpus/<name>.py`` scenario is run against the real kernel in a fresh set of network
namespaces (needs root) and ``corpus/<name>/capture.pcapng`` + ``kernel.json`` are
rewritten.  No NAME: every scenario.  Idempotent: re-running just records again; a failed
scenario leaves its previous recording untouched.  Namespaces are always removed; stale
ones from killed runs (``sw-<dead pid>-*``) are reaped first.
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

from statewall.lab.netns import lab_available, list_lab_namespaces, reap_stale  # noqa: E402
from statewall.lab.record import record  # noqa: E402
from statewall.lab.scenario import corpus_files, load_scenario  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--corpus", default=str(ROOT / "corpus"), help="corpus directory")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
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

    failed: list[str] = []
    for name in args.names or list(files):
        t0 = time.monotonic()
        try:
            scn = load_scenario(files[name])
            rec = record(scn, log=lambda m: print(f"  {m}", flush=True))
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
                          for p in pk)
        size = sum(f.stat().st_size for f in (corpus / name).iterdir())
        print(f"ok   {name}: {len(pk)} packets, {size} bytes, "
              f"{time.monotonic() - t0:.1f} s: {states}")
        for w in rec.warnings:
            print(f"     warning: {w}")
    left = list_lab_namespaces(f"sw-{os.getpid()}-")
    if left:
        print(f"namespaces still present: {left}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
