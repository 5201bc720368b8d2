"""The conntrack template a raw-table ``CT`` target attaches to a packet (``xt_CT``).

Owns: ``CtTemplate``, what the rule engine hands to ``Tracker.conntrack_in`` for a packet
that matched ``-t raw ... -j CT`` (``--helper NAME``, ``--zone N``). Must not know: rules,
how the tracker applies it. Follows net/netfilter/xt_CT.c (``xt_ct_tg_check`` builds a
template ``nf_conn``: helper extension, zone) and nf_conntrack_core.c (``init_conntrack``
uses the template only for a packet that creates an entry; ``resolve_normal_ct`` looks the
packet up in the template's zone).

A template is built once per rule and shared by every packet that matches it: it is
immutable. The helper is named, as in ``iptables``; the tracker resolves the name for the
packet's family and protocol (the kernel resolves it when the rule is loaded:
``nf_conntrack_helper_try_module_get(name, family, proto)`` - an unknown name is a rule
error, see ``helpers.Registry.find``).
"""

from __future__ import annotations


class CtTemplate:
    """``-j CT --helper NAME --zone N``: helper name (or None) and conntrack zone id."""

    __slots__ = ("helper", "zone")

    helper: str | None
    zone: int

    def __init__(self, helper: str | None = None, zone: int = 0) -> None:
        if zone < 0 or zone > 0xFFFF:
            raise ValueError(f"conntrack zone out of range: {zone}")
        object.__setattr__(self, "helper", helper)
        object.__setattr__(self, "zone", zone)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CtTemplate is immutable")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CtTemplate) and other.helper == self.helper
                and other.zone == self.zone)

    def __hash__(self) -> int:
        return hash((self.helper, self.zone))

    def __repr__(self) -> str:
        return f"CtTemplate(helper={self.helper!r}, zone={self.zone})"
