"""The kernel's checks on a committed table (``translate_table`` in ip_tables.c).

Owns: chain reachability and the hook mask each chain is reached from
(``mark_source_chains``: a jump or goto loop reachable from a built-in chain is refused),
and each extension's ``xt_check_match`` / ``xt_check_target`` conditions: the table it is
restricted to, the hooks, the protocol (``-p`` without ``!``), then the extension's own
checkentry. Must not know: text syntax.

Errors are raised as ``(rule, message)`` via ``RuleCheckError`` so the caller can report
the rule's file and line.
"""

from __future__ import annotations

from typing import Final

from . import ext as registry
from .errors import OptionError
from .ext.base import Ext, KernelCtx, hook_names
from .model import HOOKS, INV_PROTO, TABLE_CHAINS, Rule
from .netdb import proto_name

_ELOOP: Final = "jump/goto loop: a chain can reach itself (Too many levels of links)"


class RuleCheckError(Exception):
    def __init__(self, rule: Rule | None, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def hook_masks(table: str, chains: dict[str, list[Rule]]) -> dict[str, int]:
    """Hook bits each chain is reachable from; raises RuleCheckError on a loop."""
    masks = {name: 0 for name in chains}
    for name in TABLE_CHAINS[table]:
        bit = 1 << HOOKS[name]
        masks[name] |= bit
        _walk(name, bit, chains, masks, [])
    return masks


def _walk(name: str, bit: int, chains: dict[str, list[Rule]], masks: dict[str, int],
          path: list[str]) -> None:
    path.append(name)
    for rule in chains[name]:
        t = rule.target
        if t.kind in ("jump", "goto"):
            if t.name in path:
                raise RuleCheckError(rule, _ELOOP)
            masks[t.name] |= bit
            _walk(t.name, bit, chains, masks, path)
    path.pop()


def _check_ext(ext: Ext, info: object, kc: KernelCtx, kind: str) -> None:
    if ext.table is not None and ext.table != kc.table:
        raise OptionError(f"{ext.name} {kind}: only valid in {ext.table} table, not {kc.table}")
    if ext.hooks and kc.hook_mask & ~ext.hooks:
        raise OptionError(f"{ext.name} {kind}: used from hooks {hook_names(kc.hook_mask)}, "
                          f"but only valid from {hook_names(ext.hooks)}")
    if ext.proto and (kc.ip.proto != ext.proto or kc.ip.inv & INV_PROTO):
        pname = proto_name(ext.proto) or str(ext.proto)
        raise OptionError(f"{ext.name} {kind}: only valid for protocol {ext.proto} "
                          f"(-p {pname} without !)")
    ext.check(info, kc)


def check_table(family: int, table: str, chains: dict[str, list[Rule]]) -> None:
    masks = hook_masks(table, chains)
    for name, rules in chains.items():
        for rule in rules:
            kc = KernelCtx(family, table, masks[name], rule.ip)
            try:
                for m in rule.matches:
                    ext = registry.find_match(m.name, family)
                    assert ext is not None
                    _check_ext(ext, m.info, kc, "match")
                if rule.target.kind == "ext":
                    text = registry.find_target(rule.target.name, family)
                    assert text is not None
                    _check_ext(text, rule.target.info, kc, "target")
            except OptionError as e:
                raise RuleCheckError(rule, e.message) from None
