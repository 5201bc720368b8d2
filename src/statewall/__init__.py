"""statewall: Linux netfilter connection tracking and stateful packet filtering, in Python."""

__version__ = "0.1.0"
