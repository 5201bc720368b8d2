"""The TFTP helper: a read or write request expects the server's answer from any port.

Owns: reading the TFTP opcode of a helped UDP entry's packets and registering the
expectation for RRQ/WRQ. Must not know: NAT (``nf_nat_tftp``, reached through a hook),
rules, output formats.
Follows net/netfilter/nf_conntrack_tftp.c (``tftp_help``, ``tftp_exp_policy``).

The helper looks at every packet of the entry, either direction, including the very first
(the request itself creates the entry, and the helper runs before it is confirmed). For
opcode 1 (RRQ) or 2 (WRQ) it expects, from the reply tuple: the server's address, any source
port, to the client's address and port - the server answers from a new port (RFC 1350), and
that answer is a new, RELATED connection. Other opcodes (DATA, ACK, ERROR) and payloads too
short for an opcode are ignored. A repeated request replaces the expectation (max_expected
1); if it cannot be registered the packet is dropped. For a NATed entry the expectation goes
to ``nf_nat_tftp_hook`` instead (``nf_nat_tftp``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

from ..expect import NF_CT_EXPECT_CLASS_DEFAULT, Expectation, ExpectPolicy
from ..proto.base import NF_ACCEPT, NF_DROP

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker

IPPROTO_UDP: Final = 17
TFTP_PORT: Final = 69
TFTP_OPCODE_READ: Final = 1
TFTP_OPCODE_WRITE: Final = 2

TFTP_POLICY: Final[tuple[ExpectPolicy, ...]] = (ExpectPolicy(max_expected=1, timeout=300),)
IPS_NAT_MASK: Final = 0x30          # IPS_SRC_NAT | IPS_DST_NAT

# ``nf_nat_tftp_hook``: set by statewall.nat.helpers (the kernel's RCU hook pointer); for a
# NATed entry it registers the expectation itself: (tracker, ct, pkt, exp, now) -> verdict
NatTftpHook = Callable[["Tracker", "Conn", "Packet", Expectation, float], int]
nf_nat_tftp_hook: NatTftpHook | None = None


class Tftp:
    """The TFTP helper for one family and port."""

    __slots__ = ("name", "l3num", "proto", "port", "policy")

    def __init__(self, name: str, l3num: int, port: int = TFTP_PORT) -> None:
        self.name = name
        self.l3num = l3num
        self.proto = IPPROTO_UDP
        self.port = port
        self.policy = TFTP_POLICY

    def new_data(self) -> None:
        return None

    def help(self, tracker: Tracker, ct: Conn, pkt: Packet, ctinfo: int, now: float) -> int:
        buf = pkt.buf
        off = pkt.l4off + 8                     # struct tftphdr after the UDP header
        if len(buf) < off + 2:
            return NF_ACCEPT
        opcode = buf[off] << 8 | buf[off + 1]
        if opcode != TFTP_OPCODE_READ and opcode != TFTP_OPCODE_WRITE:
            return NF_ACCEPT
        r = ct.reply
        exp = Expectation(ct, NF_CT_EXPECT_CLASS_DEFAULT, ct.l3num, r[0], r[1], IPPROTO_UDP,
                          None, r[4])
        nat = nf_nat_tftp_hook
        if nat is not None and ct.status & IPS_NAT_MASK:
            return nat(tracker, ct, pkt, exp, now)
        if tracker.expect.related(exp, now) != 0:
            pkt.reason = "nf_ct_tftp: dropping packet: cannot add expectation"
            return NF_DROP
        return NF_ACCEPT
