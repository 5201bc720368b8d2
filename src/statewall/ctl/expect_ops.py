"""``conntrack -I expect`` / ``-G expect`` / ``-D expect`` over a ``Tracker``'s expectations.

Owns: reading conntrack's expectation options (the master's original tuple from
``-s -d -p --sport --dport``; the expected tuple from ``--tuple-src --tuple-dst
--tuple-port-src --tuple-port-dst``; its mask from ``--mask-src --mask-port-src``; the
kernel always matches the destination exactly), and the three operations as ctnetlink does
them (nf_conntrack_netlink.c ``ctnetlink_new_expect`` / ``ctnetlink_get_expect`` /
``ctnetlink_del_expect``): a new expectation needs a live master with a helper (else
"Operation not supported"; no master: "master conntrack not found"), one with the same
expected tuple already there is "File exists", the timeout is the helper policy's (as
``nf_ct_expect_insert`` sets it: ``-t`` is read but the kernel's policy wins). Events: the
expectation table reports [NEW] / [DESTROY] to ``-E expect`` subscribers.
-G / -D find the expectation by its expected tuple (``-s -d -p [--sport] --dport``).
Known difference: conntrack 1.4.7 sends a broken protocol number for the expected tuple
of ``-I expect`` (the kernel lists ``proto=195``); statewall uses ``-p``.
Must not know: sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..conntrack.expect import Expectation
from ..conntrack.format import expect_line
from .args import PORT_PROTOS, Command, ParamError, parse_addr

if TYPE_CHECKING:
    from ..conntrack.core import Tracker
    from .ops import Result

_PREFIX = "conntrack v1.4.7 (conntrack-tools): "
_ERRNO = {16: "Device or resource busy", 24: "Too many open files",
          114: "Operation already in progress", 108: "Operation not supported"}


def _port(c: Command, name: str, default: int | None) -> int | None:
    text = c.opts.get(name)
    if text is None:
        return default
    try:
        v = int(text, 0)
    except ValueError:
        raise ParamError(f"invalid port `{text}'") from None
    if not 0 <= v <= 0xFFFF:
        raise ParamError(f"invalid port `{text}'")
    return v


def _fail(what: str) -> Result:
    from .ops import Result
    return Result(1, err=f"{_PREFIX}Operation failed: {what}\n")


def _find(tr: Tracker, c: Command, now: float) -> Expectation | None:
    """The expectation whose expected tuple is ``-s -d -p [--sport] --dport``."""
    if c.src is None or c.dst is None:
        raise ParamError("missing required source and destination addresses")
    p = c.proto if c.proto is not None else 0
    dport = c.dport if c.dport is not None else 0
    zone = c.zone or 0
    tr.expect.expire(now)
    for e in tr.expect.by_dst.get((c.dst.addr, dport, p, zone), ()):
        if e.matches(c.src.addr, c.sport if c.sport is not None else e.sport):
            return e
    return None


def create(tr: Tracker, c: Command, now: float) -> Result:
    from .ops import Result, _tuples
    for opt in ("tuple_src", "tuple_dst", "mask_src", "mask_dst"):
        if opt not in c.opts:
            raise ParamError(f"You need to supply the `--{opt.replace('_', '-')}' option "
                             "for this command")
    tsrc, tdst = parse_addr(c.opts["tuple_src"]), parse_addr(c.opts["tuple_dst"])
    if len(tsrc.addr) != len(tdst.addr):
        raise ParamError("mismatched address family")
    smask = parse_addr(c.opts["mask_src"]).addr if "mask_src" in c.opts else tsrc.mask
    if len(smask) != len(tsrc.addr):
        raise ParamError("mismatched address family")
    orig, reply = _tuples(tr, c)
    master = tr.lookup(orig, now)
    if master is None:
        return _fail("master conntrack not found")
    help = master.help
    if help is None or help.helper is None:
        return _fail("Operation not supported")
    p = orig[2]
    if p in PORT_PROTOS:
        sport_mask = _port(c, "mask_sport", 0)
        sport = _port(c, "tuple_sport", 0) if sport_mask else None
        dport = _port(c, "tuple_dport", 0) or 0
    else:
        sport, dport = None, 0
    exp = Expectation(master, 0, master.l3num, tsrc.addr, tdst.addr, p, sport, dport,
                      smask)
    for e in tr.expect.by_dst.get(exp.key, ()):
        if e.same(exp):
            return _fail("File exists")
    err = tr.expect.related(exp, now)        # [NEW] to -E expect subscribers
    if err:
        return _fail(_ERRNO.get(abs(err), f"error {abs(err)}"))
    return Result(0)


def get(tr: Tracker, c: Command, now: float) -> Result:
    from .ops import Result
    e = _find(tr, c, now)
    if e is None:
        return _fail("No such file or directory")
    return Result(0, expect_line(e, now) + "\n",
                  f"{_PREFIX}1 expectations have been shown.\n")


def delete(tr: Tracker, c: Command, now: float) -> Result:
    from .ops import Result
    e = _find(tr, c, now)
    if e is None:
        return _fail("No such file or directory")
    tr.expect.remove(e, now)                 # [DESTROY] to -E expect subscribers
    return Result(0)
