"""Installing the C accelerator (statewall/_speedups.c) on the classes whose methods it
repeats (sans-I/O).

Owns: the one way a module swaps its Python methods for C ones. Each module keeps its
Python method as the reference (``*_py``), says what the C side must bind (its classes,
templates, tables) and what must be accelerated first; a bind that fails leaves the class
pure Python, with the same answers.
Must not know: any particular class.
"""

from __future__ import annotations

from typing import Any, Callable

BIND_ERRORS = (ImportError, AttributeError, TypeError, ValueError, RuntimeError)


def install(cls: type, bind: Callable[[], dict[str, Any]], *needs: bool) -> bool:
    """Set the methods ``bind()`` returns on ``cls``. False (nothing changed) when one of
    ``needs`` is false (what the C side relies on stayed Python) or ``bind`` raises
    (``_speedups`` not built, STATEWALL_PURE set, a layout it does not recognise)."""
    if not all(needs):
        return False
    try:
        methods = bind()
    except BIND_ERRORS:
        return False
    for name, method in methods.items():
        setattr(cls, name, method)
    return True
