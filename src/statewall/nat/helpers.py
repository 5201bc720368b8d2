"""Helpers under NAT: the FTP command rewritten, expectations for the mapped tuple, TFTP.

Owns: what the kernel's ``nf_nat_ftp`` and ``nf_nat_tftp`` do when the conntrack helper of
a NATed entry found a command - the expectation gets the port the data connection will
really arrive on (the announced port if free, else another one), remembers the real port
and direction and is told to NAT the expected connection like its master
(``follow_master``); the FTP payload is rewritten to the mapped address and port
(``PORT``/``227`` as ``a,b,c,d,p1,p2``, ``EPRT`` as ``|1|a.b.c.d|port|`` or
``|2|<8 groups of 4 hex digits>|port|``, ``229`` as ``|||port|``) with the length, IP
checksum, TCP checksum (left to be computed in full, as CHECKSUM_PARTIAL) and, when the
length changed, the sequence adjustment for the rest of the connection.
Must not know: how commands are found (``conntrack.helpers.ftp`` parses, this module only
asks its number parsers where the match lies), rules, the firewall.
Follows net/netfilter/nf_nat_ftp.c, nf_nat_tftp.c, nf_nat_helper.c
(``__nf_nat_mangle_tcp_packet``, ``mangle_contents``, ``nf_nat_follow_master``,
``nf_nat_exp_find_port``).

The conntrack helpers call in through ``nf_nat_ftp_hook`` / ``nf_nat_tftp_hook`` (set when
this module is imported, like the kernel's RCU hook pointers), and only for entries with
IPS_SRC_NAT or IPS_DST_NAT. Port choice when the announced port is taken: like the
kernel's ``get_random_u32_below`` but deterministic (a hash of the master's tuple and the
attempt, see ``core``).
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING, Any, Callable, Final

from ..conntrack.expect import EBUSY, Expectation
from ..conntrack.helpers import ftp as ct_ftp
from ..conntrack.helpers import tftp as ct_tftp
from ..packet.decode import decode_ip
from ..packet.packet import ParseError
from .core import (NF_NAT_MANIP_DST, NF_NAT_MANIP_SRC, NF_NAT_RANGE_MAP_IPS,
                   NF_NAT_RANGE_PROTO_SPECIFIED, NatCore, NatRange, ext)
from .manip import ipv4_header_checksum, l4_full_checksum
from .seqadj import seqadj_set

if TYPE_CHECKING:
    from ..conntrack.conn import Conn, Tuple
    from ..conntrack.core import Tracker
    from ..packet.packet import Packet

NF_ACCEPT: Final = 1
NF_DROP: Final = 0

# enum nf_ct_ftp_type, by the keyword ``find_command`` reports
FTP_TYPES: Final = {"PORT": 0, "227 ": 1, "EPRT": 2, "229 ": 3}
NF_CT_FTP_PORT: Final = 0
NF_CT_FTP_PASV: Final = 1
NF_CT_FTP_EPRT: Final = 2
NF_CT_FTP_EPSV: Final = 3
_SKIP: Final = {"PORT": 0x20, "EPRT": 0x20, "227 ": 0, "229 ": 0x28}

ExpectFn = Callable[[NatCore, "Conn", "NatExpectation", float], None]


class NatExpectation(Expectation):
    """An expectation NAT has taken over: ``saved_proto`` (the port the data connection
    must really reach), ``dir`` (the direction it comes from, of the master), ``expectfn``
    (run on the expected connection's first packet: ``follow_master``)."""

    __slots__ = ("saved_proto", "dir", "expectfn")

    saved_proto: int
    dir: int
    expectfn: ExpectFn | None

    @classmethod
    def of(cls, exp: Expectation) -> NatExpectation:
        new = cls.__new__(cls)
        for name in Expectation.__slots__:
            setattr(new, name, getattr(exp, name))
        new.saved_proto = 0
        new.dir = 0
        new.expectfn = None
        return new


def follow_master(nat: NatCore, ct: Conn, exp: NatExpectation, now: float) -> None:
    """``nf_nat_follow_master``: the source as the master sends it, the destination the
    real address and port behind the mapping."""
    m = ct.master
    assert m is not None
    t = m.reply if exp.dir == 0 else m.orig          # master->tuplehash[!exp->dir]
    nat.setup_info(ct, NatRange(NF_NAT_RANGE_MAP_IPS, t[1], t[1]), NF_NAT_MANIP_SRC, now)
    nat.setup_info(ct, NatRange(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED,
                                t[0], t[0], exp.saved_proto, exp.saved_proto),
                   NF_NAT_MANIP_DST, now)


def _rand_below(t: Tuple, salt: int, n: int) -> int:
    """``get_random_u32_below(n)``, deterministic (blake2b of the tuple and the attempt)."""
    h = hashlib.blake2b(t[0] + t[1] + struct.pack("!BHHH", t[2], t[3], t[4], salt & 0xFFFF),
                        digest_size=4, person=b"statewall-exp")
    return (int.from_bytes(h.digest(), "big") * n) >> 32 if n > 0 else 0


def exp_find_port(tracker: Tracker, exp: NatExpectation, port: int, now: float) -> int:
    """``nf_nat_exp_find_port``: register ``exp`` on ``port``, else on other ports above
    it while the table says -EBUSY (at most 128 tries). 0: none."""
    lo = port
    span = 65535 - port
    attempts = min(span, 128)
    n = 0
    while True:
        exp.dport = port & 0xFFFF
        res = tracker.expect.related(exp, now)
        if res == 0:
            return port
        attempts -= 1
        if res != EBUSY or attempts < 0:
            break
        n += 1
        port = lo + _rand_below(exp.master.orig, n, span)
    return 0


def refresh(pkt: Packet, buf: bytes) -> None:
    """Point ``pkt`` at rewritten bytes whose layout changed (length, payload)."""
    try:
        p = decode_ip(buf)
    except ParseError:
        pkt.buf = buf
        pkt.l4len = len(buf) - pkt.l4off
        return
    for name in ("buf", "src", "dst", "sport", "dport", "seq", "ack", "flags", "win",
                 "doff", "tcp_optoff", "tcp_optlen", "l4len", "payload_off", "l4off", "ttl",
                 "ipid", "tos", "l4err"):
        setattr(pkt, name, getattr(p, name))


def mangle_tcp_packet(ct: Conn, pkt: Packet, dir: int, matchoff: int, matchlen: int,
                      rep: bytes) -> bool:
    """``nf_nat_mangle_tcp_packet``: replace ``matchlen`` payload bytes at ``matchoff`` by
    ``rep``; fix the IP length and header checksum; the TCP checksum is computed in full
    (the kernel leaves it CHECKSUM_PARTIAL); record the sequence change."""
    b = bytearray(pkt.buf)
    if len(b) + len(rep) - matchlen > 65535:
        return False                               # enlarge_skb
    dataoff = pkt.l4off + (b[pkt.l4off + 12] >> 4) * 4
    start = dataoff + matchoff
    b[start:start + matchlen] = rep
    v6 = pkt.l3num == 10
    if v6:
        n = len(b) - 40
        b[4], b[5] = n >> 8, n & 0xFF
    else:
        b[2], b[3] = len(b) >> 8, len(b) & 0xFF
        ipv4_header_checksum(b)
    l4_full_checksum(b, pkt.l4off, 6, v6)
    if len(rep) != matchlen:
        seqadj_set(ct, dir, int.from_bytes(b[pkt.l4off + 4:pkt.l4off + 8], "big"),
                   len(rep) - matchlen)
    refresh(pkt, bytes(b))
    ext(ct).partial = pkt
    return True


def ftp_match(d: bytes, keyword: str, l3num: int) -> tuple[int, int]:
    """Where ``find_pattern`` put the numbers of a matched command: (offset in the
    payload, length) - what ``nf_nat_ftp`` replaces."""
    n = len(d)
    i = len(keyword)
    skip = _SKIP[keyword]
    if skip:
        while d[i] != skip:
            i += 1
        i += 1
    if keyword == "PORT":
        length = ct_ftp.try_rfc959(d, i, n, 0x0D)[0]
    elif keyword == "EPRT":
        length = ct_ftp.try_eprt(d, i, n, l3num)[0]
    elif keyword == "229 ":
        length = ct_ftp.try_epsv_response(d, i, n, 0x29)[0]
    else:                                           # 227: from the first digit
        while i < n and not 48 <= d[i] <= 57:
            i += 1
        length = ct_ftp.try_rfc959(d, i, n, 0)[0]
    return i, length


def ftp_fmt_cmd(ftype: int, l3num: int, addr: bytes, port: int) -> bytes:
    """``nf_nat_ftp_fmt_cmd``."""
    if ftype == NF_CT_FTP_PORT or ftype == NF_CT_FTP_PASV:
        a = addr[:4]
        return f"{a[0]},{a[1]},{a[2]},{a[3]},{port >> 8},{port & 0xFF}".encode()
    if ftype == NF_CT_FTP_EPRT:
        if l3num == 2:
            return f"|1|{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}|{port}|".encode()
        groups = ":".join(f"{addr[i] << 8 | addr[i + 1]:04x}" for i in range(0, 16, 2))
        return f"|2|{groups}|{port}|".encode()
    return f"|||{port}|".encode()


def nf_nat_ftp(tracker: Tracker, ct: Conn, pkt: Packet, dir: int, keyword: str,
               exp: Expectation, now: float) -> int:
    """``nf_nat_ftp``: register the expectation for the mapped tuple, rewrite the
    command. Returns NF_ACCEPT or NF_DROP (``pkt.reason`` says why)."""
    ftype = FTP_TYPES[keyword]
    d = pkt.buf[pkt.payload_off:]
    matchoff, matchlen = ftp_match(d, keyword, ct.l3num)
    newaddr = (ct.reply if dir == 0 else ct.orig)[1]   # tuplehash[!dir].dst
    nexp = NatExpectation.of(exp)
    nexp.saved_proto = exp.dport
    nexp.dir = 1 - dir
    nexp.expectfn = follow_master
    port = exp_find_port(tracker, nexp, exp.dport, now)
    if port == 0:
        pkt.reason = "nf_ct_ftp: all ports in use"
        return NF_DROP
    rep = ftp_fmt_cmd(ftype, ct.l3num, newaddr, port)
    if not mangle_tcp_packet(ct, pkt, dir, matchoff, matchlen, rep):
        pkt.reason = "nf_ct_ftp: cannot mangle packet"
        tracker.expect.remove(nexp, now)
        return NF_DROP
    return NF_ACCEPT


def nf_nat_tftp(tracker: Tracker, ct: Conn, pkt: Packet, exp: Expectation, now: float) -> int:
    """``nf_nat_tftp`` ``help``: the server's answer is NATed like the request, back to
    the client's real port."""
    nexp = NatExpectation.of(exp)
    nexp.saved_proto = ct.orig[3]
    nexp.dir = 1
    nexp.expectfn = follow_master
    if tracker.expect.related(nexp, now) != 0:
        pkt.reason = "nf_ct_tftp: cannot add expectation"
        return NF_DROP
    return NF_ACCEPT


def run_expectfn(nat: NatCore, ct: Conn, now: float) -> bool:
    """``init_conntrack``'s ``exp->expectfn(ct, exp)`` for an entry made from a NAT
    expectation. True when it ran."""
    h = ct.help
    origin: Any = h.origin if h is not None else None
    if isinstance(origin, NatExpectation) and origin.expectfn is not None:
        origin.expectfn(nat, ct, origin, now)
        return True
    return False


def install() -> None:
    """Set the conntrack helpers' NAT hooks (done on import)."""
    ct_ftp.nf_nat_ftp_hook = nf_nat_ftp
    ct_tftp.nf_nat_tftp_hook = nf_nat_tftp


install()
