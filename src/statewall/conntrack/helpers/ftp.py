"""The FTP helper: PORT/EPRT commands and 227/229 replies announce the data connection.

Owns: finding the commands in an FTP control connection's segments exactly as the kernel
does (only a segment that starts right after a line end the helper saw, case-insensitive
keyword at the segment start, the kernel's number parsers with their C integer widths,
``in6_pton`` for EPRT), the address check (``loose``), the expectation it registers, and the
drops for partial or malformed commands. Must not know: NAT (``nf_nat_ftp`` rewrites the
payload elsewhere: a command of a NATed entry goes to ``nf_nat_ftp_hook``), rules, output
formats.
Follows net/netfilter/nf_conntrack_ftp.c of Linux 6.x (``help``, ``find_pattern``,
``try_number``, ``try_rfc959``, ``try_rfc1123``, ``try_eprt``, ``try_epsv_response``,
``get_port``, ``find_nl_seq``, ``update_nl_seq``), net/core/utils.c (``in6_pton``,
``in4_pton``) and, for ``linux-2.4``, ip_conntrack_ftp.c of Linux 2.4.0 (``Ftp24``).

Line tracking (modern): per direction at most two remembered "sequence number right after a
segment that ended in ``\\n``". A segment is parsed only when its sequence number is one of
them, so the first segment each way (nothing remembered yet) is never parsed, and a command
that starts in the middle of a segment or after a segment not ending in ``\\n`` is not
seen. Every segment ending in ``\\n`` offers ``seq + len``: kept if new, and when two are
stored it replaces the older one only if it lies after it.
Results of a parsed segment: no keyword -> accepted; keyword but the rest incomplete or
malformed ("partial") -> the packet is DROPPED (the sender retransmits it whole);
a complete command -> an expectation from the peer (any source port) to the announced port,
when the announced address is the sender's own (else nothing, unless ``loose``); if the
expectation cannot be registered the packet is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

from ...packet.checksum import l4_checksum_ok
from ..conn import IP_CT_ESTABLISHED, IP_CT_ESTABLISHED_REPLY
from ..expect import NF_CT_EXPECT_CLASS_DEFAULT, Expectation, ExpectPolicy
from ..proto.base import NF_ACCEPT, NF_DROP

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker

AF_INET: Final = 2
AF_INET6: Final = 10
IPPROTO_TCP: Final = 6
FTP_PORT: Final = 21
M32: Final = 0xFFFFFFFF
NUM_SEQ_TO_REMEMBER: Final = 2

# policy: one expectation per control connection, 5 minutes (ftp_exp_policy)
FTP_POLICY: Final[tuple[ExpectPolicy, ...]] = (ExpectPolicy(max_expected=1, timeout=300),)

# command kinds (enum nf_ct_ftp_type)
NF_CT_FTP_PORT: Final = 0
NF_CT_FTP_PASV: Final = 1
NF_CT_FTP_EPRT: Final = 2
NF_CT_FTP_EPSV: Final = 3

_DIGITS: Final = range(48, 58)
IPS_NAT_MASK: Final = 0x30          # IPS_SRC_NAT | IPS_DST_NAT

# ``nf_nat_ftp_hook``: set by statewall.nat.helpers when NAT is loaded (the kernel's RCU
# hook pointer); called for a command of a NATed entry instead of registering the
# expectation: (tracker, ct, pkt, dir, keyword, expectation, now) -> verdict
NatFtpHook = Callable[["Tracker", "Conn", "Packet", int, str, Expectation, float], int]
nf_nat_ftp_hook: NatFtpHook | None = None


def _after(a: int, b: int) -> bool:
    """``after(a, b)``: a is later than b in sequence space."""
    return ((b - a) & M32) >= 0x80000000


def _before(a: int, b: int) -> bool:
    return ((a - b) & M32) >= 0x80000000


# -- the kernel's number parsers -----------------------------------------------------------
# Each takes the payload, the index where the numbers start and the payload length, and
# returns (length, address bytes or None, port); length 0 means "no number" (a partial
# match for the caller). Numbers are C u32 (wrap), ports u16.

def try_number(d: bytes, i: int, n: int, count: int, sep: int, term: int
               ) -> tuple[int, list[int]]:
    """``try_number``: ``count`` decimal numbers separated by ``sep`` and ended by ``term``
    (0: any other character). Returns (offset of the terminator from ``i``, numbers)."""
    arr = [0] * count
    k = 0
    pos = i
    while pos < n and k < count:
        c = d[pos]
        if 48 <= c <= 57:
            arr[k] = (arr[k] * 10 + c - 48) & M32
        elif c == sep:
            k += 1
        else:
            if (c == term or not term) and k == count - 1:
                return pos - i, arr
            return 0, arr
        pos += 1
    return 0, arr


def _ipv4(a: list[int]) -> bytes:
    return ((a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3]) & M32).to_bytes(4, "big")


def try_rfc959(d: bytes, i: int, n: int, term: int) -> tuple[int, bytes | None, int]:
    """``try_rfc959``: ``h1,h2,h3,h4,p1,p2`` (PORT, 227)."""
    length, a = try_number(d, i, n, 6, 44, term)
    if length == 0:
        return 0, None, 0
    return length, _ipv4(a), (a[4] << 8 | a[5]) & 0xFFFF


def try_rfc1123(d: bytes, i: int, n: int, term: int) -> tuple[int, bytes | None, int]:
    """``try_rfc1123``: the 227 reply's numbers start at its first digit (RFC 1123 4.1.2.6)."""
    while i < n and d[i] not in _DIGITS:
        i += 1
    if i == n:
        return 0, None, 0
    return try_rfc959(d, i, n, 0)


def get_port(d: bytes, i: int, n: int, delim: int) -> tuple[int, int]:
    """``get_port``: a u16 (wrapping) up to ``delim``; 0 is refused. Returns (index after
    the delimiter, port) or (0, 0)."""
    port = 0
    while i < n:
        c = d[i]
        if c == delim:
            if port == 0:
                break
            return i + 1, port
        if 48 <= c <= 57:
            port = (port * 10 + c - 48) & 0xFFFF
        else:
            break
        i += 1
    return 0, 0


def _bad_delim(c: int) -> bool:
    return 48 <= c <= 57 or c < 33 or c > 126


def try_eprt(d: bytes, i: int, n: int, l3num: int) -> tuple[int, bytes | None, int]:
    """``try_eprt``: ``<d>1<d>a.b.c.d<d>port<d>`` or ``<d>2<d>ipv6<d>port<d>``; the
    protocol digit must be the control connection's family."""
    if n - i <= 3:
        return 0, None, 0
    delim = d[i]
    if _bad_delim(delim) or d[i + 2] != delim:
        return 0, None, 0
    proto = d[i + 1]
    if (l3num == AF_INET and proto != 0x31) or (l3num == AF_INET6 and proto != 0x32):
        return 0, None, 0
    addr: bytes | None
    if proto == 0x31:
        length, a = try_number(d, i + 3, n, 4, 46, delim)
        addr = _ipv4(a) if length else None
    else:
        length, addr = in6_pton(d, i + 3, min(n, i + 3 + 0xFFFF), delim)
    if length == 0 or addr is None:
        return 0, None, 0
    end, port = get_port(d, i + 3 + length + 1, n, delim)
    if end == 0:
        return 0, None, 0
    return end - i, addr, port


def try_epsv_response(d: bytes, i: int, n: int, term: int) -> tuple[int, bytes | None, int]:
    """``try_epsv_response``: ``<d><d><d>port<d>`` (229); the address is the server's."""
    if n - i <= 3:
        return 0, None, 0
    delim = d[i]
    if _bad_delim(delim) or d[i + 1] != delim or d[i + 2] != delim:
        return 0, None, 0
    end, port = get_port(d, i + 3, n, delim)
    if end == 0:
        return 0, None, 0
    return end - i, None, port


# in6_pton / in4_pton state bits (net/core/utils.c)
_XDIGIT: Final = 0x00010000
_DIGIT: Final = 0x00020000
_COLON_MASK: Final = 0x00700000
_COLON_1: Final = 0x00100000
_COLON_2: Final = 0x00200000
_COLON_1_2: Final = 0x00400000
_DOT: Final = 0x00800000
_DELIM: Final = 0x10000000
_NULL: Final = 0x20000000
_UNKNOWN: Final = 0x40000000


def _xdigit2bin(c: int, delim: int) -> int:
    if c == delim or c == 0:
        return _DELIM
    if c == 0x3A:
        return _COLON_MASK
    if c == 0x2E:
        return _DOT
    if 48 <= c <= 57:
        return (c - 48) | _XDIGIT | _DIGIT
    if 97 <= c <= 102:
        return (c - 87) | _XDIGIT
    if 65 <= c <= 70:
        return (c - 55) | _XDIGIT
    return _UNKNOWN


def in4_pton(d: bytes, s: int, end: int, delim: int) -> tuple[bool, int, bytes]:
    """``in4_pton``: dotted quad up to ``delim`` (or the end). Returns (ok, index of the
    character where parsing stopped, 4 bytes). (In C the digit's class bits make ``w``
    non-zero for an octet "0"; ``digits`` plays that part here.)"""
    out = bytearray()
    w = 0
    digits = False
    i = 0
    while True:
        c = _xdigit2bin(d[s] if s < end else 0, delim)
        if not c & (_DIGIT | _DOT | _DELIM | _COLON_MASK):
            return False, s, b""
        if c & (_DOT | _DELIM | _COLON_MASK):
            if not digits:
                return False, s, b""
            out.append(w & 0xFF)
            w = 0
            digits = False
            i += 1
            if c & (_DELIM | _COLON_MASK):
                if i != 4:
                    return False, s, b""
                break
        else:
            w = w * 10 + (c & 0xFF)
            digits = True
            if w > 255:
                return False, s, b""
        if i >= 4:
            return False, s, b""
        s += 1
    return True, s, bytes(out)


def in6_pton(d: bytes, start: int, end: int, delim: int) -> tuple[int, bytes | None]:
    """``in6_pton`` as ``get_ipv6_addr`` calls it: the address text from ``start`` up to
    ``delim`` (or the end of the payload). Returns (its length, 16 bytes) or (0, None)."""
    dbuf = bytearray(16)
    s = start
    tok = -1
    d_i = 0                # write index into dbuf
    dc = -1                # where "::" was
    state = _COLON_1_2 | _XDIGIT | _NULL
    w = 0
    while True:
        c = _xdigit2bin(d[s] if s < end else 0, delim)
        if not c & state:
            return 0, None
        if c & (_DELIM | _COLON_MASK):
            if not state & _NULL:
                dbuf[d_i] = (w >> 8) & 0xFF
                dbuf[d_i + 1] = w & 0xFF
                d_i += 2
            w = 0
            if c & _DELIM:
                break
            cm = state & _COLON_MASK
            if cm == _COLON_2:
                dc = d_i
                state = _XDIGIT | _DELIM
                if dc >= 16:
                    state |= _NULL
            elif cm == _COLON_1 | _COLON_1_2:
                state = _XDIGIT | _COLON_2
            elif cm == _COLON_1:
                state = _XDIGIT
            elif cm == _COLON_1_2:
                state = _COLON_2
            else:
                state = 0
            tok = s + 1
        elif c & _DOT:
            ok, s, v4 = in4_pton(d, tok if tok >= 0 else s, end, delim)
            if not ok:
                return 0, None
            dbuf[d_i:d_i + 4] = v4
            d_i += 4
            break
        else:
            w = (w << 4) | (c & 0xFF)
            state = _COLON_1 | _DELIM
            if not w & 0xF000:
                state |= _XDIGIT
            if dc < 0 and d_i + 2 < 16:
                state |= _COLON_1_2
                state &= ~_DELIM
            if d_i + 2 >= 16:
                state &= ~(_COLON_1 | _COLON_1_2)
        # cont:
        if (dc >= 0 and d_i + 4 < 16) or d_i + 4 == 16:
            state |= _DOT
        if d_i >= 16:
            state &= ~(_XDIGIT | _COLON_MASK)
        s += 1
    if dc >= 0:
        # move the words after "::" to the end, zeros in between
        out = bytearray(16)
        tail = dbuf[dc:d_i]
        out[:dc] = dbuf[:dc]
        out[16 - len(tail):] = tail
        addr = bytes(out)
    else:
        addr = bytes(dbuf)
    if s - start <= 0:
        return 0, None
    return s - start, addr


# -- finding a command ---------------------------------------------------------------------
# The parsers as find_pattern calls them: (payload, start, length, family) -> result, with
# each keyword's terminator built in (PORT/EPRT: '\r', 227: any character, 229: ')').
GetNum = Callable[[bytes, int, int, int], "tuple[int, bytes | None, int]"]


def _port(d: bytes, i: int, n: int, l3num: int) -> tuple[int, bytes | None, int]:
    return try_rfc959(d, i, n, 0x0D)


def _eprt(d: bytes, i: int, n: int, l3num: int) -> tuple[int, bytes | None, int]:
    return try_eprt(d, i, n, l3num)


def _pasv(d: bytes, i: int, n: int, l3num: int) -> tuple[int, bytes | None, int]:
    return try_rfc1123(d, i, n, 0)


def _epsv(d: bytes, i: int, n: int, l3num: int) -> tuple[int, bytes | None, int]:
    return try_epsv_response(d, i, n, 0x29)


# per direction, in order: (keyword as lower case, its name, skip-to character or 0, parser)
_SEARCH: Final[tuple[tuple[tuple[bytes, str, int, GetNum], ...], ...]] = (
    ((b"port", "PORT", 0x20, _port), (b"eprt", "EPRT", 0x20, _eprt)),
    ((b"227 ", "227 ", 0, _pasv), (b"229 ", "229 ", 0x28, _epsv)),
)


def find_pattern(d: bytes, n: int, pattern: bytes, skip: int, getnum: GetNum, l3num: int
                 ) -> tuple[int, bytes | None, int]:
    """``find_pattern``: 1 match, 0 no keyword, -1 partial. With the address (None: not
    in the command) and port of a match."""
    plen = len(pattern)
    if n <= plen:
        # a short segment that is a prefix of the keyword is a partial command
        return (-1 if d[:n].lower() == pattern[:n] else 0), None, 0
    if d[:plen].lower() != pattern:
        return 0, None, 0
    i = plen
    if skip:
        while d[i] != skip:
            if i == n - 1:
                return -1, None, 0
            i += 1
        i += 1
    length, addr, port = getnum(d, i, n, l3num)
    if not length:
        return -1, None, 0
    return 1, addr, port


def find_command(d: bytes, dir: int, l3num: int) -> tuple[int, str, bytes | None, int]:
    """Try the direction's two keywords in order (client: PORT, EPRT; server: 227, 229).
    Returns (found as ``find_pattern``, keyword, address or None, port)."""
    n = len(d)
    found = 0
    name = ""
    addr: bytes | None = None
    port = 0
    for pattern, name, skip, getnum in _SEARCH[dir]:
        found, addr, port = find_pattern(d, n, pattern, skip, getnum, l3num)
        if found:
            break
    return found, name, addr, port


def update_nl_seq(lst: list[int], nl_seq: int) -> None:
    """``update_nl_seq``: remember ``nl_seq`` (at most two; replace the older only by a
    later one)."""
    if nl_seq in lst:
        return
    if len(lst) < NUM_SEQ_TO_REMEMBER:
        lst.append(nl_seq)
    else:
        oldest = 0 if _before(lst[0], lst[1]) else 1
        if _after(nl_seq, lst[oldest]):
            lst[oldest] = nl_seq


class Ftp:
    """The current kernel's FTP helper for one family and port."""

    __slots__ = ("name", "l3num", "proto", "port", "policy", "loose")

    def __init__(self, name: str, l3num: int, port: int = FTP_PORT, loose: int = 0) -> None:
        self.name = name
        self.l3num = l3num
        self.proto = IPPROTO_TCP
        self.port = port
        self.policy = FTP_POLICY
        self.loose = loose

    def new_data(self) -> tuple[list[int], list[int]]:
        """``struct nf_ct_ftp_master``: seq_aft_nl per direction."""
        return ([], [])

    def help(self, tracker: Tracker, ct: Conn, pkt: Packet, ctinfo: int, now: float) -> int:
        # until there has been traffic both ways, don't look in packets
        if ctinfo != IP_CT_ESTABLISHED and ctinfo != IP_CT_ESTABLISHED_REPLY:
            return NF_ACCEPT
        buf = pkt.buf
        start = pkt.payload_off
        n = len(buf)
        if start >= n:
            return NF_ACCEPT                 # no data
        d = buf[start:n]
        dlen = n - start
        dir = 0 if ctinfo == IP_CT_ESTABLISHED else 1
        assert ct.help is not None
        nl: list[int] = ct.help.data[dir]
        seq = pkt.seq
        ret = NF_ACCEPT
        if seq in nl:
            ret = self._parse(tracker, ct, pkt, d, dir, now)
            if ret < 0:                      # partial: dropped, line tracking untouched
                return NF_DROP
        if d[-1] == 0x0A:
            update_nl_seq(nl, (seq + dlen) & M32)
        return ret

    def _parse(self, tracker: Tracker, ct: Conn, pkt: Packet, d: bytes, dir: int,
               now: float) -> int:
        """The command in a segment that starts a line: -1 partial (drop), else verdict."""
        found, name, addr, port = find_command(d, dir, ct.l3num)
        if found < 0:
            pkt.reason = f"nf_ct_ftp: dropping packet: partial matching of `{name}'"
            return -1
        if found == 0:
            return NF_ACCEPT
        mine = ct.orig if dir == 0 else ct.reply       # tuplehash[dir]
        peer = ct.reply if dir == 0 else ct.orig       # tuplehash[!dir]
        own = mine[0]
        # the command's address in a 16-byte union initialised with the sender's own
        # address: PORT/227 overwrite its first 4 bytes (even on IPv6), EPRT all of it
        cmd = own if addr is None else addr + own[len(addr):]
        daddr = peer[1]
        if cmd != own:
            # another host (a third party, or the firewall): only with loose=1
            if not self.loose:
                return NF_ACCEPT
            daddr = cmd
        exp = Expectation(ct, NF_CT_EXPECT_CLASS_DEFAULT, ct.l3num, peer[0], daddr,
                          IPPROTO_TCP, None, port)
        # NAT may rewrite the command and register the (changed) expectation itself
        nat = nf_nat_ftp_hook
        if nat is not None and ct.status & IPS_NAT_MASK:
            return nat(tracker, ct, pkt, dir, name, exp, now)
        if tracker.expect.related(exp, now) != 0:
            pkt.reason = "nf_ct_ftp: dropping packet: cannot add expectation"
            return NF_DROP
        return NF_ACCEPT


# -- Linux 2.4.0 ---------------------------------------------------------------------------
_SEARCH_24: Final = ((b"port ", 0x0D), (b"227 entering passive mode (", 0x29))


def try_number_24(d: bytes, i: int, n: int, term: int) -> tuple[int, list[int]]:
    """2.4.0 ``try_number``: like the modern one but without a bound on the count (the C
    code writes past its 6-element array; statewall ignores numbers beyond the sixth)."""
    arr = [0] * 6
    k = 0
    pos = i
    while pos < n:
        c = d[pos]
        if 48 <= c <= 57:
            if k < 6:
                arr[k] = (arr[k] * 10 + c - 48) & M32
        elif c == 44:
            k += 1
        else:
            if c == term and k == 5:
                return pos - i, arr
            return 0, arr
        pos += 1
    return 0, arr


class Ftp24:
    """Linux 2.4.0 ``ip_conntrack_ftp``: "PORT " and "227 Entering Passive Mode (" only,
    one remembered line end per direction, the TCP checksum verified first, an expectation
    to the announced address even when it is not the sender's, one per master."""

    __slots__ = ("name", "l3num", "proto", "port", "policy")

    def __init__(self, port: int = FTP_PORT) -> None:
        self.name = "ftp" if port == FTP_PORT else f"ftp-{port}"
        self.l3num = AF_INET
        self.proto = IPPROTO_TCP
        self.port = port
        self.policy: tuple[ExpectPolicy, ...] = (ExpectPolicy(max_expected=1, timeout=0),)

    def new_data(self) -> list[int | None]:
        """``struct ip_ct_ftp``: seq_aft_nl (None: not set) per direction."""
        return [None, None]

    def help(self, tracker: Tracker, ct: Conn, pkt: Packet, ctinfo: int, now: float) -> int:
        if ctinfo != IP_CT_ESTABLISHED and ctinfo != IP_CT_ESTABLISHED_REPLY:
            return NF_ACCEPT
        buf = pkt.buf
        if not l4_checksum_ok(buf, pkt.l4off, pkt.src, pkt.dst, IPPROTO_TCP):
            return NF_ACCEPT                 # "Checksum invalid?  Ignore."
        start = pkt.payload_off
        n = len(buf)
        d = buf[start:n]
        dlen = n - start
        dir = 0 if ctinfo == IP_CT_ESTABLISHED else 1
        assert ct.help is not None
        state: list[int | None] = ct.help.data
        old = state[dir]
        seq = pkt.seq
        if dlen > 0 and d[-1] == 0x0A:
            nxt = (seq + dlen) & M32
            if old is None or _after(nxt, old):
                state[dir] = nxt
        if old is None or seq != old:
            return NF_ACCEPT
        pattern, term = _SEARCH_24[dir]
        plen = len(pattern)
        if dlen == 0:
            return NF_ACCEPT
        if dlen < plen:
            if d.lower() == pattern[:dlen]:
                pkt.reason = f"conntrack_ftp: partial {seq}+{dlen}"
                return NF_DROP
            return NF_ACCEPT
        if d[:plen].lower() != pattern:
            return NF_ACCEPT
        length, a = try_number_24(d, plen, dlen, term)
        if not length:
            pkt.reason = f"conntrack_ftp: partial {seq}+{dlen}"
            return NF_DROP
        peer = ct.reply if dir == 0 else ct.orig
        exp = Expectation(ct, NF_CT_EXPECT_CLASS_DEFAULT, AF_INET, peer[0], _ipv4(a),
                          IPPROTO_TCP, None, (a[4] << 8 | a[5]) & 0xFFFF)
        tracker.expect.related_24(exp, now)      # "Ignore failure; should only happen with NAT"
        return NF_ACCEPT
