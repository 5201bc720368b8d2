"""Rule sets: iptables-restore text -> frozen model -> compiled predicates -> verdicts.

The public surface::

    from statewall.rules.parse import load            # text, file, family -> Ruleset
    from statewall.rules.save import save             # Ruleset -> iptables-save text
    from statewall.rules.listing import list_table    # iptables -L -n -v -x text
    from statewall.rules.engine import Engine, Verdict
    from statewall.rules.context import Context
    from statewall.rules.errors import ConfigError    # FILE:LINE: message

Layout: ``model`` (data), ``quote`` / ``numbers`` / ``addr`` / ``netdb`` (how iptables
reads words, numbers, addresses and names), ``cmdline`` (one rule line), ``parse`` (a whole
restore file), ``check`` (the kernel's checks at COMMIT), ``ext/`` (one module per group of
extensions, registered by name in ``ext/__init__``), ``save`` / ``listing`` (text out),
``compile`` / ``engine`` (evaluation), ``result`` / ``context`` (what goes in and out of a
traversal). Nothing here does I/O or reads a clock.
"""
