"""The kernel side of live mode, as data: the rules that hand packets to statewall.

Owns: the text of the kernel rules (iptables-restore for IPv4 and IPv6, or one nft table),
applying them as one transaction that also replaces a leftover copy, and removing them.
Must not know: what statewall does with the packets.

Layout (docs/live.md says why): two hook points per family, both at the raw priority (-300),
after the kernel's defragmentation (-400) and before its conntrack (-200):
  PREROUTING: every arriving packet; OUTPUT: every locally generated one.
Each first gets ``notrack`` (the kernel's conntrack leaves it alone: one tracker, not two),
then is queued. Packets statewall itself injects (REJECT's replies, already run through
statewall's OUTPUT/POSTROUTING) carry a reserved socket group id and are accepted before the
queue rule. ``-m conntrack --ctstate UNTRACKED`` is always true after notrack; it is there
because it makes the kernel load conntrack in this namespace, and with it nf_defrag, so that
statewall sees whole datagrams as the kernel's own conntrack would (xt_CT's notrack alone
does not). Fail-open adds ``--queue-bypass``: with no statewall listening, packets pass.
Several queues use ``--queue-balance A:B``: the kernel picks the queue by a hash of the
address pair and protocol that is the same for both directions.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Final

CHAIN_PRE: Final = "statewall-pre"
CHAIN_OUT: Final = "statewall-out"
NFT_TABLE: Final = "statewall"
# the socket group id of statewall's injection sockets (REJECT replies); no process should
# run with it (it is outside the range any distribution allocates)
INJECT_GID: Final = 2_147_483_401


class KernelSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class KernelSetup:
    """What to install: the queue range, fail-open, which families, the backend."""

    first_queue: int = 0
    last_queue: int = 0
    fail_open: bool = False
    ipv4: bool = True
    ipv6: bool = True
    backend: str = "iptables"        # or "nft" (needs the kernel's nft_queue)
    inject_gid: int = INJECT_GID
    # the rule set has a nat table: statewall's SNAT/MASQUERADE hands the kernel packets
    # whose source is one of the host's own addresses, which ip_route_input refuses as
    # martians unless net.ipv4.conf.all.accept_local is 1 (set while running, restored)
    nat: bool = False

    def _queue_target(self) -> str:
        if self.first_queue == self.last_queue:
            t = f"-j NFQUEUE --queue-num {self.first_queue}"
        else:
            t = f"-j NFQUEUE --queue-balance {self.first_queue}:{self.last_queue}"
        return t + (" --queue-bypass" if self.fail_open else "")

    def iptables_restore(self, before: list[str] | None = None) -> str:
        """iptables-restore / ip6tables-restore input (the same for both families), for
        ``--noflush``: only statewall's two chains and the jumps to them. ``before``:
        lines to run first in the same transaction (removing a leftover copy)."""
        q = self._queue_target()
        return "\n".join([
            "# statewall live mode: queue every packet to statewall, keep kernel conntrack off",
            "*raw",
            *(before or []),
            f":{CHAIN_PRE} - [0:0]",
            f":{CHAIN_OUT} - [0:0]",
            f"-I PREROUTING 1 -j {CHAIN_PRE}",
            f"-I OUTPUT 1 -j {CHAIN_OUT}",
            f"-A {CHAIN_PRE} -j CT --notrack",
            "# always true after notrack; loads conntrack+defrag so statewall gets whole datagrams",
            f"-A {CHAIN_PRE} -m conntrack --ctstate UNTRACKED {q}",
            f"-A {CHAIN_OUT} -j CT --notrack",
            "# statewall's own injected packets (REJECT replies) already passed statewall",
            f"-A {CHAIN_OUT} -m owner --gid-owner {self.inject_gid} -j ACCEPT",
            f"-A {CHAIN_OUT} -m conntrack --ctstate UNTRACKED {q}",
            "COMMIT",
            ""])

    def nft(self) -> str:
        """One ``inet`` table for ``nft -f`` (kernels with nft_queue)."""
        if self.first_queue == self.last_queue:
            num = f"{self.first_queue}"
        else:
            num = f"{self.first_queue}-{self.last_queue}"
        flags = " bypass" if self.fail_open else ""
        fam = ("" if self.ipv4 and self.ipv6 else
               "meta nfproto ipv4 " if self.ipv4 else "meta nfproto ipv6 ")
        return "\n".join([
            f"table inet {NFT_TABLE}",
            f"delete table inet {NFT_TABLE}",
            f"table inet {NFT_TABLE} {{",
            "    chain prerouting {",
            "        type filter hook prerouting priority raw; policy accept;",
            f"        {fam}notrack",
            f"        {fam}ct state untracked queue num {num}{flags}",
            "    }",
            "    chain output {",
            "        type filter hook output priority raw; policy accept;",
            f"        {fam}notrack",
            f"        meta skgid {self.inject_gid} accept",
            f"        {fam}ct state untracked queue num {num}{flags}",
            "    }",
            "}",
            ""])

    def text(self) -> str:
        """What ``statewall run --print-kernel-setup`` prints."""
        if self.backend == "nft":
            return ("# nft -f -\n" + self.nft())
        out = []
        for fam, tool in ((self.ipv4, "iptables-restore"), (self.ipv6, "ip6tables-restore")):
            if fam:
                out.append(f"# {tool} --noflush <<'EOF'\n{self.iptables_restore()}EOF\n")
        return "\n".join(out)

    # -- apply / remove ------------------------------------------------------------------
    def _tools(self) -> list[tuple[str, str]]:
        out = []
        if self.ipv4:
            out.append(("iptables-save", "iptables-restore"))
        if self.ipv6:
            out.append(("ip6tables-save", "ip6tables-restore"))
        return out

    def apply(self) -> None:
        """Install (replacing any leftover copy in the same transaction)."""
        if self.nat:
            _accept_local(True)
        if self.backend == "nft":
            _run(["nft", "-f", "-"], self.nft())
            return
        for save, restore in self._tools():
            _run([restore, "--noflush"], self.iptables_restore(_removal(save)))

    def remove(self) -> list[str]:
        """Uninstall; returns the problems met (never raises: runs on the way out)."""
        problems: list[str] = []
        if self.nat:
            _accept_local(False)
        if self.backend == "nft":
            try:
                _run(["nft", "delete", "table", "inet", NFT_TABLE], None)
            except KernelSetupError as e:
                problems.append(str(e))
            return problems
        for save, restore in self._tools():
            try:
                lines = _removal(save)
                if lines:
                    _run([restore, "--noflush"], "\n".join(["*raw", *lines, "COMMIT", ""]))
            except KernelSetupError as e:
                problems.append(str(e))
        return problems

    def installed(self) -> bool:
        """Are statewall's kernel rules present (any family)?"""
        if self.backend == "nft":
            r = subprocess.run(["nft", "list", "table", "inet", NFT_TABLE],
                               capture_output=True, text=True)
            return r.returncode == 0
        return any(_removal(save) for save, _ in self._tools())


_ACCEPT_LOCAL: Final = "/proc/sys/net/ipv4/conf/all/accept_local"
_saved_accept_local: list[str] = []


def _accept_local(on: bool) -> None:
    """Set (remembering the old value) or restore net.ipv4.conf.all.accept_local."""
    try:
        if on:
            with open(_ACCEPT_LOCAL) as f:
                _saved_accept_local[:] = [f.read().strip()]
            with open(_ACCEPT_LOCAL, "w") as f:
                f.write("1\n")
        elif _saved_accept_local:
            with open(_ACCEPT_LOCAL, "w") as f:
                f.write(_saved_accept_local.pop() + "\n")
    except OSError as e:
        raise KernelSetupError(f"{_ACCEPT_LOCAL}: {e.strerror}") from None


def _removal(save: str) -> list[str]:
    """iptables-restore lines (inside ``*raw``) that delete statewall's chains and every
    jump to them, as they are now (empty when there are none)."""
    if shutil.which(save) is None:
        raise KernelSetupError(f"{save} not found")
    r = subprocess.run([save, "-t", "raw"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    dels: list[str] = []
    chains: list[str] = []
    for line in r.stdout.splitlines():
        w = line.split()
        if len(w) >= 2 and w[0].startswith(":") and w[0][1:] in (CHAIN_PRE, CHAIN_OUT):
            chains.append(w[0][1:])
        elif (len(w) >= 4 and w[0] == "-A" and w[1] in ("PREROUTING", "OUTPUT")
              and w[-2] == "-j" and w[-1] in (CHAIN_PRE, CHAIN_OUT)):
            dels.append("-D " + " ".join(w[1:]))
    for c in chains:
        dels += [f"-F {c}", f"-X {c}"]
    return dels


def _run(argv: list[str], text: str | None) -> None:
    try:
        r = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelSetupError(f"{' '.join(argv)}: {e}") from None
    if r.returncode != 0:
        raise KernelSetupError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")
