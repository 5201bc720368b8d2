"""Native match specs: what a predicate tests, as data the C chain walk (``_chains.c``)
evaluates without calling it (sans-I/O).

A predicate made by rules/compile.py or an extension may carry ``native``: a tuple
``(op, args...)`` saying exactly what it computes in the common case. The C walk tests
that on the packet's and context's slots; for anything the spec does not decide (a
fragment, a damaged header: where the predicate raises HotDrop or reads raw bytes) it calls
the predicate itself, so the predicate stays the reference. A predicate without a spec is
always called.

Owns: the op codes and their argument layouts (mirrored in ``_chains.c`` and checked when it
binds), ``mark`` to attach a spec, ``program`` to lay out one rule's predicates.
Must not know: how specs are evaluated.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

F = TypeVar("F")

OP_PY: Final = 0          # call the predicate
OP_VOLATILE: Final = 1    # (): flowcache's "may answer otherwise next time"; true
OP_PROTO: Final = 2       # (proto, inv)
OP_ADDR: Final = 3        # (dst?, want, mask, inv): (addr & mask) == want, bytewise
OP_IFACE: Final = 4       # (out?, name, prefix?, inv): "" for no device
OP_STATE: Final = 5       # (mask, inv): conntrack state bits incl. SNAT/DNAT
OP_PORTS: Final = 6       # (slo, shi, sinv, dlo, dhi, dinv, fmask, fcmp, finv): tcp/udp
OP_MULTIPORT: Final = 7   # (src?, dst?, ((lo, hi), ...), inv)

OPS: Final = {"OP_VOLATILE": OP_VOLATILE, "OP_PROTO": OP_PROTO, "OP_ADDR": OP_ADDR,
              "OP_IFACE": OP_IFACE, "OP_STATE": OP_STATE, "OP_PORTS": OP_PORTS,
              "OP_MULTIPORT": OP_MULTIPORT}


def mark(fn: F, *spec: Any) -> F:
    """``fn`` with its native spec attached (returns ``fn``)."""
    setattr(fn, "native", spec)
    return fn


def program(preds: list[Any]) -> tuple[tuple[Any, ...], ...]:
    """One rule's predicates in order, each as ``(fn, op, args...)`` (op 0: call fn)."""
    out = []
    for p in preds:
        spec = getattr(p, "native", None)
        out.append((p, *spec) if spec else (p, OP_PY))
    return tuple(out)
