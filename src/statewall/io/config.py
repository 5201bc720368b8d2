"""Reading the files a firewall is configured from: sysctl settings and rule sets.

Owns: ``--sysctl K=V`` / ``@FILE`` (sysctl.conf syntax) into ``Settings``, and an
iptables-restore file into a parsed rule set, with every failure turned into one
``LoadError`` whose text names the file (and line). Must not know: what the settings or
rules do. Shared by the front ends (replay, explain, kernel-diff) and live mode.
"""

from __future__ import annotations

from typing import Any

from ..conntrack.sysctl import Settings, parse_assignment, parse_sysctl_file


class LoadError(Exception):
    """A file that cannot be used: ``FILE: why`` or ``FILE:LINE: what is wrong``."""


def load_settings(profile: str, items: list[str]) -> Settings:
    """Settings from ``K=V`` items and ``@FILE`` sysctl.conf files (SettingError/OSError
    propagate: callers word them)."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        if item.startswith("@"):
            path = item[1:]
            with open(path, encoding="utf-8") as f:
                pairs.extend(parse_sysctl_file(f.read(), path))
        else:
            pairs.append(parse_assignment(item))
    return Settings(profile, pairs)


def load_ruleset(path: str, family: int, sets: Any = None) -> Any:
    """Parse an iptables-restore (family 4) or ip6tables-restore (6) file; ``sets``: the
    IP sets its rules may name (``load_ipsets``)."""
    from ..rules.errors import ConfigError
    from ..rules.parse import parse_ruleset
    try:
        return parse_ruleset(_read(path), path, family, sets=sets)
    except ConfigError as e:
        raise LoadError(str(e)) from None


def load_ipsets(paths: list[str]) -> Any:
    """``ipset save`` files into one statewall.ipset.Registry (None when there are none)."""
    if not paths:
        return None
    from ..ipset import load
    from ..rules.errors import ConfigError
    reg = None
    for path in paths:
        try:
            reg = load(_read(path), path, reg)
        except ConfigError as e:
            raise LoadError(str(e)) from None
    return reg


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror}") from None
