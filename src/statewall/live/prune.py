"""``statewall reload --prune``: drop the entries the new rule set would no longer accept.

Owns: the first packet of an entry rebuilt from its original tuple (a NEW packet: TCP SYN,
a UDP datagram, an ICMP/ICMPv6 echo request of the entry's id, an empty datagram of any
other protocol), the question "would the rules accept it now?" asked of a scratch copy of
the firewall (a fresh table, freshly compiled engines: the live counters, the live table
and stateful matches such as ``recent``/``limit`` are not touched), the entries killed
(``Tracker.kill``: [DESTROY] events as for ``conntrack -D``), and the glue: the worker's
``prune`` control request and the supervisor's ``reload --prune`` (reload, then prune in
every worker, the counts summed).
Where the packet went: from a local address -> OUTPUT; else it arrived on the interface
routing picks toward its source (PREROUTING, then INPUT or FORWARD as routing says).
Known limits: a mark or a connmark the first packet carried is not known (0); RELATED
entries (made from an expectation) and entries created by ``conntrack -I`` are kept; a
rule matching on a NAT mapping sees the rebuilt packet before any NAT.
Must not know: sockets other than the control requests, NFQUEUE.
"""

from __future__ import annotations

import json
import logging
import struct
from typing import Any, Final

from ..conntrack.conn import IPS_EXPECTED, Conn
from ..conntrack.core import Tracker
from ..conntrack.proto.base import NF_INET_LOCAL_OUT, NF_INET_PRE_ROUTING
from ..firewall import ACCEPT, Firewall
from ..packet.checksum import l4_checksum
from ..packet.decode import decode_ip
from ..packet.packet import ParseError

_TCP: Final = struct.Struct("!HHIIBBHHH")
_UDP: Final = struct.Struct("!HHHH")
_ICMP: Final = struct.Struct("!BBHHH")
_CSUM_AT: Final = {6: 16, 17: 6, 136: 6, 1: 2, 58: 2}    # checksum field in the L4 header


def first_packet(ct: Conn) -> bytes | None:
    """The original direction's first packet as bytes from the IP header, or None when the
    protocol cannot be rebuilt."""
    src, dst, proto, a, b, _zone = ct.orig
    if proto == 6:
        l4 = _TCP.pack(a, b, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    elif proto == 17 or proto == 136:
        l4 = _UDP.pack(a, b, 8, 0)
    elif proto == 1 or proto == 58:
        l4 = _ICMP.pack(b >> 8, b & 0xFF, 0, a, 1)
    else:
        l4 = b""
    if len(src) == 4:
        total = 20 + len(l4)
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, proto, 0, src, dst)
        s = 0
        for i in range(0, 20, 2):
            s += hdr[i] << 8 | hdr[i + 1]
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
    else:
        hdr = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, src, dst)
    buf = bytearray(hdr + l4)
    off = len(hdr) + _CSUM_AT.get(proto, -1)
    if off >= len(hdr):
        c = l4_checksum(buf, len(hdr), src, dst, -1 if proto == 1 else proto)
        struct.pack_into("!H", buf, off, c or 0xFFFF)
    return bytes(buf)


def _scratch(fw: Firewall) -> Firewall:
    """A firewall with the same rules (compiled again) and host, and an empty table."""
    from ..rules.engine import Engine
    new = Firewall.__new__(Firewall)
    Firewall.__init__(new, fw.settings, Tracker(fw.settings), None, None, fw.host)
    if fw.engine4 is not None or fw.engine6 is not None:
        from ..rules.context import Context
        new._ctx_type = Context
        new.engine4 = Engine(fw.engine4.ruleset) if fw.engine4 is not None else None
        new.engine6 = Engine(fw.engine6.ruleset) if fw.engine6 is not None else None
        if any(e is not None and "nat" in e.tables for e in (new.engine4, new.engine6)):
            from ..nat import Nat
            new.nat = Nat(new.tracker, new.host)
    return new


def accepted(scratch: Firewall, ct: Conn, now: float) -> bool | None:
    """Would the rules accept the entry's first packet now? None: not checked."""
    data = first_packet(ct)
    if data is None:
        return None
    try:
        pkt = decode_ip(data)
    except ParseError:
        return None
    host: Any = scratch.host
    live = hasattr(host, "current")          # live.route.KernelHost: the kernel routes
    if live:
        host.current(NF_INET_PRE_ROUTING, 0, 0, b"", b"", 0, 0)
    if host.is_local(pkt.src):
        hook = NF_INET_LOCAL_OUT
        pkt.iface = None
    else:
        hook = NF_INET_PRE_ROUTING
        pkt.iface = host.route(pkt.src)      # the interface toward the source
    if live:
        index = {name: i for i, name in host.names.items()}
        if hook == NF_INET_LOCAL_OUT:
            host.current(hook, 0, 0, pkt.src, pkt.dst, 0, 0)
            oif = host.route(pkt.dst)
            host.current(hook, 0, index.get(oif or "", 0), pkt.src, pkt.dst, 0, 0)
        else:
            host.current(hook, index.get(pkt.iface or "", 0), 0, pkt.src, pkt.dst, 0, 0)
    d = scratch.process(pkt, now, hook)
    if d.ct is not None:
        scratch.tracker.kill(d.ct, now)      # each question on an empty table
    return d.verdict == ACCEPT


def prune(fw: Firewall, now: float) -> dict[str, int]:
    """Kill every entry whose first packet the current rules would drop."""
    tr = fw.tracker
    scratch = _scratch(fw)
    checked = killed = kept = 0
    for ct in tr.entries(now):
        if ct.status & IPS_EXPECTED or ct.master is not None:
            kept += 1                        # RELATED: allowed through its master
            continue
        ok = accepted(scratch, ct, now)
        if ok is None:
            kept += 1
            continue
        checked += 1
        if not ok:
            tr.kill(ct, now)
            killed += 1
    return {"checked": checked, "pruned": killed, "kept": kept}


# -- the control plane ----------------------------------------------------------------------
def worker_handler(fw_of: Any) -> Any:
    """The worker's ``prune`` request handler: ``fw_of()`` is the current Firewall."""
    def handle(line: str, now: float) -> dict[str, Any]:
        from . import log as swlog
        try:
            res = prune(fw_of(), now)
        except Exception as e:                # a bug: reported, the worker goes on
            swlog.get().exception("prune failed")
            return {"ok": False, "error": f"prune failed: {e!r}"}
        swlog.event(logging.INFO, "entries pruned", **res)
        return {"ok": True, **res}
    return handle


def supervisor_reload(sup: Any, line: str) -> dict[str, Any]:
    """``reload`` / ``reload --prune``: the reload, then (when it worked) every worker
    prunes its table; the reply gains ``pruned`` (and ``checked``) summed."""
    reply: dict[str, Any] = sup.reload()
    if "--prune" not in line.split()[1:] or not reply.get("ok"):
        return reply
    from ..ctl.server import read_reply
    import socket
    total = {"checked": 0, "pruned": 0, "kept": 0}
    errors = {}
    for path in sup.worker_paths():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(60.0)
                s.connect(path)
                s.sendall(b"prune\n")
                data = read_reply(s)
            r = json.loads(data)
        except (OSError, ValueError) as e:
            errors[path] = str(e)
            continue
        if not r.get("ok"):
            errors[path] = str(r.get("error"))
            continue
        for k in total:
            total[k] += int(r.get(k, 0))
    reply.update(total)
    if errors:
        reply["ok"] = False
        reply["prune_errors"] = errors
    return reply
