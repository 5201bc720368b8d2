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
    IPCT_MARK,
    IPCT_NEW,
    IPCT_PROTOINFO,
    IPCT_RELATED,
    IPS,
    IPS_ASSURED,
    IPS_SEEN_REPLY,
    Conn,
    Tuple,
)
from .expect import IPEXP_DESTROY, Expectation
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
                   extended: bool = False, with_id: bool = False, extra: str = "") -> str:
    """One ``conntrack -L`` line (no newline). extra: the timestamp extension's text
    (`` delta-time=N [start=...]``), printed before ``use=``; ``id=`` comes last."""
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
    if extra:
        s += extra[1:] + " "
    if ct.helper:
        s += f"helper={ct.helper} "
    s += f"use={conntrack_use(ct)}"
    if with_id:
        s += f" id={ct.id}"
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
    s += f"mark={ct.mark} zone={ct.zone} use={conntrack_use(ct) + 1}"
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
    if ct.mark or bits & IPCT_MARK:      # ctnetlink_dump_mark: nonzero, or it changed
        s += f"mark={ct.mark} "
    if ct.zone:
        s += f"zone={ct.zone} "
    if ct.helper and not destroy:
        s += f"helper={ct.helper} "
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


# -- expectations and helpers ----------------------------------------------------------------
# ``conntrack -L expect`` / ``-E expect`` (libnetfilter_conntrack expect/snprintf_default.c
# over ctnetlink_exp_dump_expect), ``/proc/net/nf_conntrack_expect``
# (nf_conntrack_expect.c ``exp_seq_show``), 2.4.0's ``EXPECTING:`` lines. Checked against
# this machine's kernel (6.18, conntrack 1.4.7): note that ``conntrack -L expect`` lists only
# IPv4 expectations unless given ``-f ipv6``.

_EXPECT_FLAG_NAMES: Final = ((1, "PERMANENT"), (2, "INACTIVE"), (4, "USERSPACE"))


def conntrack_use(ct: Conn) -> int:
    """The entry's reference count as ``conntrack -L`` shows it (``use=``): 1, plus one for
    every live entry expected from it (``ct->master`` holds a reference). ``/proc`` shows
    one more (the reader's own reference)."""
    h = ct.help
    return 1 + (h.children if h is not None else 0)


def _expect_tuples(exp: Expectation) -> str:
    """The expected tuple, the mask and the master's original tuple, as ctnetlink gives
    them to ``conntrack``: the mask's destination is all ones."""
    p = exp.proto
    n = len(exp.dst)
    ones = b"\xff" * n
    s = tuple_text((exp.src, exp.dst, p, exp.sport, exp.dport, 0))
    s += f"mask-src={addr(exp.smask)} mask-dst={addr(ones)} "
    s += tuple_text((ones, ones, p, exp.sport_mask, 0xFFFF, 0)).split(" ", 2)[2]
    m = exp.master.orig
    s += f"master-src={addr(m[0])} master-dst={addr(m[1])} "
    s += tuple_text(m).split(" ", 2)[2]
    return s


def _expect_tail(exp: Expectation) -> str:
    s = ""                  # (no zone=: this kernel + conntrack 1.4.7 show none, even for 5)
    flags = [name for bit, name in _EXPECT_FLAG_NAMES if exp.flags & bit]
    if flags:
        s += ",".join(flags) + " "
    s += f"class={exp.cls} "
    mh = exp.master.help
    if mh is not None and mh.helper is not None:
        s += f"helper={mh.helper.name}"
    return s.rstrip()


def expect_line(exp: Expectation, now: float) -> str:
    """One ``conntrack -L expect`` line (no newline)."""
    return f"{exp.remaining(now)} proto={exp.proto} " + _expect_tuples(exp) + _expect_tail(exp)


def expect_event_line(bits: int, exp: Expectation, now: float) -> str:
    """One ``conntrack -E expect`` line: ``[NEW]`` with the full timeout, ``[DESTROY]``
    with what was left (0 when it expired)."""
    kind = "[DESTROY]" if bits & IPEXP_DESTROY else "[NEW]"
    return f"{kind:>9} " + expect_line(exp, now)


def expect_text(exp: Expectation) -> str:
    """An expectation without its timeout (for traces: which one an entry came from)."""
    return f"proto={exp.proto} " + _expect_tuples(exp) + _expect_tail(exp)


def expect_origin(ct: Conn) -> str | None:
    """The expectation ``ct`` was created from, or None."""
    h = ct.help
    if h is None or h.origin is None:
        return None
    return expect_text(h.origin)


def expect_proc_line(exp: Expectation, now: float) -> str:
    """One ``/proc/net/nf_conntrack_expect`` line (no newline)."""
    left = "- " if exp.timeout is None else f"{exp.remaining(now)} "
    s = left + f"l3proto = {exp.l3num} proto={exp.proto} "
    s += tuple_text((exp.src, exp.dst, exp.proto, exp.sport, exp.dport, 0), True)
    flags = [name for bit, name in _EXPECT_FLAG_NAMES if exp.flags & bit]
    s += ",".join(flags)
    mh = exp.master.help
    if mh is not None and mh.helper is not None:
        s += (" " if exp.flags else "") + mh.helper.name
        pname = mh.helper.policy[exp.cls].name
        if pname:
            s += "/" + pname
    return s


def ip_conntrack_expect_line(exp: Expectation) -> str:
    """2.4.0 ``/proc/net/ip_conntrack``: one ``EXPECTING:`` line after the entries
    (trailing blank included, no newline)."""
    return f"EXPECTING: proto={exp.proto} " + tuple_text(
        (exp.src, exp.dst, exp.proto, exp.sport, exp.dport, 0))


def expect_as_json(exp: Expectation, now: float) -> dict[str, Any]:
    m = exp.master
    mh = m.help
    return {
        "id": exp.id,
        "timeout": exp.remaining(now) if exp.timeout is not None else None,
        "family": "ipv4" if exp.l3num == 2 else "ipv6",
        "proto": proto_name(exp.proto),
        "protonum": exp.proto,
        "src": addr(exp.src), "src_mask": addr(exp.smask),
        "sport": exp.sport, "sport_mask": exp.sport_mask,
        "dst": addr(exp.dst), "dport": exp.dport,
        "master": {"id": m.id, "src": addr(m.orig[0]), "dst": addr(m.orig[1]),
                   "sport": m.orig[3], "dport": m.orig[4]},
        "class": exp.cls,
        "flags": [name for bit, name in _EXPECT_FLAG_NAMES if exp.flags & bit],
        "helper": mh.helper.name if mh is not None and mh.helper is not None else None,
        "zone": exp.zone,
    }
