"""The sans-I/O boundary: nothing below packet/, conntrack/ or firewall.py/host.py imports
I/O, clocks, sockets or the front ends (STYLE.md: "A test can enforce the import boundary")."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "statewall"
CORE = [*(SRC / "packet").rglob("*.py"), *(SRC / "conntrack").rglob("*.py"),
        SRC / "firewall.py", SRC / "host.py", SRC / "flowcache.py"]
FORBIDDEN_MODULES = {"socket", "time", "datetime", "os", "subprocess", "select", "asyncio",
                     "threading", "signal", "io", "random", "logging"}
FORBIDDEN_PACKAGES = ("statewall.io", "statewall.cli", "statewall.lab", "scapy")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    pkg = "statewall." + ".".join(path.relative_to(SRC).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.rstrip(".").split(".")
                base = base[:len(base) - (node.level - 1)]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.append(node.module)
    return names


def test_core_is_sans_io() -> None:
    assert CORE, "no core files found"
    bad = []
    for path in CORE:
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN_MODULES or name.startswith(FORBIDDEN_PACKAGES):
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_open_or_print_in_core() -> None:
    bad = []
    for path in CORE:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("open", "print", "input"):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} calls {node.func.id}()")
    assert not bad, "\n".join(bad)
