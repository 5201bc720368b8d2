import os
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def lab() -> Iterator[object]:
    """The kernel lab (client - fw - server namespaces with live peers), one per test module,
    always torn down; skipped where namespaces cannot be made. A module may define its own."""
    from statewall.lab.netns import Topology, lab_available
    ok, why = lab_available()
    if not ok:
        pytest.skip(f"live kernel lab unavailable: {why}")
    with Topology() as t:
        t.up(live_peers=True)
        yield t
