"""The conntrack-tools operations as pure functions over a ``Tracker``.

Owns: matching entries against a parsed ``Command`` (tuple, CIDR/masks, protocol, ports,
ICMP fields, TCP state, status bits, mark/mask, zones, family, NAT), and the operations:
list (plain, extended, id, save, json), get, delete, create (-I, and -A which also accepts
an existing entry), update (mark[/mask], timeout, status; an entry counts only when it
changed), flush, count, stats, list expectations. Each returns a ``Result`` (exit code,
stdout text, stderr text) with conntrack 1.4.7's exit codes.
Must not know: sockets, processes; ``now`` is a parameter.
Follows conntrack-tools src/conntrack.c and the kernel's ctnetlink (nf_conntrack_netlink.c).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from ..conntrack.conn import (END_DELETED, IPCT_ASSURED, IPCT_HELPER, IPCT_MARK, IPCT_NEW,
                              IPCT_PROTOINFO, IPCT_REPLY, IPS_ASSURED, IPS_CONFIRMED,
                              IPS_DST_NAT, IPS_SEEN_REPLY, IPS_SRC_NAT, Conn, Tuple)
from ..conntrack.core import Tracker
from ..conntrack.format import addr, as_json, conntrack_line, expect_line, proto_name
from ..conntrack.proto import tcp as _tcp
from . import render
from .args import ICMP_PROTOS, PORT_PROTOS, STATUS_NAMES, Addr, Command, Nat, \
    ParamError, parse

VERSION: Final = "conntrack v1.4.7 (conntrack-tools) (statewall)"
# the events ctnetlink reports for an entry a client created / changed
# (nf_conntrack_netlink.c ctnetlink_new_conntrack: REPLY, ASSURED, HELPER, PROTOINFO,
# SEQADJ, MARK, SYNPROXY, plus NEW for a created one)
IPCT_SEQADJ: Final = 1 << 8
IPCT_LABEL: Final = 1 << 10
IPCT_SYNPROXY: Final = 1 << 11
CHANGE_EVENTS: Final = (IPCT_REPLY | IPCT_ASSURED | IPCT_HELPER | IPCT_PROTOINFO | IPCT_SEQADJ
                        | IPCT_MARK | IPCT_SYNPROXY)
CREATE_EVENTS: Final = CHANGE_EVENTS | IPCT_NEW
UPDATE_EVENTS: Final = CHANGE_EVENTS | IPCT_LABEL
# -u bits a user may set and that -o save prints
_USER_STATUS: Final = (("EXPECTED", 1), ("SEEN_REPLY", 2), ("ASSURED", 4),
                       ("FIXED_TIMEOUT", 1 << 10))


@dataclass
class Result:
    rc: int
    out: str = ""
    err: str = ""


def _inmask(a: bytes, want: Addr) -> bool:
    if len(a) != len(want.addr):
        return False
    return all((x & m) == (y & m) for x, y, m in zip(a, want.addr, want.mask))


def _tuple_ports(t: Tuple) -> tuple[int, int]:
    return t[3], t[4]


def _nat_match(ct: Conn, n: Nat, bit: int) -> bool:
    if bit and not ct.status & bit:
        return False
    if n.addr is None:
        return True
    # DNAT: the reply comes from the new destination; SNAT: goes back to the new source
    cands = []
    if bit in (0, IPS_DST_NAT) and ct.status & IPS_DST_NAT:
        cands.append((ct.reply[0], ct.reply[3]))
    if bit in (0, IPS_SRC_NAT) and ct.status & IPS_SRC_NAT:
        cands.append((ct.reply[1], ct.reply[4]))
    return any(a == n.addr and (n.port is None or p == n.port) for a, p in cands)


def matches(ct: Conn, c: Command, update: bool = False) -> bool:
    """Does the entry pass every filter given? For -U the mark and status are new values,
    not filters."""
    o, r = ct.orig, ct.reply
    if c.family and ct.l3num != c.family:
        return False
    if c.proto is not None and ct.proto != c.proto:
        return False
    for a, want in ((o[0], c.src), (o[1], c.dst), (r[0], c.rsrc), (r[1], c.rdst)):
        if want is not None and not _inmask(a, want):
            return False
    if ct.proto in PORT_PROTOS:
        for got, w in ((o[3], c.sport), (o[4], c.dport), (r[3], c.rsport), (r[4], c.rdport)):
            if w is not None and got != w:
                return False
    elif ct.proto in ICMP_PROTOS:
        if c.icmp_id is not None and o[3] != c.icmp_id:
            return False
        if c.icmp_type is not None and o[4] >> 8 != c.icmp_type:
            return False
        if c.icmp_code is not None and o[4] & 0xFF != c.icmp_code:
            return False
    if c.state is not None and (ct.proto != 6 or ct.state != c.state):
        return False
    if not update:
        if c.status is not None and ct.status & c.status != c.status:
            return False
        if c.mark is not None and ct.mark & c.mark_mask != c.mark & c.mark_mask:
            return False
    if c.zone is not None and ct.zone != c.zone:
        return False
    if c.rule is not None and ct.rule != c.rule:
        return False
    if c.helper is not None and ct.helper != c.helper:
        return False
    if c.orig_zone is not None and o[5] != c.orig_zone:
        return False
    if c.reply_zone is not None and r[5] != c.reply_zone:
        return False
    if c.src_nat is not None and not _nat_match(ct, c.src_nat, IPS_SRC_NAT):
        return False
    if c.dst_nat is not None and not _nat_match(ct, c.dst_nat, IPS_DST_NAT):
        return False
    if c.any_nat is not None:
        if not ct.status & (IPS_SRC_NAT | IPS_DST_NAT) or not _nat_match(ct, c.any_nat, 0):
            return False
    return True


# -- output ---------------------------------------------------------------------------
def save_line(ct: Conn, now: float, verb: str) -> str:
    """``-o save``: a line that ``conntrack -R -`` (or the command line) reads back."""
    o, r = ct.orig, ct.reply
    parts = [verb]
    if o[5] == r[5]:
        if ct.zone:
            parts += ["-w", str(ct.zone)]
    else:
        parts += ["--orig-zone", str(o[5]), "--reply-zone", str(r[5])]
    parts += ["-t", str(max(0, int(ct.timeout - now)))]
    names = [n for n, bit in _USER_STATUS if ct.status & bit]
    parts += ["-u", ",".join(names) or "UNSET"]
    parts += ["-s", addr(o[0]), "-d", addr(o[1]), "-r", addr(r[0]), "-q", addr(r[1])]
    pname = proto_name(ct.proto)
    parts += ["-p", pname if pname != "unknown" else str(ct.proto)]
    if ct.proto in PORT_PROTOS:
        parts += ["--sport", str(o[3]), "--dport", str(o[4]),
                  "--reply-port-src", str(r[3]), "--reply-port-dst", str(r[4])]
    elif ct.proto in ICMP_PROTOS:
        parts += ["--icmp-type" if ct.proto == 1 else "--icmpv6-type", str(o[4] >> 8),
                  "--icmp-code" if ct.proto == 1 else "--icmpv6-code", str(o[4] & 0xFF),
                  "--icmp-id" if ct.proto == 1 else "--icmpv6-id", str(o[3])]
    if ct.proto == 6:
        parts += ["--state", _tcp.TCP_CONNTRACK_NAMES[ct.state]
                  if ct.state < len(_tcp.TCP_CONNTRACK_NAMES) else "NONE"]
    if ct.mark:
        parts += ["-m", str(ct.mark)]
    return " ".join(parts)


def _line(tr: Tracker, ct: Conn, c: Command, now: float, verb: str,
          wall_offset: float = 0.0) -> str:
    out = c.output
    if "save" in out:
        return save_line(ct, now, verb)
    if "json" in out:
        d = as_json(ct, now, tr.l4[ct.proto])
        d["rule"] = ct.rule                  # statewall: the rule that let it in
        return json.dumps(d)
    ts = bool(tr.settings.nf_conntrack_timestamp)
    acct = bool(tr.settings.nf_conntrack_acct)      # counters only when the table keeps them
    if "xml" in out:
        return render.xml_flow(ct, now, tr.l4[ct.proto], None, True, ts,
                               "ktimestamp" in out, wall_offset, acct=acct)
    extra = render.timestamp_text(ct, now, wall_offset, False, "ktimestamp" in out) \
        if ts else ""
    return conntrack_line(ct, now, tr.l4[ct.proto], acct=acct, extended="extended" in out,
                          with_id="id" in out, extra=extra)


def _lines(lines: list[str], c: Command) -> str:
    """The shown lines; ``-o xml`` puts conntrack's document around them (when any)."""
    if not lines:
        return ""
    text = "".join(x + "\n" for x in lines)
    return render.XML_HEAD + text + render.XML_TAIL if "xml" in c.output else text


def _summary(n: int, what: str) -> str:
    return f"conntrack v1.4.7 (conntrack-tools): {n} flow entries have been {what}.\n"


# -- operations -----------------------------------------------------------------------
def _tuples(tr: Tracker, c: Command) -> tuple[Tuple, Tuple]:
    """The orig and reply tuples of a complete -I/-A/-G command."""
    p = c.proto if c.proto is not None else 0
    zo = c.orig_zone if c.orig_zone is not None else (c.zone or 0)
    zr = c.reply_zone if c.reply_zone is not None else (c.zone or 0)
    if p in ICMP_PROTOS:
        a = c.icmp_id or 0
        b = ((c.icmp_type or 0) << 8) | (c.icmp_code or 0)
        inv = tr.l4[p].invert(a, b)
        ra, rb = inv if inv is not None else (a, b)
        oports, rports = (a, b), (ra, rb)
        if c.src is None or c.dst is None:
            oports, rports = (ra, rb), (a, b)
    elif p in PORT_PROTOS:
        if c.sport is not None and c.dport is not None:
            oports = (c.sport, c.dport)
            rports = (c.rsport, c.rdport) if c.rsport is not None and c.rdport is not None \
                else (c.dport, c.sport)
        else:
            assert c.rsport is not None and c.rdport is not None
            rports = (c.rsport, c.rdport)
            oports = (c.rdport, c.rsport)
    else:
        oports = rports = (0, 0)
    if c.src is not None and c.dst is not None:
        s, d = c.src.addr, c.dst.addr
        rs = c.rsrc.addr if c.rsrc is not None else d
        rd = c.rdst.addr if c.rdst is not None else s
    else:
        assert c.rsrc is not None and c.rdst is not None
        rs, rd = c.rsrc.addr, c.rdst.addr
        s, d = rd, rs
    rp = list(rports)
    if c.dst_nat is not None and c.dst_nat.addr is not None:
        rs = c.dst_nat.addr
        if c.dst_nat.port is not None:
            rp[0] = c.dst_nat.port
    if c.src_nat is not None and c.src_nat.addr is not None:
        rd = c.src_nat.addr
        if c.src_nat.port is not None:
            rp[1] = c.src_nat.port
    return (s, d, p, oports[0], oports[1], zo), (rs, rd, p, rp[0], rp[1], zr)


def _new_mark(old: int, c: Command) -> int:
    assert c.mark is not None
    return (old & ~c.mark_mask & 0xFFFFFFFF) | (c.mark & c.mark_mask)


def create(tr: Tracker, c: Command, now: float) -> Result:
    orig, reply = _tuples(tr, c)
    if c.dst_nat is not None and c.dst_nat.addr is not None and len(c.dst_nat.addr) != \
            len(orig[0]):
        raise ParamError("mismatched address family")
    old = tr.table.get(orig) or tr.table.get(reply)
    if old is not None:
        if c.cmd == "add":
            if _update_one(old, c, now, tr) and tr.sink is not None:
                tr.sink(now, UPDATE_EVENTS, old)
            return Result(0, err=_summary(1, "added"))
        return Result(1, err="conntrack v1.4.7 (conntrack-tools): Operation failed: "
                             "Such conntrack exists, try -U to update\n")
    l3 = 2 if len(orig[0]) == 4 else 10
    ct = Conn(orig, reply, l3, now)
    ct.zone = orig[5]
    ct.status = (c.status or 0) | IPS_CONFIRMED
    if c.src_nat is not None and c.src_nat.addr is not None:
        ct.status |= IPS_SRC_NAT
    if c.dst_nat is not None and c.dst_nat.addr is not None:
        ct.status |= IPS_DST_NAT
    ct.status &= ~IPS_CONFIRMED               # the table sets it
    assert c.timeout is not None
    ct.timeout = now + c.timeout
    if c.mark is not None:
        ct.mark = _new_mark(0, c)
    if ct.proto == 6:
        # a liberal window state: the entry was not seen from its first segment
        st = _tcp._ZERO.__copy__()
        st[_tcp.TD_FLAGS] = st[_tcp.SEEN_SIZE + _tcp.TD_FLAGS] = _tcp.IP_CT_TCP_FLAG_BE_LIBERAL
        ct.l4 = st
        ct.state = c.state if c.state is not None else 0
    ct.id = tr.table.next_id
    tr.table.next_id += 1
    tr.table.count += 1
    tr.table.insert(ct, now)
    if tr.sink is not None:                  # ctnetlink reports what a client created
        tr.sink(now, CREATE_EVENTS, ct)
    return Result(0, err=_summary(1, "added" if c.cmd == "add" else "created"))


def _update_one(ct: Conn, c: Command, now: float, tr: Tracker) -> bool:
    changed = False
    if c.mark is not None:
        m = _new_mark(ct.mark, c)
        if m != ct.mark:
            ct.mark = m
            changed = True
    if c.timeout is not None:
        t = now + c.timeout
        if int(t - now) != int(ct.timeout - now):
            changed = True
        ct.timeout = t
        tr.table.file(ct, now)
    if c.status is not None:
        s = ct.status | c.status
        if s != ct.status:
            ct.status = s
            if s & IPS_ASSURED:
                tr.table.assured(ct)
            changed = True
    if c.state is not None and ct.proto == 6 and ct.state != c.state:
        ct.state = c.state
        changed = True
    return changed


def update(tr: Tracker, c: Command, now: float) -> Result:
    n = 0
    for ct in tr.entries(now):
        if matches(ct, c, update=True) and _update_one(ct, c, now, tr):
            n += 1
            if tr.sink is not None:          # [UPDATE] for each entry that changed
                tr.sink(now, UPDATE_EVENTS, ct)
    if n == 0:
        return Result(1, err="conntrack v1.4.7 (conntrack-tools): 0 flow entries have been "
                             "updated.\n")
    return Result(0, err=_summary(n, "updated"))


def delete(tr: Tracker, c: Command, now: float, batch: bool = False,
           wall_offset: float = 0.0) -> Result:
    """-D: conntrack prints each entry it deleted (as -L would), then the count; the
    kernel reports a DESTROY event for each (``Tracker.kill``)."""
    out = []
    n = 0
    for ct in tr.entries(now):
        if matches(ct, c):
            out.append(_line(tr, ct, c, now, "-D", wall_offset))
            tr.kill(ct, now, END_DELETED)
            n += 1
    if n == 0 and not batch:
        return Result(1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries "
                             "have been deleted.\n")
    # (-D -o xml prints the bare <flow> lines: conntrack writes no document around them)
    return Result(0, "".join(x + "\n" for x in out), _summary(n, "deleted"))


def list_(tr: Tracker, c: Command, now: float, wall_offset: float = 0.0) -> Result:
    if c.table == "expect":
        tr.expire(now)
        lines = [expect_line(e, now) + "\n" for lst in tr.expect.by_dst.values() for e in lst]
        return Result(0, "".join(lines),
                      f"conntrack v1.4.7 (conntrack-tools): {len(lines)} expectations have "
                      "been shown.\n")
    if c.table in ("dying", "unconfirmed"):
        return Result(0, err=_summary(0, "shown"))
    out = []
    zero = "zero" in c.opts
    for ct in tr.entries(now):
        if matches(ct, c):
            out.append(_line(tr, ct, c, now, "-A", wall_offset))
            if zero:                           # -z: each entry's counters, once shown
                ct.acct[:] = [0, 0, 0, 0]
    return Result(0, _lines(out, c), _summary(len(out), "shown"))


def get(tr: Tracker, c: Command, now: float, wall_offset: float = 0.0) -> Result:
    orig, reply = _tuples(tr, c)
    ct = tr.lookup(orig, now) if c.src is not None else tr.lookup(reply, now)
    if ct is None:
        return Result(1, err="conntrack v1.4.7 (conntrack-tools): Operation failed: "
                             "such conntrack doesn't exist\n")
    line = _line(tr, ct, c, now, "-A", wall_offset) + "\n"
    if "xml" in c.output:
        line = render.XML_HEAD + line         # conntrack -G writes no </conntrack>
    return Result(0, line, _summary(1, "shown"))


def stats(tr: Tracker, now: float) -> str:
    s = tr.stats
    return (f"cpu=0   \tfound={s['found']} invalid={s['invalid']} insert={s['insert']} "
            f"insert_failed={s['insert_failed']} drop={s['drop']} "
            f"early_drop={s['early_drop']} error={s['error']} "
            f"search_restart={s['search_restart']} clash_resolve={s['clash_resolve']} "
            f"chaintoolong={s['chaintoolong']} \n")


def execute(tr: Tracker, c: Command, now: float, batch: bool = False,
            wall_offset: float = 0.0) -> Result:
    """Run one parsed command against the table. ``wall_offset``: UNIX time minus the
    table's clock (for start times and ``-o ktimestamp``)."""
    k = c.cmd
    if c.table == "expect" and k in ("create", "get", "delete"):
        from . import expect_ops             # -I / -G / -D expect
        return {"create": expect_ops.create, "get": expect_ops.get,
                "delete": expect_ops.delete}[k](tr, c, now)
    if c.table == "expect" and k not in ("list", "flush", "count"):
        return Result(2, err=f"conntrack v1.4.7 (conntrack-tools): {k} of expectations is "
                             "not supported by statewall yet\n")
    if c.table in ("dying", "unconfirmed") and k != "list":
        return Result(2, err=f"conntrack v1.4.7 (conntrack-tools): {k} of the {c.table} "
                             "list is not supported\n")
    if k == "count" and c.table == "expect":
        tr.expire(now)
        return Result(0, f"{len(tr.expect)}\n")
    if k == "list":
        return list_(tr, c, now, wall_offset)
    if k == "get":
        return get(tr, c, now, wall_offset)
    if k == "delete":
        return delete(tr, c, now, batch, wall_offset)
    if k in ("create", "add"):
        return create(tr, c, now)
    if k == "update":
        return update(tr, c, now)
    if k == "flush":
        if c.table == "expect":
            for m in [ct for ct in tr.entries(now) if ct.help is not None]:
                tr.expect.remove_master(m, now)
            return Result(0, err="conntrack v1.4.7 (conntrack-tools): expectation table has "
                                 "been emptied.\n")
        for ct in tr.entries(now):
            tr.kill(ct, now, END_DELETED)
        return Result(0, err="conntrack v1.4.7 (conntrack-tools): connection tracking table "
                             "has been emptied.\n")
    if k == "count":
        return Result(0, f"{len(tr.entries(now))}\n")
    if k == "stats":
        return Result(0, stats(tr, now))
    if k == "version":
        return Result(0, VERSION + "\n")
    return Result(2, err=f"conntrack v1.4.7 (conntrack-tools): -{k} is not supported by "
                         "statewall's control socket\n")


def run(tr: Tracker, argv: list[str], now: float, batch: bool = False,
        wall_offset: float = 0.0) -> Result:
    """Parse and execute; parameter problems exit 2 with conntrack's message shape."""
    try:
        c = parse(argv)
        return execute(tr, c, now, batch, wall_offset)
    except ParamError as e:
        return Result(2, err=e.text())


__all__ = ["Result", "execute", "matches", "run", "save_line", "STATUS_NAMES", "proto_name"]
