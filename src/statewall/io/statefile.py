"""The state file: a tracker's table written to disk and read back after a restart.

Owns: the file format (one JSON header line: magic, format version, profile, host, queue
layout, wall-clock save time, entry counts and the SHA-256 of the body; then the JSON body),
the atomic write (temporary file in the same directory, fsync, rename, fsync of the
directory), strict validation on load (every field's type and range; a file that fails any
check is rejected whole), setting a bad file aside (renamed ``PATH.bad-<time>``, never
deleted, never half-loaded), and the restore: entries, expectations and counters go back
into a ``Tracker`` with their timeouts shortened by the time statewall was down.
Must not know: NFQUEUE, rules, signals. This is I/O code (files, the wall clock is passed
in); the tracker itself stays pure.

Time: the tracker's clock is the daemon's monotonic clock, which means nothing after a
restart (or a reboot). So the file stores what is *left* of each timeout at ``saved_wall``
(seconds since the epoch); the restore subtracts the downtime (wall clock now - saved_wall,
0 if the clock went backwards) and re-bases on the new monotonic ``now``. Entries whose
time ran out while statewall was down are not restored.

TCP windows: while statewall is down its kernel rules are gone (clean stop) or packets are
dropped (crash, fail-closed) or bypass it (fail-open), so the peers' sequence numbers may
have moved on. Restored TCP entries therefore re-learn each direction's window from its next
segment, exactly like a mid-stream pickup (``tcp_in_window`` with ``td_maxwin == 0``); the
window scale, state and everything else are kept. conntrackd does the same for entries it
commits after a fail-over (it marks them liberal).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from array import array
from typing import Any, Final

from ..conntrack.conn import IPS_CONFIRMED, IPS_DYING, Conn, Tuple
from ..conntrack.core import Tracker
from ..conntrack.expect import Expectation
from ..conntrack.helpers import Help

MAGIC: Final = "statewall-state"
VERSION: Final = 1
MAX_HEADER: Final = 4096

# tcp.py layout of Conn.l4 (kept in step by a check at restore time)
_TCP_L4_SIZE: Final = 23
_TD_MAXWIN: Final = 2
_SEEN_SIZE: Final = 6


class StateFileError(Exception):
    """A state file statewall will not trust: ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Restored:
    """What a restore did: entries and expectations put back, entries whose time ran out
    while statewall was down, entries beyond nf_conntrack_max, the downtime."""

    __slots__ = ("entries", "expectations", "expired", "over_max", "downtime", "meta")

    def __init__(self) -> None:
        self.entries = 0
        self.expectations = 0
        self.expired = 0
        self.over_max = 0
        self.downtime = 0.0
        self.meta: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"Restored(entries={self.entries}, expectations={self.expectations}, "
                f"expired={self.expired}, over_max={self.over_max}, "
                f"downtime={self.downtime:.3f})")


# -- writing -------------------------------------------------------------------------------
def _tup(t: Tuple) -> list[Any]:
    return [t[0].hex(), t[1].hex(), t[2], t[3], t[4], t[5]]


def _helper_name(h: Any) -> list[Any] | None:
    if h is None:
        return None
    return [h.name, h.l3num, h.proto]


def _l4(tracker: Tracker, ct: Conn, now: float) -> Any:
    v = ct.l4
    if v is None:
        return None
    if isinstance(v, array):
        return list(v)
    if isinstance(v, float):
        return {"t": v - now}               # a point in time (UDP stream detection)
    if isinstance(v, int):
        return v
    raise TypeError(f"cannot save l4 data of {tracker.l4[ct.proto].name}: {type(v)}")


def _help_data(d: Any) -> Any:
    """Helper-private data: FTP keeps lists of sequence numbers (or None); TFTP nothing."""
    if d is None or isinstance(d, int):
        return d
    if isinstance(d, (list, tuple)):
        return {"seq": isinstance(d, tuple), "v": [_help_data(x) for x in d]}
    raise TypeError(f"cannot save helper data {type(d)}")


def snapshot(tracker: Tracker, now: float) -> dict[str, Any]:
    """The body: live confirmed entries, live expectations, counters."""
    conns: list[list[Any]] = []
    for ct in tracker.table.entries():
        if ct.timeout <= now or ct.status & IPS_DYING:
            continue
        help = ct.help
        h: dict[str, Any] | None = None
        if help is not None:
            h = {"helper": _helper_name(help.helper), "data": _help_data(help.data)}
        row: list[Any] = [
            ct.id, ct.l3num, _tup(ct.orig), _tup(ct.reply), ct.status, ct.timeout - now,
            ct.state, _l4(tracker, ct, now), ct.mark, list(ct.acct),
            ct.master.id if ct.master is not None else 0, ct.helper, now - ct.start, h]
        nat = ct.nat
        if nat is not None and (nat.masq_iface is not None or nat.seqadj is not None):
            # the NAT extension: MASQUERADE's interface, TCP sequence adjustment
            row.append({"masq": nat.masq_iface, "seqadj": nat.seqadj})
        conns.append(row)
    exps: list[list[Any]] = []
    for e in tracker.expect.entries(now):
        exps.append([
            e.master.id, e.cls, e.l3num, e.proto, e.src.hex(), e.smask.hex(), e.sport,
            e.sport_mask, e.dst.hex(), e.dport, e.flags, _helper_name(e.helper),
            None if e.timeout is None else e.timeout - now, e.id])
    return {
        "conns": conns,
        "expect": exps,
        "stats": dict(tracker.stats),
        "invalid_reasons": dict(tracker.invalid_reasons),
        "expect_stats": dict(tracker.expect.stats),
        "next_id": tracker.table.next_id,
        "expect_next_id": tracker.expect.next_id,
    }


def save(path: str, tracker: Tracker, now: float, wall: float,
         meta: dict[str, Any] | None = None) -> int:
    """Write the tracker's state to ``path`` atomically. Returns the number of entries.

    ``now``: the tracker's clock; ``wall``: seconds since the epoch at the same moment;
    ``meta``: extra header fields (the queue layout), handed back by ``load``."""
    doc = snapshot(tracker, now)
    write_atomic(path, encode(doc, tracker.settings.profile, wall, meta))
    return len(doc["conns"])


def encode(doc: dict[str, Any], profile: str, wall: float,
           meta: dict[str, Any] | None = None) -> bytes:
    """Header line + body."""
    body = json.dumps(doc, separators=(",", ":")).encode()
    header: dict[str, Any] = {
        "magic": MAGIC, "version": VERSION, "profile": profile,
        "host": socket.gethostname(), "saved_wall": wall,
        "entries": len(doc["conns"]), "expectations": len(doc["expect"]),
        "body_len": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    if meta:
        header["meta"] = meta
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def write_atomic(path: str, data: bytes) -> None:
    """Temporary file beside ``path``, fsync, rename over ``path``, fsync the directory:
    a reader sees the old file or the new one, never a mix."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# -- reading -------------------------------------------------------------------------------
def read(path: str, profile: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and body of a state file, checked (magic, version, profile, checksum, JSON
    shape). Raises FileNotFoundError when there is none, StateFileError when it is bad."""
    with open(path, "rb") as f:
        data = f.read()
    nl = data.find(b"\n", 0, MAX_HEADER)
    if nl < 0:
        raise StateFileError(path, "not a statewall state file (no header line)")
    try:
        header = json.loads(data[:nl])
    except (ValueError, UnicodeDecodeError):
        raise StateFileError(path, "not a statewall state file (header is not JSON)") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise StateFileError(path, "not a statewall state file (wrong magic)")
    if header.get("version") != VERSION:
        raise StateFileError(path, f"state file format version {header.get('version')!r}, "
                                   f"this statewall reads version {VERSION}")
    if header.get("profile") != profile:
        raise StateFileError(path, f"written for profile {header.get('profile')!r}, "
                                   f"running {profile!r}")
    if header.get("host") != socket.gethostname():
        raise StateFileError(path, f"written on host {header.get('host')!r}, "
                                   f"this is {socket.gethostname()!r}")
    body = data[nl + 1:]
    if header.get("body_len") != len(body):
        raise StateFileError(path, f"truncated or padded: body is {len(body)} bytes, the "
                                   f"header says {header.get('body_len')!r}")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise StateFileError(path, "checksum mismatch (corrupt)")
    if not _num(header.get("saved_wall")):
        raise StateFileError(path, "bad saved_wall")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise StateFileError(path, "body is not JSON") from None
    if not isinstance(doc, dict):
        raise StateFileError(path, "body is not an object")
    return header, doc


def set_aside(path: str, wall: float | None = None) -> str:
    """Rename a rejected state file out of the way (kept for inspection); returns the new
    name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(wall if wall is not None else time.time()))
    new = f"{path}.bad-{stamp}"
    n = 1
    while os.path.exists(new):
        n += 1
        new = f"{path}.bad-{stamp}-{n}"
    os.replace(path, new)
    return new


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


class _Bad(Exception):
    pass


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise _Bad(what)


def _addr(h: Any, l3num: int) -> bytes:
    _check(isinstance(h, str), "address is not a string")
    try:
        b = bytes.fromhex(h)
    except ValueError:
        raise _Bad(f"bad address {h!r}") from None
    _check(len(b) == (4 if l3num == 2 else 16), f"address {h!r} has the wrong length")
    return b


def _tuple(v: Any, l3num: int) -> Tuple:
    _check(isinstance(v, list) and len(v) == 6, "tuple is not a 6-list")
    src = _addr(v[0], l3num)
    dst = _addr(v[1], l3num)
    _check(_int(v[2], 0, 255), "bad protocol")
    _check(_int(v[3], 0, 0xFFFF) and _int(v[4], 0, 0xFFFF), "bad port/id")
    _check(_int(v[5], 0, 0xFFFF), "bad zone")
    return (src, dst, v[2], v[3], v[4], v[5])


def _helper(tracker: Tracker, v: Any) -> Any:
    if v is None:
        return None
    _check(isinstance(v, list) and len(v) == 3 and isinstance(v[0], str)
           and _int(v[1], 0, 255) and _int(v[2], 0, 255), "bad helper reference")
    h = tracker.helpers.find(v[0], v[1], v[2])
    _check(h is not None, f"helper {v[0]!r} does not exist with the current settings")
    return h


def _data(v: Any, depth: int = 0) -> Any:
    _check(depth < 4, "helper data nested too deeply")
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        _check(0 <= v <= 0xFFFFFFFF, "helper data out of range")
        return v
    _check(isinstance(v, dict) and isinstance(v.get("v"), list)
           and isinstance(v.get("seq"), bool) and len(v["v"]) <= 64, "bad helper data")
    items = [_data(x, depth + 1) for x in v["v"]]
    return tuple(items) if v["seq"] else items


def _l4_value(tracker: Tracker, proto: int, v: Any, now: float) -> Any:
    name = tracker.l4[proto].name
    if name == "tcp" and not tracker.is_24:
        _check(isinstance(v, list) and len(v) == _TCP_L4_SIZE
               and all(_int(x, 0, 0xFFFFFFFF) for x in v), "bad TCP window data")
        st = array("I", v)
        st[_TD_MAXWIN] = 0                  # re-learn both windows (module header)
        st[_SEEN_SIZE + _TD_MAXWIN] = 0
        return st
    if v is None:
        return None
    if isinstance(v, dict):
        _check(set(v) == {"t"} and _num(v["t"]), "bad time in l4 data")
        return now + float(v["t"])
    _check(_int(v, 0, 0xFFFFFFFF), f"bad {name} l4 data")
    return v


def _nat_ext(v: Any) -> Any:
    """The NAT extension of an entry: {"masq": interface or None, "seqadj": None or two
    [correction_pos, offset_before, offset_after] lists (u32 / s32 mod 2**32)}."""
    from ..nat.core import NatExt
    _check(isinstance(v, dict) and set(v) == {"masq", "seqadj"}, "bad NAT extension")
    masq, seq = v["masq"], v["seqadj"]
    _check(masq is None or (isinstance(masq, str) and 0 < len(masq) <= 15),
           "bad MASQUERADE interface")
    _check(seq is None or (isinstance(seq, list) and len(seq) == 2 and all(
        isinstance(d, list) and len(d) == 3 and all(_int(x, 0, 0xFFFFFFFF) for x in d)
        for d in seq)), "bad sequence adjustment")
    e = NatExt()
    e.masq_iface = masq
    e.seqadj = None if seq is None else [list(d) for d in seq]
    return e


def restore(tracker: Tracker, header: dict[str, Any], doc: dict[str, Any], now: float,
            wall: float, path: str = "state file") -> Restored:
    """Put a checked file's content into an empty ``tracker``. Everything is validated
    before anything is inserted: a bad field anywhere rejects the whole file
    (StateFileError) and leaves the tracker untouched."""
    res = Restored()
    res.meta = header.get("meta") or {}
    down = wall - float(header["saved_wall"])
    res.downtime = down if down > 0 else 0.0
    try:
        conns, exps, pending = _validate(tracker, doc, now, res.downtime)
    except _Bad as bad:
        raise StateFileError(path, f"invalid content: {bad}") from None
    except (TypeError, ValueError, KeyError, IndexError) as err:
        raise StateFileError(path, f"invalid content: {err!r}") from None

    table = tracker.table
    # the freshest first when the table cannot take them all
    live = [c for c in conns if c.timeout > now]
    res.expired = len(conns) - len(live)
    room = max(0, tracker.settings.nf_conntrack_max - table.count)
    if len(live) > room:
        live.sort(key=lambda c: -c.timeout)
        res.over_max = len(live) - room
        live = live[:room]
    by_id: dict[int, Conn] = {}
    for ct in live:
        if table.hash.get(ct.orig) is not None or table.hash.get(ct.reply) is not None:
            continue                        # a duplicate tuple: the first one wins
        table.count += 1
        table.insert(ct, now)
        by_id[ct.id] = ct
        res.entries += 1
    for ct in by_id.values():
        mid = pending.get(ct)
        if mid:
            m = by_id.get(mid)
            if m is not None:
                ct.master = m
                if m.help is not None:
                    m.help.children += 1
    ids = [ct.id for ct in by_id.values()]
    table.next_id = max([int(doc["next_id"]), *(i + 1 for i in ids)])
    et = tracker.expect
    for master_id, e, remaining in exps:
        m = by_id.get(master_id)
        if m is None or m.help is None:
            continue                        # its master did not survive
        if remaining is not None and remaining <= 0:
            res.expired += 1
            continue
        e.master = m
        e.zone = m.zone
        # restore path: keep the remaining time (``related`` would restart the timer)
        et._insert(e, now, None if remaining is None else now + remaining)
        res.expectations += 1
    et.next_id = max(et.next_id, int(doc["expect_next_id"]))
    for k, v in doc["stats"].items():
        if k in tracker.stats:
            tracker.stats[k] = v
    tracker.invalid_reasons.update(doc["invalid_reasons"])
    for k, v in doc["expect_stats"].items():
        if k in et.stats:
            et.stats[k] = v
    return res


def _validate(tracker: Tracker, doc: dict[str, Any], now: float, down: float
              ) -> tuple[list[Conn], list[tuple[int, Expectation, float | None]], dict[Conn, int]]:
    for key in ("conns", "expect"):
        _check(isinstance(doc.get(key), list), f"{key} is not a list")
    for key in ("stats", "invalid_reasons", "expect_stats"):
        v = doc.get(key)
        _check(isinstance(v, dict) and all(isinstance(k, str) and _int(x, 0, 1 << 63)
                                           for k, x in v.items()), f"bad {key}")
    _check(_int(doc.get("next_id"), 1, 1 << 63), "bad next_id")
    _check(_int(doc.get("expect_next_id"), 1, 1 << 63), "bad expect_next_id")
    conns: list[Conn] = []
    pending: dict[Conn, int] = {}
    seen_ids: set[int] = set()
    for row in doc["conns"]:
        _check(isinstance(row, list) and len(row) in (14, 15), "entry is not a 14/15-list")
        (cid, l3num, orig, reply, status, remaining, state, l4, mark, acct, master_id,
         helper, age, help) = row[:14]
        natv = row[14] if len(row) == 15 else None
        _check(_int(cid, 1, 1 << 63) and cid not in seen_ids, "bad or duplicate id")
        seen_ids.add(cid)
        _check(l3num in (2, 10), "bad l3num")
        o = _tuple(orig, l3num)
        r = _tuple(reply, l3num)
        _check(o[2] == r[2] and o[5] == r[5], "tuples disagree on protocol or zone")
        _check(_int(status, 0, 0xFFFF) and status & IPS_CONFIRMED
               and not status & IPS_DYING, "bad status")
        _check(_num(remaining) and _num(age) and age >= 0, "bad timeout")
        _check(_int(state, 0, 255) and _int(mark, 0, 0xFFFFFFFF), "bad state or mark")
        _check(isinstance(acct, list) and len(acct) == 4
               and all(_int(x, 0, 1 << 63) for x in acct), "bad counters")
        _check(_int(master_id, 0, 1 << 63), "bad master id")
        _check(helper is None or isinstance(helper, str), "bad helper name")
        ct = Conn(o, r, l3num, now - age - down)
        ct.status = status
        ct.timeout = now + remaining - down
        ct.state = state
        ct.l4 = _l4_value(tracker, o[2], l4, now - down)
        ct.mark = mark
        ct.acct = list(acct)
        ct.helper = helper
        ct.id = cid
        if help is not None:
            _check(isinstance(help, dict) and set(help) == {"helper", "data"}, "bad help")
            hobj = _helper(tracker, help["helper"])
            hp = Help(hobj)
            hp.data = _data(help["data"])
            ct.help = hp
        if natv is not None:
            ct.nat = _nat_ext(natv)
        if master_id:
            pending[ct] = master_id
        conns.append(ct)
    exps: list[tuple[int, Expectation, float | None]] = []
    dummy = Conn((b"\0" * 4, b"\0" * 4, 0, 0, 0, 0), (b"\0" * 4, b"\0" * 4, 0, 0, 0, 0), 2, now)
    for row in doc["expect"]:
        _check(isinstance(row, list) and len(row) == 14, "expectation is not a 14-list")
        (master_id, cls, l3num, proto, src, smask, sport, sport_mask, dst, dport, flags,
         helper, remaining, _eid) = row
        _check(_int(master_id, 1, 1 << 63) and master_id in seen_ids, "expectation without "
               "a master in the file")
        _check(l3num in (2, 10) and _int(proto, 0, 255) and _int(cls, 0, 255), "bad expectation")
        _check(_int(sport, 0, 0xFFFF) and sport_mask in (0, 0xFFFF) and _int(dport, 0, 0xFFFF)
               and _int(flags, 0, 0xFF), "bad expectation ports or flags")
        _check(remaining is None or _num(remaining), "bad expectation timeout")
        s = _addr(src, l3num)
        m = _addr(smask, l3num)
        d = _addr(dst, l3num)
        exp = Expectation(dummy, cls, l3num, s, d, proto, sport if sport_mask else None,
                          dport, smask=m)
        exp.flags = flags
        exp.helper = _helper(tracker, helper)
        exps.append((master_id, exp, None if remaining is None else float(remaining) - down))
    return conns, exps, pending


def load(path: str, tracker: Tracker, now: float, wall: float) -> Restored | None:
    """Read, check and restore ``path`` into ``tracker``. None when there is no file;
    StateFileError (the caller sets the file aside) when it is not to be trusted."""
    try:
        header, doc = read(path, tracker.settings.profile)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateFileError(path, f"unreadable: {e.strerror}") from None
    return restore(tracker, header, doc, now, wall, path)


__all__ = ["MAGIC", "VERSION", "StateFileError", "Restored", "snapshot", "save", "encode",
           "write_atomic", "read", "restore", "load", "set_aside"]
