"""NAT: bindings, port allocation, packet rewrite, helper payload rewrite (nf_nat_*).

``Nat`` (``hooks``) is what the firewall calls at its NAT hooks; ``core`` binds entries,
``manip`` rewrites packets, ``targets`` turns a NAT target into a range, ``helpers`` is
nf_nat_ftp / nf_nat_tftp, ``seqadj`` the TCP sequence adjustment, ``forward`` the bytes a
forwarded packet leaves with. See docs/nat.md.
"""

from .hooks import Nat

__all__ = ["Nat"]
