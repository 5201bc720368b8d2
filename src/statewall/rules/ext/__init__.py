"""The extension registry: name -> match or target extension (a table, not code).

Owns: which ``-m`` / ``-j`` names statewall implements, per address family, the aliases
libxtables resolves (``icmpv6``/``ipv6-icmp`` -> ``icmp6``), and the names of iptables
extensions statewall does not implement, so a rule using one is refused with a message
naming it instead of being mistaken for a chain or silently skipped.
"""

from __future__ import annotations

from typing import Final

from . import (connlimit, conntrack, counting, daytime, icmp, ipheader, ipsec, ipset, mark, misc,
               nat, ratelimit, recent, string, targets, tcpudp)
from .base import MatchExt, TargetExt

# (name, family) -> extension; family 0 serves both
_MATCHES: Final[dict[tuple[str, int], MatchExt]] = {
    ("tcp", 0): tcpudp.TCP,
    ("udp", 0): tcpudp.UDP,
    ("multiport", 0): tcpudp.MULTIPORT,
    ("icmp", 4): icmp.ICMP,
    ("icmp6", 6): icmp.ICMP6,
    ("state", 0): conntrack.STATE,
    ("conntrack", 0): conntrack.CONNTRACK,
    ("helper", 0): conntrack.HELPER,
    ("connbytes", 0): conntrack.CONNBYTES,
    ("connlimit", 0): connlimit.CONNLIMIT,
    ("mark", 0): mark.MARK,
    ("connmark", 0): mark.CONNMARK,
    ("limit", 0): ratelimit.LIMIT,
    ("hashlimit", 0): ratelimit.HASHLIMIT,
    ("recent", 0): recent.RECENT,
    ("comment", 0): misc.COMMENT,
    ("length", 0): misc.LENGTH,
    ("string", 0): string.STRING,
    ("ttl", 4): misc.TTL,
    ("hl", 6): misc.HL,
    ("pkttype", 0): misc.PKTTYPE,
    ("addrtype", 0): misc.ADDRTYPE,
    ("iprange", 0): misc.IPRANGE,
    ("tcpmss", 0): tcpudp.TCPMSS,
    ("tos", 0): ipheader.TOS,
    ("dscp", 0): ipheader.DSCP,
    ("ecn", 0): ipheader.ECN,
    ("esp", 0): ipsec.ESP,
    ("ah", 4): ipsec.AH,
    ("ah", 6): ipsec.AH6,
    ("quota", 0): counting.QUOTA,
    ("statistic", 0): counting.STATISTIC,
    ("set", 0): ipset.SET_MATCH,
    ("time", 0): daytime.TIME,
}

_TARGETS: Final[dict[tuple[str, int], TargetExt]] = {
    ("REJECT", 0): targets.REJECT,
    ("LOG", 0): targets.LOG,
    ("NFLOG", 0): targets.NFLOG,
    ("NFQUEUE", 0): targets.NFQUEUE,
    ("CT", 0): targets.CT,
    ("NOTRACK", 0): targets.NOTRACK,
    ("TRACE", 0): targets.TRACE,
    ("MARK", 0): mark.MARK_TARGET,
    ("CONNMARK", 0): mark.CONNMARK_TARGET,
    ("SNAT", 0): nat.SNAT,
    ("DNAT", 0): nat.DNAT,
    ("MASQUERADE", 0): nat.MASQUERADE,
    ("REDIRECT", 0): nat.REDIRECT,
    ("NETMAP", 0): nat.NETMAP,
    ("SET", 0): ipset.SET_TARGET,
}

# xtables_find_match's special case
MATCH_ALIASES: Final = {"icmpv6": "icmp6", "ipv6-icmp": "icmp6"}

# iptables 1.8 extensions statewall does not implement
UNSUPPORTED_MATCHES: Final = frozenset((
    "bpf", "cgroup", "cluster", "connlabel", "cpu", "dccp", "devgroup", "dst", "eui64",
    "frag", "hbh", "ipcomp", "ipv6header", "ipvs", "mac", "mh", "nfacct", "osf", "owner",
    "physdev", "policy", "rateest", "realm", "rpfilter", "rt", "sctp", "socket", "srh",
    "u32", "udplite",
))
UNSUPPORTED_TARGETS: Final = frozenset((
    "AUDIT", "CHECKSUM", "CLASSIFY", "CONNSECMARK", "DNPT", "DSCP", "ECN", "HL", "HMARK",
    "IDLETIMER", "LED", "RATEEST", "SECMARK", "SNPT", "SYNPROXY", "TCPMSS",
    "TCPOPTSTRIP", "TEE", "TOS", "TPROXY", "TTL", "ULOG", "MIRROR", "SAME", "ERROR",
))


def find_match(name: str, family: int) -> MatchExt | None:
    name = MATCH_ALIASES.get(name, name) if family == 6 else name
    return _MATCHES.get((name, family)) or _MATCHES.get((name, 0))


def find_target(name: str, family: int) -> TargetExt | None:
    return _TARGETS.get((name, family)) or _TARGETS.get((name, 0))


def match_names() -> list[str]:
    return sorted({n for n, _ in _MATCHES})


def target_names() -> list[str]:
    return sorted({n for n, _ in _TARGETS})


def is_target_name(name: str) -> bool:
    """A name ``-N`` may not use (``chain name may not clash with target name``)."""
    return name in UNSUPPORTED_TARGETS or any(n == name for n, _ in _TARGETS) or \
        name in ("ACCEPT", "DROP", "QUEUE", "RETURN")
