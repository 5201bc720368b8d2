"""conntrack-tools' other output forms: ``-o xml``, ``-o ktimestamp`` / ``delta-time``, and
the ``[USERSPACE] portid=N`` tail of events a control command caused.

Owns: the XML of one entry (``<flow>`` with the original/reply/independent ``<meta>``
blocks, in libnetfilter_conntrack 1.0.9's order: state, timeout, mark, zone, use, id,
assured, unreplied, timestamp, deltatime, helper; ``<when>`` for ``-E -o xml,timestamp``),
the document header and footer conntrack prints around a dump or an event stream (only
once something is shown), and the timestamp extension's text (``delta-time=N``,
``[start=...]``, ``[stop=...]``) when ``net.netfilter.nf_conntrack_timestamp=1``.
Times: ``Conn.start`` and ``now`` are in the caller's clock; ``wall_offset`` turns them
into UNIX time (live: time.time() - time.monotonic()).
Must not know: sockets, the table.
Checked against this machine's kernel (6.18) with conntrack 1.4.7 / libnetfilter_conntrack
1.0.9: ``conntrack -L|-G|-E -o xml[,id,ktimestamp,timestamp]`` on the same entries.
"""

from __future__ import annotations

import math
import time
from typing import Final

from ..conntrack.conn import (IPCT_MARK, IPCT_NEW, IPCT_PROTOINFO, IPCT_RELATED, IPS_ASSURED,
                              IPS_SEEN_REPLY, Conn, Tuple)
from ..conntrack.format import addr, conntrack_use, proto_name, remaining
from ..conntrack.proto.base import L4Tracker

XML_HEAD: Final = '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n'
XML_TAIL: Final = "</conntrack>\n"
USERSPACE: Final = " [USERSPACE] portid="

_PORTS: Final = frozenset({6, 17, 33, 132})
_FLOW_TYPE: Final = {"[NEW]": "new", "[UPDATE]": "update", "[DESTROY]": "destroy"}


def ctime(wall: float) -> str:
    """C's ``ctime`` without the newline (local time): ``Fri Nov 27 10:05:09 2026``."""
    return time.ctime(math.floor(wall))


def delta_time(ct: Conn, now: float, wall_offset: float, destroy: bool) -> int:
    """``delta-time=``: whole seconds since the entry started (a DESTROY: until it died),
    as ``stop_sec - start_sec`` / ``time(NULL) - start_sec``."""
    return max(0, math.floor(now + wall_offset) - math.floor(ct.start + wall_offset))


def timestamp_text(ct: Conn, now: float, wall_offset: float, destroy: bool,
                   ktimestamp: bool) -> str:
    """`` delta-time=N`` (+ `` [start=...]`` and for a DESTROY `` [stop=...]``)."""
    s = f" delta-time={delta_time(ct, now, wall_offset, destroy)}"
    if ktimestamp:
        s += f" [start={ctime(ct.start + wall_offset)}]"
        if destroy:
            s += f" [stop={ctime(now + wall_offset)}]"
    return s


def _meta(t: Tuple, l3: int, direction: str, counters: tuple[int, int] | None = None) -> str:
    fam = "ipv4" if l3 == 2 else "ipv6"
    p = t[2]
    s = (f'<meta direction="{direction}"><layer3 protonum="{l3}" protoname="{fam}">'
         f"<src>{addr(t[0])}</src><dst>{addr(t[1])}</dst></layer3>"
         f'<layer4 protonum="{p}" protoname="{proto_name(p)}">')
    if p in _PORTS:
        s += f"<sport>{t[3]}</sport><dport>{t[4]}</dport>"
    elif p == 47:
        s += f"<srckey>0x{t[3]:x}</srckey><dstkey>0x{t[4]:x}</dstkey>"
    s += "</layer4>"
    if counters is not None:
        s += f"<counters><packets>{counters[0]}</packets><bytes>{counters[1]}</bytes></counters>"
    return s + "</meta>"


def xml_flow(ct: Conn, now: float, l4: L4Tracker, kind: str | None = None,
             with_id: bool = True, timestamps: bool = False, ktimestamp: bool = False,
             wall_offset: float = 0.0, when: float | None = None, bits: int = 0,
             acct: bool = False) -> str:
    """One ``<flow>`` element. kind: None for a dump/get (with ``<use>``), else the event
    kind ``[NEW]``/``[UPDATE]``/``[DESTROY]`` and its IPCT_* bits (what ctnetlink put in
    the message). timestamps: the table keeps start times (nf_conntrack_timestamp).
    when: the event's UNIX time for ``-o timestamp``. acct: the table keeps counters
    (nf_conntrack_acct): a dump, a get and a DESTROY event carry them."""
    destroy = kind == "[DESTROY]"
    event = kind is not None
    head = "<flow>" if kind is None else f'<flow type="{_FLOW_TYPE[kind]}">'
    count = acct and (destroy or not event)
    a = ct.acct
    s = head + _meta(ct.orig, ct.l3num, "original", (a[0], a[1]) if count else None) + \
        _meta(ct.reply, ct.l3num, "reply", (a[2], a[3]) if count else None)
    s += '<meta direction="independent">'
    st = l4.state_name(ct) if ct.proto == 6 else None
    if st is not None and (not event or destroy or bits & (IPCT_PROTOINFO | IPCT_NEW
                                                             | IPCT_RELATED)):
        s += f"<state>{st}</state>"
    left = remaining(ct, now)
    if not destroy or left:
        s += f"<timeout>{left}</timeout>"
    if not event or ct.mark or bits & IPCT_MARK:
        s += f"<mark>{ct.mark}</mark>"
    if ct.zone:
        s += f"<zone>{ct.zone}</zone>"
    if kind is None:
        s += f"<use>{conntrack_use(ct)}</use>"
    if with_id:
        s += f"<id>{ct.id}</id>"
    if ct.status & IPS_ASSURED:
        s += "<assured/>"
    if not ct.status & IPS_SEEN_REPLY:
        s += "<unreplied/>"
    if timestamps and (kind is None or destroy):
        start_ns = round((ct.start + wall_offset) * 1e9)
        if ktimestamp:
            s += f"<timestamp><start>{start_ns}</start>"
            if destroy:
                s += f"<stop>{round((now + wall_offset) * 1e9)}</stop>"
            s += "</timestamp>"
        if destroy:
            s += f"<deltatime>{max(0, math.floor(now - ct.start))}</deltatime>"
        else:
            s += f"<deltatime>{delta_time(ct, now, wall_offset, False)}</deltatime>"
    if ct.helper and not destroy:
        s += f"<helper>{ct.helper}</helper>"
    s += "</meta>"
    if when is not None:
        tm = time.localtime(math.floor(when))
        s += (f"<when><hour>{tm.tm_hour}</hour><min>{tm.tm_min:02d}</min>"
              f"<sec>{tm.tm_sec:02d}</sec><wday>{(tm.tm_wday + 1) % 7 + 1}</wday>"
              f"<day>{tm.tm_mday}</day><month>{tm.tm_mon + 1}</month>"
              f"<year>{tm.tm_year}</year></when>")
    return s + "</flow>"


def userspace(portid: int | None) -> str:
    """The tail conntrack prints after an event a netlink client caused."""
    return f"{USERSPACE}{portid}" if portid else ""


def progname(pid: int) -> str | None:
    """The command name of ``pid`` (conntrack reads /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            text = f.read(512)
    except OSError:
        return None
    a, b = text.find("("), text.rfind(")")
    return text[a + 1:b] if 0 <= a < b else None
