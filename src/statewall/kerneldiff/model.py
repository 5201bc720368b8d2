"""The statewall side of a kernel comparison: the ``Firewall`` a recording is replayed through.

Owns: turning a recording's configuration (sysctls as the kernel read them back, the
iptables/ip6tables text the lab loaded, fw's interfaces, addresses and routes) into a
``Firewall``; knowing whether statewall can take a ruleset yet.
Must not know: the lab, captures, reports.

``RULES_WIRED`` is true once ``Firewall`` takes ``rules4``/``rules6`` and the rule engine
and the iptables-save parser (``statewall.rules.parse``) exist; before that a recording whose
rules change the outcome cannot be reproduced (``missing_features``).  ``build_firewall``
is the one place that parses and passes the rules on.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ..conntrack.core import Tracker
from ..conntrack.sysctl import Settings, resolve_name
from ..firewall import Firewall
from ..host import HostModel, Route


def _firewall_params() -> set[str]:
    try:
        return set(inspect.signature(Firewall).parameters)
    except (TypeError, ValueError):
        return set()


def _ruleset_parser() -> Callable[[str, int, Any], Any] | None:
    """``text, family, sets -> Ruleset`` from ``statewall.rules.parse``, if it exists yet
    (``sets``: fw's IP sets, for parsers that take them).

    The one place that knows the parser's API: adapt it here if it differs.
    """
    try:
        from ..rules import parse as mod  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    for name in ("parse_save", "parse_ruleset", "parse", "load"):
        fn = getattr(mod, name, None)
        if not callable(fn):
            continue
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        if "sets" in params:
            return lambda text, family, sets: fn(text, family=family, sets=sets)
        if "family" in params:
            return lambda text, family, sets: fn(text, family=family)
        return lambda text, family, sets: fn(text)
    return None


def _engine_present() -> bool:
    try:
        from ..rules import engine  # noqa: F401  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return False
    return True


_PARAMS: Final = _firewall_params()
_PARSER: Final = _ruleset_parser() if _engine_present() else None
# True once Firewall(settings, rules4=..., rules6=..., host=...) and the iptables-save parser
# exist (issue 3); until then recordings whose rules matter cannot be reproduced.
RULES_WIRED: Final = {"rules4", "rules6"} <= _PARAMS and _PARSER is not None


def settings_from(sysctls: Mapping[str, Any], profile: str = "linux") -> Settings:
    """Settings from ``kernel.json``'s ``sysctls`` (full names, values as read back);
    sysctls statewall does not model (``unmodelled``) are left out."""
    return Settings(profile, [(k, str(v)) for k, v in sysctls.items()
                              if resolve_name(k) is not None])


def unmodelled(sysctls: Mapping[str, Any]) -> list[str]:
    """The recording's sysctls statewall has no setting for (e.g. net.ipv4.conf.*)."""
    return [k for k in sysctls if resolve_name(k) is None]


def host_from(topology: Mapping[str, Any]) -> HostModel:
    """fw's interfaces, addresses and routes as the lab built them."""
    ifaces = []
    for name, info in topology.get("interfaces", {}).items():
        addrs = info.get("fw_addrs")
        if addrs is None:  # recordings before fw_addrs: first address of each family
            addrs = [a for a in (f"{info.get('fw_ipv4')}/24" if info.get("fw_ipv4") else "",
                                 f"{info.get('fw_ipv6')}/64" if info.get("fw_ipv6") else "")
                     if a]
        ifaces.append((name, [ipaddress.ip_interface(a) for a in addrs]))
    routes = [Route(ipaddress.ip_network(prefix), None, dev)
              for prefix, dev in topology.get("routes", [])]
    return HostModel(ifaces, routes)


def local_addresses(topology: Mapping[str, Any]) -> set[bytes]:
    """fw's own addresses (packed)."""
    out: set[bytes] = set()
    for info in topology.get("interfaces", {}).values():
        for a in info.get("fw_addrs") or [info.get("fw_ipv4"), info.get("fw_ipv6")]:
            if a:
                out.add(ipaddress.ip_interface(a).ip.packed)
    return out


def has_rules(rules_v4: str, rules_v6: str) -> bool:
    """Any rule at all (chain policies count: a DROP policy changes outcomes)."""
    for text in (rules_v4, rules_v6):
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("-A") or line.startswith("-I") or (
                    line.startswith(":") and not line.split()[1:2] in (["ACCEPT"], ["-"])):
                return True
    return False


def build_firewall(settings: Settings, rules_v4: str = "", rules_v6: str = "",
                   host: HostModel | None = None, tracker: Tracker | None = None,
                   ipsets: str = "") -> Firewall:
    """The firewall to replay a recording through.

    With the rule engine wired (``RULES_WIRED``) the rulesets are parsed and passed on;
    before that, rules are ignored and callers must treat recordings with rules as not
    reproducible (``has_rules``).
    """
    fw_cls: Any = Firewall
    kw: dict[str, Any] = {"tracker": tracker} if tracker is not None else {}
    if "host" in _PARAMS and host is not None:
        kw["host"] = host
    if RULES_WIRED and _PARSER is not None:
        sets = None
        if ipsets.strip():          # fw's IP sets (``ipset restore`` text): rules name them
            from ..ipset import load as load_sets
            sets = load_sets(ipsets, "<ipset>")
        kw["rules4"] = _PARSER(rules_v4, 4, sets) if rules_v4.strip() else None
        kw["rules6"] = _PARSER(rules_v6, 6, sets) if rules_v6.strip() else None
    made: Firewall = fw_cls(settings, **kw)
    return made


def rules_text(rules_input: Mapping[str, str] | None) -> tuple[str, str]:
    """(iptables text, ip6tables text) from ``kernel.json``'s ``rules_input``."""
    if not rules_input:
        return "", ""
    return rules_input.get("ipv4", "") or "", rules_input.get("ipv6", "") or ""


def ipsets_text(rules_input: Mapping[str, str] | None) -> str:
    """fw's IP sets (``ipset restore`` text) from ``kernel.json``'s ``rules_input``."""
    return (rules_input or {}).get("ipset", "") or ""


def missing_features(requires: Sequence[str]) -> list[str]:
    """What statewall lacks to reproduce a recording that ``requires`` these features:
    ``["rules"]`` while the rule engine is not wired."""
    return ["rules"] if "rules" in requires and not RULES_WIRED else []
