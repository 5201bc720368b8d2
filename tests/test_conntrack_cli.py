"""``statewall conntrack`` against the conntrack-tools test suite (../shared/peer-suites).

The control server (``ctl.server.CtlServer``) runs in this process on a unix socket in a
temporary directory, a ``Tracker`` behind it, served from its own thread; every suite line
runs ``statewall conntrack ARGS`` as a separate process through ``sh`` with
STATEWALL_CONTROL set, following the suite README: ``#``/space lines skipped, ``OK`` must
exit 0, ``BAD`` must fail, ``|EXPR`` pipes stdout through ``sed "EXPR"`` into the next
command, an empty token makes the line standard input of the next real command. Files run
in name order against one table. Also a few direct checks of the pure parts.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
import subprocess
from typing import Iterator

import pytest

from statewall.conntrack.core import Tracker
from statewall.ctl import args as ctargs
from statewall.ctl import ops

from served import STATEWALL, Served, scratch_daemon  # noqa: E402  (tests/served.py)

SUITE = Path(__file__).resolve().parents[2] / "shared" / "peer-suites" / "conntrack-tools"

# measured: checks passed per file (of the file's OK/BAD lines)
EXPECTED = {"00create": 37, "01delete": 19, "02filter": 19, "03nat": 24, "04zone": 12,
            "05mark": 18, "06update": 4, "07nat6": 28, "08stdin": 28, "09dumpopt": 76,
            "10add": 21}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(str(tmp_path / "ctl.sock"))
    try:
        yield s
    finally:
        s.close()


def run_suite_file(path: Path, env: dict[str, str]) -> tuple[int, int, list[str]]:
    """(checks, passed, failures) of one suite file."""
    cmd = STATEWALL + " conntrack"
    checks = passed = 0
    fails: list[str] = []
    stdin = ""
    for raw in path.read_text().splitlines():
        if not raw or raw[0] in "# ":
            continue
        if ";" not in raw:
            raise ValueError(f"{path.name}: malformed line {raw!r}")
        argstr, token = raw.split(";", 1)
        token = token.strip()
        if not token:
            stdin += argstr + "\n"
            continue
        if token.startswith("|"):
            expr = token[1:]
            shell = f"{cmd} {argstr} | sed {shlex.quote(expr)}"
            p = subprocess.run(shell, shell=True, input=stdin, capture_output=True, text=True,
                               env=env)
            stdin = p.stdout
            continue
        p = subprocess.run(f"{cmd} {argstr}", shell=True, input=stdin, capture_output=True,
                           text=True, env=env)
        stdin = ""
        checks += 1
        ok = (p.returncode == 0) if token[0] == "O" else (p.returncode != 0)
        if ok:
            passed += 1
        else:
            fails.append(f"{path.name}: {raw.strip()} -> exit {p.returncode}: "
                         f"{p.stderr.strip()[-200:]}")
    return checks, passed, fails


@pytest.mark.skipif(not SUITE.is_dir(), reason="peer suite not present")
def test_peer_suite(served: Served) -> None:
    env = dict(os.environ, STATEWALL_CONTROL=served.srv.path)
    got: dict[str, int] = {}
    all_fails: list[str] = []
    total = 0
    for f in sorted(SUITE.iterdir()):
        n, ok, fails = run_suite_file(f, env)
        got[f.name] = ok
        total += n
        all_fails += fails
        print(f"{f.name}: {ok}/{n}")
    print(f"total: {sum(got.values())}/{total}")
    for line in all_fails:
        print("FAIL", line)
    assert got == EXPECTED


RULES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    with _daemon(tmp_path, "--queue", "0") as ctl:
        yield ctl


def _daemon(tmp_path: Path, *args: str) -> contextlib.AbstractContextManager[str]:
    """A real ``statewall run`` (no kernel rules) in a scratch network namespace; yields
    its control socket path. ``args`` start with ``--queue N`` or ``--queues A-B``."""
    first, _, last = args[1].partition("-")
    return scratch_daemon(tmp_path, RULES, *args,
                          queues=range(int(first), int(last or first) + 1), tag="sw-ct")


@pytest.mark.skipif(not SUITE.is_dir(), reason="peer suite not present")
def test_peer_suite_live(daemon: str) -> None:
    """The same suite through a running ``statewall run`` (supervisor -> worker)."""
    env = dict(os.environ, STATEWALL_CONTROL=daemon)
    got = {}
    for f in sorted(SUITE.iterdir()):
        n, ok, fails = run_suite_file(f, env)
        got[f.name] = ok
        print(f"live {f.name}: {ok}/{n}", *fails, sep="\n  ")
    assert got == EXPECTED


def test_several_workers_live(tmp_path: Path) -> None:
    """--queues 0-1: -I lands in the first worker; reads and deletes go to both."""
    with _daemon(tmp_path, "--queues", "0-1") as ctl:
        env = dict(os.environ, STATEWALL_CONTROL=ctl)

        def ct(args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(f"{STATEWALL} conntrack {args}", shell=True, env=env,
                                  capture_output=True, text=True)
        assert ct("-I -s 1.1.1.1 -d 2.2.2.2 -p udp --sport 1 --dport 2 -t 30").returncode == 0
        assert ct("-C").stdout == "1\n"
        st = ct("-S").stdout.splitlines()
        assert [x.split()[0] for x in st] == ["cpu=0", "cpu=1"]
        r = ct("-L")
        assert r.returncode == 0 and "1 flow entries have been shown" in r.stderr
        assert ct("-D -p udp").returncode == 0
        assert ct("-D -p udp").returncode == 1
        procs = [subprocess.Popen(f"{STATEWALL} conntrack -C", shell=True, env=env,
                                  stdout=subprocess.PIPE, text=True) for _ in range(8)]
        assert [p.communicate()[0] for p in procs] == ["0\n"] * 8


# -- the pure parts ------------------------------------------------------------------------
def test_parse_errors() -> None:
    for argv in (["-L", "--dst-nat", "1.1.1.1:"], ["-I", "-p", "256"], ["-L", "-s", "::1",
                 "-d", "1.1.1.1"], ["-L", "--src-nat", "--any-nat"], ["-L", "-D"]):
        with pytest.raises(ctargs.ParamError):
            ctargs.parse(argv)
    c = ctargs.parse(["-L", "-s", "1.1.1.4/24", "--mark", "42/0xff"])
    assert c.src is not None and c.src.mask == b"\xff\xff\xff\x00"
    assert (c.mark, c.mark_mask, c.family) == (42, 0xFF, 2)


def test_ops_roundtrip() -> None:
    tr = Tracker()
    argv = "-I -w 3 -s 1.1.1.1 -d 2.2.2.2 -p tcp --sport 10 --dport 20 --state LISTEN " \
           "-u SEEN_REPLY -t 50 -m 7".split()
    assert ops.run(tr, argv, 100.0).rc == 0
    assert ops.run(tr, argv, 100.0).rc == 1
    r = ops.run(tr, ["-L", "-o", "save"], 100.0)
    assert r.out == ("-A -w 3 -t 50 -u SEEN_REPLY -s 1.1.1.1 -d 2.2.2.2 -r 2.2.2.2 "
                     "-q 1.1.1.1 -p tcp --sport 10 --dport 20 --reply-port-src 20 "
                     "--reply-port-dst 10 --state SYN_SENT2 -m 7\n")
    assert ops.run(tr, ["-C"], 100.0).out == "1\n"
    assert ops.run(tr, ["-U", "-m", "7"], 100.0).rc == 1          # nothing changes
    assert ops.run(tr, ["-U", "-m", "8"], 100.0).rc == 0
    r = ops.run(tr, ["-L"], 101.0)
    assert "tcp      6 49 SYN_SENT2 src=1.1.1.1 dst=2.2.2.2 sport=10 dport=20" in r.out
    assert ops.run(tr, ["-D", "-m", "8"], 101.0).rc == 0
    assert ops.run(tr, ["-D"], 101.0).rc == 1
    assert ops.run(tr, ["-S"], 101.0).out.startswith("cpu=0")
    assert ops.run(tr, ["-I"] + argv[1:], 101.0).rc == 0
    assert ops.run(tr, ["-D", "expect"], 101.0).rc == 2      # not the entries
    assert ops.run(tr, ["-C", "expect"], 101.0).out == "0\n"
    assert ops.run(tr, ["-C"], 101.0).out == "1\n"
    assert ops.run(tr, ["-F"], 101.0).rc == 0
    assert ops.run(tr, ["-C"], 101.0).out == "0\n"
