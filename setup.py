"""Build the optional C accelerator ``statewall._speedups`` (everything else is configured in
pyproject.toml).

The extension is optional: when there is no compiler, the compile fails, or STATEWALL_PURE is
set to anything but "" or "0" at build time, the build goes on without it and statewall runs
its pure-Python code (the reference implementation; src/statewall/_speedups.c only repeats
its hot path). STATEWALL_PURE set at run time disables an extension that was built.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _pure() -> bool:
    return os.environ.get("STATEWALL_PURE", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing (the package works without the extension)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler, bad toolchain, ...
            self._skip(e)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:
            self._skip(e)

    @staticmethod
    def _skip(e: Exception) -> None:
        print(f"warning: statewall._speedups not built ({e}); using pure Python",
              file=sys.stderr)


ext_modules = [] if _pure() else [
    Extension("statewall._speedups", ["src/statewall/_speedups.c", "src/statewall/_chains.c"],
              depends=["src/statewall/_speedups.h"], extra_compile_args=["-O2"]),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
