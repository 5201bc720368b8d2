"""``statewall conntrack``: the conntrack-tools command line against a running statewall.

args: the command line parsed into a ``Command`` (pure). ops: the operations over a
``Tracker`` (pure, ``now`` passed in). server: the control-socket request format and a
non-blocking unix-socket server a worker can poll.
"""
