"""iptables' own extension tests (extensions/*.t) through ``statewall rules``' code path.

Each case of a ``libxt_*``/``libipt_*``/``libip6t_*``/``iptables.t`` file is loaded as a
one-rule iptables-restore file (``*table``, ``-A CHAIN RULE``, ``COMMIT``) for every chain
the file lists and, for ``libxt_`` files, for IPv4 and IPv6; the result is:
FAIL (statewall.rules.parse raised ConfigError), OK (``statewall.rules.save`` prints the
expected ``-A CHAIN ...`` line) or NOMATCH. A case passes when it gives the expected result
in every chain and family. Variant cases are judged as for iptables-legacy (statewall
implements the x_tables semantics, not the nft translation).

Files of extensions statewall implements must pass at least the recorded floor (measured:
all of them); files of extensions it does not implement must have every case refused
with an error that names the extension (never silently accepted).

The test data are GPL files of the iptables project, used unchanged from
``../shared/peer-suites/iptables-extensions`` (or ``$STATEWALL_PEER_SUITES``); they are
never copied into this repository. A missing suite is a failure, not a skip.

``STATEWALL_PEER_REAL=1`` (root, ``ip netns`` and iptables 1.8.9 needed) also runs every
case through the real iptables-restore/iptables-save for comparison (slow: minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from statewall.rules import ext as registry
from statewall.rules.errors import ConfigError
from statewall.rules.parse import load
from statewall.rules.save import save

ROOT = Path(__file__).resolve().parent.parent
SUITE = Path(os.environ.get("STATEWALL_PEER_SUITES", ROOT.parent / "shared" / "peer-suites"))
EXT_DIR = SUITE / "iptables-extensions"
_INVERSE = {"OK": "FAIL", "FAIL": "OK", "NOMATCH": "OK"}

# cases statewall passes, per file, as measured when this was written (a floor: never
# fewer). Every file of a claimed extension passes all of its cases.
FLOOR: dict[str, int] = {
    "iptables.t": 12, "libxt_standard.t": 7, "libipt_standard.t": 19, "libip6t_standard.t": 6,
    "libxt_tcp.t": 39, "libxt_udp.t": 33, "libxt_multiport.t": 19, "libxt_tcpmss.t": 9,
    "libipt_icmp.t": 6, "libip6t_icmp6.t": 8, "libxt_state.t": 5, "libxt_conntrack.t": 49,
    "libipt_conntrack.t": 4, "libip6t_conntrack.t": 4, "libxt_helper.t": 2,
    "libxt_connbytes.t": 24, "libxt_connlimit.t": 5, "libipt_connlimit.t": 10,
    "libip6t_connlimit.t": 15, "libxt_mark.t": 7, "libxt_connmark.t": 7, "libxt_MARK.t": 6,
    "libxt_CONNMARK.t": 5, "libxt_limit.t": 5, "libxt_hashlimit.t": 27, "libxt_recent.t": 1,
    "libipt_recent.t": 8, "libip6t_recent.t": 8, "libxt_comment.t": 5, "libxt_length.t": 12,
    "libipt_ttl.t": 8, "libip6t_hl.t": 7, "libxt_pkttype.t": 5, "libxt_addrtype.t": 14,
    "libxt_iprange.t": 1, "libipt_iprange.t": 4, "libip6t_iprange.t": 4, "libxt_tos.t": 12,
    "libxt_dscp.t": 9, "libxt_ecn.t": 4, "libxt_esp.t": 14, "libipt_ah.t": 18,
    "libip6t_ah.t": 16, "libxt_quota.t": 6, "libxt_statistic.t": 7, "libxt_string.t": 10,
    "libxt_set.t": 2, "libxt_SET.t": 1, "libxt_time.t": 3,
    "libipt_REJECT.t": 8,
    "libip6t_REJECT.t": 9, "libipt_LOG.t": 10, "libip6t_LOG.t": 10, "libxt_NFLOG.t": 19,
    "libxt_NFQUEUE.t": 21, "libxt_CT.t": 6, "libxt_NOTRACK.t": 1, "libxt_TRACE.t": 1,
    "libipt_SNAT.t": 15, "libip6t_SNAT.t": 15, "libipt_DNAT.t": 18, "libip6t_DNAT.t": 18,
    "libipt_MASQUERADE.t": 7, "libip6t_MASQUERADE.t": 7, "libxt_REDIRECT.t": 15,
    "libipt_NETMAP.t": 2, "libip6t_NETMAP.t": 2,
}

# the real iptables 1.8.9 (nf_tables) on this project's reference machine, same method
# (cases passed per file; 976 of 1,054 in all)
REAL_1_8_9: dict[str, int] = {
    "iptables.t": 12, "libip6t_DNAT.t": 18, "libip6t_DNPT.t": 5, "libip6t_HL.t": 8,
    "libip6t_LOG.t": 10, "libip6t_MASQUERADE.t": 7, "libip6t_NETMAP.t": 2,
    "libip6t_REJECT.t": 9, "libip6t_SNAT.t": 15, "libip6t_SNPT.t": 5, "libip6t_TEE.t": 2,
    "libip6t_TPROXY.t": 3, "libip6t_ah.t": 14, "libip6t_connlimit.t": 15,
    "libip6t_conntrack.t": 4, "libip6t_dst.t": 4, "libip6t_eui64.t": 3, "libip6t_frag.t": 16,
    "libip6t_hbh.t": 4, "libip6t_hl.t": 7, "libip6t_icmp6.t": 4, "libip6t_iprange.t": 4,
    "libip6t_ipv6header.t": 3, "libip6t_ipvs.t": 0, "libip6t_mh.t": 10, "libip6t_policy.t": 3,
    "libip6t_recent.t": 8, "libip6t_rt.t": 8, "libip6t_srh.t": 27, "libip6t_standard.t": 6,
    "libipt_DNAT.t": 18, "libipt_ECN.t": 3, "libipt_LOG.t": 10, "libipt_MASQUERADE.t": 7,
    "libipt_NETMAP.t": 2, "libipt_REJECT.t": 8, "libipt_SNAT.t": 15, "libipt_TEE.t": 2,
    "libipt_TPROXY.t": 3, "libipt_TTL.t": 8, "libipt_ah.t": 16, "libipt_connlimit.t": 10,
    "libipt_conntrack.t": 4, "libipt_icmp.t": 5, "libipt_iprange.t": 4, "libipt_ipvs.t": 0,
    "libipt_osf.t": 3, "libipt_policy.t": 3, "libipt_realm.t": 3, "libipt_recent.t": 8,
    "libipt_standard.t": 17, "libipt_ttl.t": 8, "libxt_AUDIT.t": 5, "libxt_CHECKSUM.t": 2,
    "libxt_CLASSIFY.t": 2, "libxt_CONNMARK.t": 5, "libxt_CONNSECMARK.t": 3, "libxt_CT.t": 6,
    "libxt_DSCP.t": 9, "libxt_HMARK.t": 6, "libxt_IDLETIMER.t": 4, "libxt_LED.t": 1,
    "libxt_MARK.t": 6, "libxt_NFLOG.t": 16, "libxt_NFQUEUE.t": 19, "libxt_NOTRACK.t": 1,
    "libxt_RATEEST.t": 1, "libxt_REDIRECT.t": 15, "libxt_SECMARK.t": 1, "libxt_SET.t": 1,
    "libxt_SYNPROXY.t": 2, "libxt_TCPMSS.t": 3, "libxt_TCPOPTSTRIP.t": 6, "libxt_TEE.t": 1,
    "libxt_TOS.t": 11, "libxt_TRACE.t": 1, "libxt_addrtype.t": 14, "libxt_bpf.t": 1,
    "libxt_cgroup.t": 6, "libxt_cluster.t": 5, "libxt_comment.t": 5, "libxt_connbytes.t": 24,
    "libxt_connlabel.t": 6, "libxt_connlimit.t": 5, "libxt_connmark.t": 7,
    "libxt_conntrack.t": 42, "libxt_cpu.t": 5, "libxt_dccp.t": 31, "libxt_dscp.t": 9,
    "libxt_ecn.t": 4, "libxt_esp.t": 12, "libxt_hashlimit.t": 27, "libxt_helper.t": 2,
    "libxt_ipcomp.t": 7, "libxt_iprange.t": 1, "libxt_ipvs.t": 0, "libxt_length.t": 11,
    "libxt_limit.t": 5, "libxt_mac.t": 4, "libxt_mark.t": 7, "libxt_multiport.t": 19,
    "libxt_nfacct.t": 2, "libxt_owner.t": 13, "libxt_physdev.t": 4, "libxt_pkttype.t": 5,
    "libxt_policy.t": 4, "libxt_quota.t": 6, "libxt_rateest.t": 0, "libxt_recent.t": 1,
    "libxt_rpfilter.t": 2, "libxt_sctp.t": 32, "libxt_set.t": 2, "libxt_socket.t": 6,
    "libxt_standard.t": 7, "libxt_state.t": 5, "libxt_statistic.t": 7, "libxt_string.t": 10,
    "libxt_tcp.t": 37, "libxt_tcpmss.t": 9, "libxt_time.t": 3, "libxt_tos.t": 12,
    "libxt_u32.t": 1, "libxt_udp.t": 29,
}


@dataclass
class Case:
    file: str
    lineno: int
    table: str
    chains: list[str]
    rule: str
    expected: str           # the expected -A text after the chain ("=": the rule itself)
    result: str             # OK, FAIL, NOMATCH (after the LEGACY variant is applied)


@dataclass
class FileResult:
    name: str
    claimed: bool
    cases: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)


def _families(name: str) -> tuple[int, ...]:
    if name.startswith("libipt_") or name == "iptables.t":
        return (4,)
    if name.startswith("libip6t_"):
        return (6,)
    return (4, 6)


def _extension(name: str) -> str:
    return "standard" if name == "iptables.t" else name.split("_", 1)[1][:-2]


def claimed(name: str, family: int) -> bool:
    """Does statewall implement this file's extension for this family?"""
    ext = _extension(name)
    if ext == "standard":
        return True
    return registry.find_match(ext, family) is not None or \
        registry.find_target(ext, family) is not None


def suite_files() -> list[Path]:
    files = sorted(p for p in EXT_DIR.glob("*.t")
                   if p.name.startswith(("libxt_", "libipt_", "libip6t_")) or
                   p.name == "iptables.t")
    return files


def cases(path: Path) -> Iterator[Case]:
    table, chains = "filter", []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line[0] == "#":
            continue
        if line[0] == "*":
            table = line[1:].strip()
        elif line[0] == ":":
            chains = line[1:].strip().split(",")
        elif line[0] in "@%":
            continue                      # external set-up commands
        else:
            item = line.split(";")
            result = item[2].strip()
            if len(item) > 3 and item[3].strip() != "LEGACY":
                result = item[4].strip() if len(item) > 4 else _INVERSE[result]
            yield Case(path.name, lineno, table, chains, item[0], item[1], result)


def statewall_outcome(case: Case, chain: str, family: int) -> tuple[str, str]:
    """(OK|FAIL|NOMATCH, detail) through the code path of ``statewall rules save``."""
    text = f"*{case.table}\n-A {chain} {case.rule}\nCOMMIT\n"
    try:
        out = save(load(text, case.file, family))
    except ConfigError as e:
        return "FAIL", e.message
    want = case.rule if case.expected == "=" else case.expected
    lines = [ln for ln in out.splitlines() if ln.startswith("-A ")]
    return ("OK" if f"-A {chain} {want}" in lines else "NOMATCH"), " | ".join(lines)


def run_file(path: Path) -> FileResult:
    name = path.name
    fams = _families(name)
    res = FileResult(name, all(claimed(name, f) for f in fams))
    ext = _extension(name).lower()
    for case in cases(path):
        res.cases += 1
        ok = True
        for fam in fams:
            for chain in case.chains:
                got, detail = statewall_outcome(case, chain, fam)
                if res.claimed:
                    good = got == case.result
                else:   # unsupported: must be refused, naming the extension
                    good = got == "FAIL" and ext in detail.lower()
                if not good:
                    ok = False
                    res.failures.append(f"{name}:{case.lineno} IPv{fam} {chain}: "
                                        f"{case.rule!r} -> {got} ({detail})")
                    break
            if not ok:
                break
        res.passed += ok
    return res


@pytest.fixture(scope="module")
def results() -> list[FileResult]:
    if not EXT_DIR.is_dir():
        pytest.fail(f"iptables extension tests not found at {EXT_DIR}: they live beside the "
                    "repository in shared/peer-suites (or set STATEWALL_PEER_SUITES)")
    files = suite_files()
    assert len(files) > 100, f"only {len(files)} .t files in {EXT_DIR}"
    return [run_file(p) for p in files]


def _summary(results: list[FileResult]) -> str:
    rows = [f"{'file':<26} {'cases':>5} {'statewall':>9} {'iptables 1.8.9':>14}"]
    tot = [0, 0, 0]
    for r in results:
        if not r.claimed:
            continue
        real = REAL_1_8_9.get(r.name)
        rows.append(f"{r.name:<26} {r.cases:>5} {r.passed:>9} "
                    f"{'' if real is None else real:>14}")
        tot[0] += r.cases
        tot[1] += r.passed
        tot[2] += real or 0
    rows.append(f"{'claimed, total':<26} {tot[0]:>5} {tot[1]:>9} {tot[2]:>14}")
    un = [r for r in results if not r.claimed]
    rows.append(f"{'unsupported, refused':<26} {sum(r.cases for r in un):>5} "
                f"{sum(r.passed for r in un):>9} "
                f"{sum(REAL_1_8_9.get(r.name, 0) for r in un):>14}")
    return "\n".join(rows)


def test_claimed_extensions_meet_floor(results: list[FileResult]) -> None:
    print("\n" + _summary(results))
    claimed_files = {r.name for r in results if r.claimed}
    assert claimed_files == set(FLOOR), (
        "claimed files changed; update FLOOR: "
        f"new {sorted(claimed_files - set(FLOOR))}, gone {sorted(set(FLOOR) - claimed_files)}")
    below = [r for r in results if r.claimed and r.passed < FLOOR[r.name]]
    assert not below, "\n".join(f"{r.name}: {r.passed}/{r.cases} < floor {FLOOR[r.name]}\n  " +
                                "\n  ".join(r.failures) for r in below)
    total = sum(r.passed for r in results if r.claimed)
    assert total >= sum(FLOOR.values())


def test_unsupported_extensions_are_refused(results: list[FileResult]) -> None:
    bad = [f for r in results if not r.claimed for f in r.failures]
    assert not bad, "cases of unsupported extensions not refused by name:\n" + "\n".join(bad)
    assert sum(r.cases for r in results if not r.claimed) > 300


def test_beats_real_iptables_on_claimed_files(results: list[FileResult]) -> None:
    for r in results:
        if r.claimed and r.name in REAL_1_8_9:
            assert r.passed >= REAL_1_8_9[r.name], r.name


@pytest.mark.skipif(os.environ.get("STATEWALL_PEER_REAL") != "1",
                    reason="set STATEWALL_PEER_REAL=1 to run the real iptables too")
def test_real_iptables_same_cases() -> None:       # pragma: no cover - needs root
    if os.geteuid() != 0 or not shutil.which("iptables-restore") or not shutil.which("ip"):
        pytest.skip("needs root, iptables-restore and ip")
    ns = f"sw-rules-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    passed = total = 0
    try:
        for path in suite_files():
            fams = _families(path.name)
            for case in cases(path):
                total += 1
                ok = True
                for fam in fams:
                    tool = "iptables" if fam == 4 else "ip6tables"
                    for chain in case.chains:
                        data = f"*{case.table}\n-A {chain} {case.rule}\nCOMMIT\n"
                        p = subprocess.run(["ip", "netns", "exec", ns, tool + "-restore"],
                                           input=data, capture_output=True, text=True)
                        got = "FAIL"
                        if p.returncode == 0:
                            s = subprocess.run(["ip", "netns", "exec", ns, tool + "-save"],
                                               capture_output=True, text=True).stdout
                            want = case.rule if case.expected == "=" else case.expected
                            got = "OK" if f"\n-A {chain} {want}\n" in s else "NOMATCH"
                            subprocess.run(["ip", "netns", "exec", ns, tool, "-t", case.table,
                                            "-F"], capture_output=True)
                        if got != case.result:
                            ok = False
                            break
                    if not ok:
                        break
                passed += ok
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print(f"\nreal iptables: {passed} of {total}")
    assert total == 1054
