"""The client side of a control-socket command: print the daemon's answer as the real tool
would have printed it (stdout, stderr, exit status), or say why there is none.
Owns: that output. Must not know: which command was asked.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


def relay(prog: str, path: str, ask: Callable[[], dict[str, Any]], fail_rc: int) -> int:
    """Run ``ask`` (one request to the daemon at ``path``) and relay its reply
    {"ok", "out", "err", "rc"}; ``fail_rc`` when the daemon cannot be reached or refuses."""
    try:
        reply = ask()
    except (OSError, ValueError) as e:
        print(f"{prog}: cannot reach statewall at {path}: {e}", file=sys.stderr)
        return fail_rc
    if not reply.get("ok"):
        print(f"{prog}: {reply.get('error')}", file=sys.stderr)
        return fail_rc
    sys.stdout.write(str(reply.get("out", "")))
    sys.stdout.flush()
    sys.stderr.write(str(reply.get("err", "")))
    return int(reply.get("rc", 1))
