"""IP sets for ``-m set`` and ``-j SET`` (the kernel's ipset), sans-I/O.

``restore.load(text, file)`` reads ``ipset save`` output into a ``Registry``; a rule set
parsed with it (``rules.parse.load(..., sets=registry)``) may name its sets, and the
engine tests and changes them (``sets.test`` / ``sets.change``) on the packets' clock.
"""

from .restore import load
from .sets import IpSet, Registry, SetError

__all__ = ["IpSet", "Registry", "SetError", "load"]
