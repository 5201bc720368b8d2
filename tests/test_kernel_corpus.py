"""Differential replay: every capture in corpus/ was recorded from the real kernel
(``tools/record_corpus.py`` = ``statewall kernel-diff SCENARIO.py --save``: namespaces, NFLOG
per ctstate, ``conntrack -L`` after each packet).  Replaying it through statewall must give,
packet by packet, the kernel's verdict, ctstate and direction, the same ``conntrack -L`` and
``/proc/net/nf_conntrack`` tables (timeouts within 2 s), and the same ``conntrack -E``
events - ``statewall.kerneldiff.compare``, the same comparison the command makes.

Scenarios statewall cannot reproduce yet are expected failures, strictly (they turn red
the moment they pass, so the marker gets removed):
- ``requires=("rules",)`` while the rule engine is not wired (``model.RULES_WIRED``);
- ``KNOWN``: differences found and diagnosed, waiting for a fix in a module not owned here.

As root with namespaces, a sample of scenarios is re-recorded live (``LIVE_SAMPLE``) and
compared twice: with statewall, and with the stored recording (drift of the running kernel).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from statewall.io.capture import Frame, open_capture
from statewall.kerneldiff import model
from statewall.kerneldiff.compare import compare, same_line
from statewall.lab.netns import lab_available, list_lab_namespaces

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
RECORDINGS = sorted(p.parent.name for p in CORPUS.glob("*/kernel.json"))

# name -> diagnosis: differences between statewall and the kernel found by the corpus and not
# fixed yet (the kernel is right).  Each is listed in docs/kernel-diff.md.
KNOWN: dict[str, str] = {}

# re-recorded live in `make test` (root): quick, and between them TCP, UDP, ICMP, v6,
# fragments, settings, fw's own traffic, rules
LIVE_SAMPLE = ("tcp_rst", "udp_unreplied", "icmp_echo_crafted", "ipv6_tcp", "frag_ipv4_udp",
               "tcp_pickup_noloose", "local_input_output", "rules_invalid_drop")


def load(d: Path) -> tuple[dict[str, Any], list[Frame]]:
    k: dict[str, Any] = json.loads((d / "kernel.json").read_text())
    with open_capture(d / k.get("capture", "capture.pcapng")) as cap:
        frames = list(cap)
    assert cap.error is None, cap.error
    return k, frames


def expect(request: pytest.FixtureRequest, name: str, k: dict[str, Any]) -> None:
    if model.missing_features(k.get("requires", [])):
        request.applymarker(pytest.mark.xfail(strict=True,
                                              reason="rule engine not wired yet"))
    elif name in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN[name]))


@pytest.mark.parametrize("name", RECORDINGS)
def test_replay_matches_kernel(name: str, request: pytest.FixtureRequest) -> None:
    k, frames = load(CORPUS / name)
    expect(request, name, k)
    c = compare(k, frames, name)
    assert c.agree, f"{name}:\n" + "\n".join(c.messages())


def test_corpus_is_present() -> None:
    assert len(RECORDINGS) >= 60, "the kernel-recorded corpus is missing"
    assert os.path.isdir(CORPUS)
    assert set(KNOWN) <= set(RECORDINGS)
    assert set(LIVE_SAMPLE) <= set(RECORDINGS)


# ---------------------------------------------------------------------------------------
LAB_OK, LAB_WHY = lab_available()


def drift(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Where a fresh recording of a crafted scenario differs from the stored one: per
    packet verdict, ctstate, direction and entry (timeouts within tolerance), and the
    final table's entries."""
    out = []
    po, pn = old["packets"], new["packets"]
    if [p["summary"] for p in po] != [p["summary"] for p in pn]:
        return ["different packets:\n  stored: " + "\n          ".join(p["summary"] for p in po)
                + "\n  now:    " + "\n          ".join(p["summary"] for p in pn)]
    for a, b in zip(po, pn):
        for key in ("verdict", "ctstate", "dir", "forwarded", "delivered"):
            if a.get(key) != b.get(key):
                out.append(f"packet {a['n']} ({a['summary']}): {key} stored {a.get(key)}, "
                           f"now {b.get(key)}")
        if a.get("snapshot_exact") and b.get("snapshot_exact") and not same_line(
                b.get("entry"), a.get("entry")):
            out.append(f"packet {a['n']}: entry stored {a.get('entry')}, now {b.get('entry')}")
    fo = sorted(" ".join(x.split()[:2] + x.split()[3:]) for x in old["final"]["conntrack"])
    fn = sorted(" ".join(x.split()[:2] + x.split()[3:]) for x in new["final"]["conntrack"])
    if fo != fn:
        out.append(f"final table stored {fo}, now {fn}")
    return out


@pytest.mark.skipif(not LAB_OK, reason=f"live kernel lab unavailable: {LAB_WHY}")
@pytest.mark.parametrize("name", LIVE_SAMPLE)
def test_live_rerecord(name: str) -> None:
    """kernel-diff the scenario against the running kernel: statewall must agree with the
    fresh recording, and the fresh recording with the stored one (timeouts ± 2 s)."""
    from statewall.kerneldiff.run import Options, kernel_diff

    prefix = f"sw-{os.getpid()}-live-{name[:12]}"
    res = kernel_diff(Options(CORPUS / f"{name}.py", prefix=prefix))
    assert list_lab_namespaces(prefix) == [], "namespaces left behind"
    old, _ = load(CORPUS / name)
    new = res.recording.kernel_json()
    changed = drift(old, new)
    assert not changed, f"{name}: the running kernel differs from the recording:\n" + \
        "\n".join(changed)
    if model.missing_features(new.get("requires", [])) or name in KNOWN:
        return  # statewall's side is an expected failure (test_replay_matches_kernel)
    assert res.comparison.agree, f"{name} (live):\n" + "\n".join(res.comparison.messages())
