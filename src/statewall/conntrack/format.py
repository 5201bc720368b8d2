"""Text forms of entries: ``conntrack -L``, ``/proc/net/nf_conntrack``, the 2.4 ``ip_conntrack``
file, ``conntrack -E`` event lines, and JSON.

Owns: the exact byte layout of those listings (libnetfilter_conntrack snprintf_default.c,
nf_conntrack_standalone.c ``ct_seq_show``, 2.4.0 ip_conntrack_standalone.c). Must not know:
how entries change. Checked against this machine's kernel: ``conntrack -L`` prints
``use=1`` and compressed IPv6 addresses; ``/proc`` prints ``zone=0`` and ``use=2`` and IPv6
addresses in full (``%pI6``: eight groups of four hex digits).
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any, Final

from .conn import (
    IPCT_DESTROY,
    IPCT_NEW,
    IPCT_PROTOINFO,
    IPCT_RELATED,
    IPS,
    IPS_ASSURED,
    IPS_SEEN_REPLY,
    Conn,
    Tuple,
)
from .proto.base import L4Tracker
from .proto.registry import PROTO_NAMES

_PORTS: Final = frozenset({6, 17, 33, 132, 136})
_ICMP: Final = frozenset({1, 58})

_addr_cache: dict[bytes, str] = {}
_addr_full_cache: dict[bytes, str] = {}


def addr(a: bytes) -> str:
    """Address as conntrack prints it (IPv6 compressed)."""
    s = _addr_cache.get(a)
    if s is None:
        s = str(ipaddress.ip_address(a))
        if len(_addr_cache) < 65536:
            _addr_cache[a] = s
    return s


def addr_full(a: bytes) -> str:
    """Address as ``%pI4`` / ``%pI6`` print it (IPv6 uncompressed, lower case)."""
    if len(a) == 4:
        return addr(a)
    s = _addr_full_cache.get(a)
    if s is None:
        h = a.hex()
        s = ":".join(h[i:i + 4] for i in range(0, 32, 4))
        if len(_addr_full_cache) < 65536:
            _addr_full_cache[a] = s
    return s


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, "unknown")


def tuple_text(t: Tuple, full: bool = False) -> str:
    f = addr_full if full else addr
    p = t[2]
    s = f"src={f(t[0])} dst={f(t[1])} "
    if p in _PORTS:
        s += f"sport={t[3]} dport={t[4]} "
    elif p in _ICMP:
        s += f"type={t[4] >> 8} code={t[4] & 0xFF} id={t[3]} "
    elif p == 47:
        s += f"srckey=0x{t[3]:x} dstkey=0x{t[4]:x} "
    return s


def remaining(ct: Conn, now: float) -> int:
    """Seconds left, floored, never negative (what the kernel prints)."""
    r = ct.timeout - now
    return max(0, math.floor(r + 1e-9))


def _counters(ct: Conn, dir: int, acct: bool) -> str:
    if not acct:
        return ""
    return f"packets={ct.acct[2 * dir]} bytes={ct.acct[2 * dir + 1]} "


def conntrack_line(ct: Conn, now: float, l4: L4Tracker, acct: bool = False,
                   extended: bool = False, with_id: bool = False) -> str:
    """One ``conntrack -L`` line (no newline)."""
    p = ct.proto
    s = ""
    if extended:
        s += f"{'ipv4' if ct.l3num == 2 else 'ipv6':<8} {ct.l3num} "
    s += f"{proto_name(p):<8} {p} {remaining(ct, now)} "
    st = l4.state_name(ct)
    if st is not None:
        s += st + " "
    s += tuple_text(ct.orig) + _counters(ct, 0, acct)
    if not ct.status & IPS_SEEN_REPLY:
        s += "[UNREPLIED] "
    s += tuple_text(ct.reply) + _counters(ct, 1, acct)
    if ct.status & IPS_ASSURED:
        s += "[ASSURED] "
    s += f"mark={ct.mark} "
    if ct.zone:
        s += f"zone={ct.zone} "
    if ct.helper:
        s += f"helper={ct.helper} "
    if with_id:
        s += f"id={ct.id} "
    s += "use=1"
    return s


def proc_line(ct: Conn, now: float, l4: L4Tracker, acct: bool = False) -> str:
    """One ``/proc/net/nf_conntrack`` line (no newline)."""
    p = ct.proto
    s = f"{'ipv4' if ct.l3num == 2 else 'ipv6':<8} {ct.l3num} {proto_name(p):<8} {p} "
    s += f"{remaining(ct, now)} "
    st = l4.state_name(ct)
    if st is not None:
        s += st + " "
    s += tuple_text(ct.orig, True) + _counters(ct, 0, acct)
    if not ct.status & IPS_SEEN_REPLY:
        s += "[UNREPLIED] "
    s += tuple_text(ct.reply, True) + _counters(ct, 1, acct)
    if ct.status & IPS_ASSURED:
        s += "[ASSURED] "
    s += f"mark={ct.mark} zone={ct.zone} use=2"
    return s


def ip_conntrack_line(ct: Conn, now: float, l4: L4Tracker) -> str:
    """One 2.4.0 ``/proc/net/ip_conntrack`` line, exactly (trailing blank included)."""
    p = ct.proto
    s = f"{proto_name(p):<8} {p} {remaining(ct, now)} "
    st = l4.state_name(ct)
    if st is not None:
        s += st + " "
    s += tuple_text(ct.orig)
    if not ct.status & IPS_SEEN_REPLY:
        s += "[UNREPLIED] "
    s += tuple_text(ct.reply)
    if ct.status & IPS_ASSURED:
        s += "[ASSURED] "
    s += "use=1 "
    return s


EVENT_NAMES: Final = ((IPCT_DESTROY, "[DESTROY]"), (IPCT_NEW | IPCT_RELATED, "[NEW]"))


def event_kind(bits: int) -> str:
    for mask, name in EVENT_NAMES:
        if bits & mask:
            return name
    return "[UPDATE]"


def event_line(bits: int, ct: Conn, now: float, l4: L4Tracker, acct: bool = False) -> str:
    """One ``conntrack -E`` line as ctnetlink + libnetfilter_conntrack print it."""
    kind = event_kind(bits)
    p = ct.proto
    s = f"{kind:>9} {proto_name(p):<8} {p} "
    destroy = kind == "[DESTROY]"
    left = remaining(ct, now)
    if not destroy or left:
        s += f"{left} "      # DESTROY carries the timeout only when killed before expiry
    st = l4.state_name(ct)
    if st is not None and (destroy or bits & (IPCT_PROTOINFO | IPCT_NEW | IPCT_RELATED)):
        s += st + " "
    s += tuple_text(ct.orig) + (_counters(ct, 0, acct) if destroy else "")
    if not ct.status & IPS_SEEN_REPLY:
        s += "[UNREPLIED] "
    s += tuple_text(ct.reply) + (_counters(ct, 1, acct) if destroy else "")
    if ct.status & IPS_ASSURED:
        s += "[ASSURED] "
    if ct.mark:
        s += f"mark={ct.mark} "
    if ct.zone:
        s += f"zone={ct.zone} "
    return s.rstrip()


def as_json(ct: Conn, now: float, l4: L4Tracker) -> dict[str, Any]:
    def tup(t: Tuple) -> dict[str, Any]:
        d: dict[str, Any] = {"src": addr(t[0]), "dst": addr(t[1])}
        if t[2] in _PORTS:
            d["sport"], d["dport"] = t[3], t[4]
        elif t[2] in _ICMP:
            d["type"], d["code"], d["id"] = t[4] >> 8, t[4] & 0xFF, t[3]
        return d
    return {
        "id": ct.id,
        "family": "ipv4" if ct.l3num == 2 else "ipv6",
        "proto": proto_name(ct.proto),
        "protonum": ct.proto,
        "timeout": remaining(ct, now),
        "state": l4.state_name(ct),
        "original": tup(ct.orig) | {"packets": ct.acct[0], "bytes": ct.acct[1]},
        "reply": tup(ct.reply) | {"packets": ct.acct[2], "bytes": ct.acct[3]},
        "status": [f.name for f in IPS if ct.status & f and f.name],
        "mark": ct.mark,
        "zone": ct.zone,
        "helper": ct.helper,
    }
