"""Live mode: statewall filtering real traffic through NFQUEUE (``statewall run``).

Owns: the daemon - kernel-side setup (``kernel``), the kernel's routing answers
(``route``), one worker process per queue (``worker``), the supervisor that starts them,
forwards reloads and stops them (``supervisor``), configuration and rule loading
(``config``), journald-friendly logging (``log``). The packet path itself is the same
``Firewall`` facade ``statewall replay`` uses. See docs/live.md.
"""
