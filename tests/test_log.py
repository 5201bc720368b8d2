"""LOG: statewall's log line vs the line the kernel writes.

Always: for every case below, ``log_line`` must reproduce - character for character - the
lines a Linux 6.18 kernel printed for the same packet (``EXPECTED``, observed on
6.18.44 through ``dmesg``: client -- fw -- server namespaces, four LOG rules in fw with
different ``--log-*`` flags, ``net.netfilter.nf_log_all_netns=1`` while recording).
As root with working ``ip netns``: the same packets are sent again and the kernel's lines
must still equal ``EXPECTED`` (so the literals are current) and ours.

The rule prefixes are ``SW00000x<flags in hex> `` in the literals; a live run uses
``SW<5 digits of its pid>x..`` (same length, as a line cut at the buffer size depends on
it) and maps it back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("statewall") is None:  # not installed: use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from statewall.packet.decode import decode_ip  # noqa: E402
from statewall.packet.log import (XT_LOG_IPOPT, XT_LOG_MACDECODE, XT_LOG_TCPOPT,  # noqa: E402
                                  XT_LOG_TCPSEQ, XT_LOG_UID, LogRecord, format_ipv6,
                                  log_line, log_record)
from statewall.packet.packet import Packet, ParseError  # noqa: E402

from test_reject import at_forward  # noqa: E402

C4, S4, FW4 = "198.51.100.2", "203.0.113.2", "198.51.100.1"
C6, S6, FW6 = "2001:db8:1::2", "2001:db8:2::2", "2001:db8:1::1"
CLIENT_MAC, FW_MAC = "02:00:00:00:01:02", "02:00:00:00:01:01"
ETH4 = bytes.fromhex("020000000101" "020000000102" "0800")   # dst fw, src client
ETH6 = bytes.fromhex("020000000101" "020000000102" "86dd")

ALL = XT_LOG_TCPSEQ | XT_LOG_TCPOPT | XT_LOG_IPOPT | XT_LOG_UID
COMBOS = (0, ALL, XT_LOG_MACDECODE, ALL | XT_LOG_MACDECODE)
MARK_PORT = 4242
MARK = 0xBEEF


def _scapy() -> Any:
    return pytest.importorskip("scapy.all")


def v4(payload: Any, **ip: Any) -> bytes:
    s = _scapy()
    return bytes(s.IP(src=ip.pop("src", C4), dst=ip.pop("dst", S4), **ip) / payload)


def v6(payload: Any, **ip: Any) -> bytes:
    s = _scapy()
    return bytes(s.IPv6(src=ip.pop("src", C6), dst=ip.pop("dst", S6), **ip) / payload)


def _cases() -> dict[str, bytes]:
    """name -> datagram the client sends through fw (FORWARD)."""
    s = _scapy()
    inner_tcp = s.IP(src=S4, dst=C4, len=1000) / s.TCP(sport=80, dport=5000) / b"qqq"
    inner_tcp8 = bytes(s.IP(src=S4, dst=C4) / s.TCP(sport=80, dport=5000))[:28]
    inner_udp = s.IP(src=S4, dst=C4) / s.UDP(sport=53, dport=5000)
    return {
        "tcp syn opts tos df res ece cwr urg": v4(
            s.TCP(sport=5000, dport=80, flags="SECU", seq=1000, reserved=7, urgptr=9,
                  options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]),
            tos=0xFF, id=777, flags="DF"),
        "tcp ae psh fin rst": v4(s.TCP(sport=5000, dport=80, flags="NPFR", seq=1, ack=2,
                                       window=1234)),
        "tcp ack seq wrap": v4(s.TCP(sport=65535, dport=1, flags="A", seq=0xFFFFFFFF,
                                     ack=0x80000000, window=0), ttl=2),
        "udp first fragment": v4(s.UDP(sport=5000, dport=53) / (b"x" * 16), tos=0x0B,
                                 flags="MF"),
        "tcp non-first fragment evil bit": v4(s.Raw(b"x" * 16), flags="evil", frag=100,
                                              proto=6),
        "icmp frag needed inner tcp": v4(s.ICMP(type=3, code=4, nexthopmtu=1400) / inner_tcp),
        "icmp port unreachable inner udp": v4(s.ICMP(type=3, code=3) / inner_udp),
        "icmp inner tcp 8 bytes": v4(s.ICMP(type=3, code=1) / s.Raw(inner_tcp8)),
        "icmp inner ip truncated": v4(s.ICMP(type=11) / s.Raw(bytes(inner_udp)[:10] + b"\0"*10)),
        "icmp inner ip header 19 bytes": v4(s.ICMP(type=11) / s.Raw(bytes(inner_udp)[:19])),
        "icmp inner ihl 15 short": v4(s.ICMP(type=3, code=3) / s.Raw(
            b"\x4f" + bytes(inner_udp)[1:28])),
        "icmp redirect": v4(s.ICMP(type=5, code=1, gw="203.0.113.9") / inner_udp),
        "icmp parameter problem": v4(s.ICMP(type=12, ptr=20) / inner_udp),
        "icmp echo": v4(s.ICMP(type=8, id=55, seq=66) / b"ping"),
        "icmp echo reply": v4(s.ICMP(type=0, id=1, seq=2)),
        "icmp 4 bytes": v4(s.Raw(b"\x08\x00\xf7\xff"), proto=1),
        "icmp unreach 8 bytes": v4(s.ICMP(type=3, code=0)),
        "icmp timestamp": v4(s.ICMP(type=13) / (b"\0" * 12)),
        "icmp timestamp short": v4(s.ICMP(type=13) / (b"\0" * 4)),
        "icmp type 40": v4(s.ICMP(type=40, code=7)),
        "icmp inner icmp echo": v4(s.ICMP(type=3, code=13) / s.IP(src=S4, dst=C4)
                                   / s.ICMP(type=8, id=9, seq=10)),
        "icmp inner icmp error": v4(s.ICMP(type=11) / s.IP(src=S4, dst=C4)
                                    / s.ICMP(type=3, code=3) / inner_udp),
        "icmp fragment": v4(s.Raw(b"x" * 16), proto=1, frag=3),
        "ip options rr": v4(s.UDP(sport=1, dport=2),
                            options=[s.IPOption_RR(routers=["0.0.0.0"] * 2)]),
        "ip options nop ra": v4(s.TCP(sport=1, dport=2, flags="S"),
                                options=[s.IPOption_NOP(), s.IPOption_Router_Alert()]),
        "esp": v4(s.Raw(b"\x00\x00\x12\x34" + b"z" * 8), proto=50),
        "esp short": v4(s.Raw(b"\x00\x00\x12"), proto=50),
        "esp fragment": v4(s.Raw(b"z" * 8), proto=50, frag=5),
        "ah": v4(s.Raw(b"\x06\x04\x00\x00\xab\xcd\x12\x34" + b"z" * 8), proto=51),
        "ah short": v4(s.Raw(b"\x06\x04\x00\x00\xab\xcd\x12\x34"), proto=51),
        "ah fragment": v4(s.Raw(b"z" * 16), proto=51, frag=5),
        "proto 253": v4(s.Raw(b"z" * 8), proto=253),
        "tcp 8 bytes": v4(s.Raw(b"z" * 8), proto=6),
        "tcp options cut short": v4(s.Raw(bytes(s.TCP(sport=1, dport=2, dataofs=10))[:24]),
                                    proto=6),
        "udp 4 bytes": v4(s.Raw(b"\x00\x01\x00\x02"), proto=17),
        "udplite": v4(s.Raw(b"\x00\x01\x00\x02\x00\x08\x00\x00"), proto=136),
        "udp marked": v4(s.UDP(sport=1, dport=MARK_PORT) / b"m"),
        "v6 tcp ack tc flowlabel": v6(s.TCP(sport=5000, dport=80, flags="A"), tc=0xA5,
                                      fl=0xABCDE),
        "v6 hbh frag first udp": v6(s.IPv6ExtHdrHopByHop() / s.IPv6ExtHdrFragment(
            offset=0, m=1, id=0x1234) / s.UDP(sport=5000, dport=80) / (b"q" * 16)),
        "v6 non-first fragment tcp": v6(s.IPv6ExtHdrFragment(offset=10, m=0, id=0x1234,
                                                             nh=6) / (b"q" * 16)),
        "v6 non-first fragment then dstopts": v6(s.IPv6ExtHdrFragment(
            offset=10, m=1, id=0xFFFFFFFF, nh=60) / (b"q" * 16)),
        "v6 routing dstopts udp": v6(s.IPv6ExtHdrRouting(addresses=[S6]) /
                                     s.IPv6ExtHdrDestOpt() / s.UDP(sport=7, dport=8)),
        "v6 ah tcp": v6(s.AH(spi=0x99, icv=b"\0" * 12, nh=6) / s.TCP(sport=1, dport=2)),
        "v6 ah short": v6(s.Raw(b"\x06\x04\x00\x00\x00\x00"), nh=51),
        "v6 esp": v6(s.Raw(b"\x00\x00\x12\x34" + b"z" * 8), nh=50),
        "v6 esp short": v6(s.Raw(b"\x00\x00\x12\x34"), nh=50),
        "v6 no next header": v6(b"", nh=59),
        "v6 proto 253": v6(s.Raw(b"z" * 8), nh=253),
        "v6 ext header cut": v6(s.Raw(b"\x11"), nh=60),
        "v6 dest unreach inner udp": v6(s.ICMPv6DestUnreach(code=1)
                                        / s.IPv6(src=S6, dst=C6) / s.UDP(sport=1, dport=2)),
        "v6 inner ipv6 truncated": v6(s.ICMPv6TimeExceeded() / s.Raw(b"\x60" + b"\0" * 20)),
        "v6 inner icmpv6 error": v6(s.ICMPv6DestUnreach(code=4) / s.IPv6(src=S6, dst=C6)
                                    / s.ICMPv6DestUnreach() / s.IPv6(src=C6, dst=S6)
                                    / s.UDP()),
        "v6 packet too big": v6(s.ICMPv6PacketTooBig(mtu=1280) / s.IPv6(src=S6, dst=C6)
                                / s.TCP(sport=1, dport=2)),
        "v6 param problem": v6(s.ICMPv6ParamProblem(code=1, ptr=0x2A)
                               / s.IPv6(src=S6, dst=C6) / s.UDP()),
        "v6 echo request": v6(s.ICMPv6EchoRequest(id=7, seq=8) / b"ping"),
        "v6 mld query": v6(s.Raw(b"\x82\x00\x00\x00\x00\x00\x00\x00" + b"\0" * 16), nh=58),
        "v6 icmpv6 4 bytes": v6(s.Raw(b"\x80\x00\x00\x00"), nh=58),
        "v6 tcp options": v6(s.TCP(sport=1, dport=2, flags="S", seq=5,
                                   options=[("MSS", 1440), ("SAckOK", b"")])),
        "v6 udp marked": v6(s.UDP(sport=1, dport=MARK_PORT) / b"m"),
        "v6 151 dest-opt headers (line cut at 1016 chars)": v6(_many_dstopts(151)
                                                                / s.UDP(sport=1, dport=2)),
    }


def _many_dstopts(n: int) -> Any:
    s = _scapy()
    h = s.IPv6ExtHdrDestOpt()
    for _ in range(n - 1):
        h = h / s.IPv6ExtHdrDestOpt()
    return h


CASE_NAMES = sorted(_cases()) if importlib.util.find_spec("scapy") else []


def _view(raw: bytes) -> Packet:
    """The datagram at FORWARD (TTL/hop limit decremented, RR filled in, stale checksum
    kept: decode_ip refuses that, so build the Packet by hand then)."""
    buf = at_forward(raw)
    try:
        return decode_ip(buf)
    except ParseError:
        return Packet(buf, 2, buf[12:16], buf[16:20], buf[9], (buf[0] & 15) * 4)


def _mark_of(raw: bytes) -> int:
    pkt = decode_ip(raw)
    return MARK if pkt.proto == 17 and pkt.dport == MARK_PORT else 0


def pfx(flags: int) -> str:
    """The rule prefix in the literals (a live run's prefix has the same length)."""
    return f"SW00000x{flags:02x} "


def ours(name: str, raw: bytes, flags: int, prefix: str) -> str:
    pkt = _view(raw)
    pkt.mark = _mark_of(raw)
    eth = ETH4 if raw[0] >> 4 == 4 else ETH6
    return log_line(prefix, pkt, "c0", "s0", eth, flags)


# Lines Linux 6.18.44 wrote for these packets (observed on 6.18: dmesg, the text after the
# timestamp), for the rule prefixes SW00000x00 (no flags), ..x0f (--log-tcp-sequence
# --log-tcp-options --log-ip-options --log-uid), ..x20 (--log-macdecode) and ..x2f (all
# of them). The constants only factor out the parts every line of a family shares.
M4: Final = "IN=c0 OUT=s0 MAC=02:00:00:00:01:01:02:00:00:00:01:02:08:00 "
D4: Final = ("IN=c0 OUT=s0 MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 "
             "MACPROTO=0800 ")
M6: Final = "IN=c0 OUT=s0 MAC=02:00:00:00:01:01:02:00:00:00:01:02:86:dd "
D6: Final = ("IN=c0 OUT=s0 MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 "
             "MACPROTO=86dd ")
A4: Final = "SRC=198.51.100.2 DST=203.0.113.2 "
A6: Final = ("SRC=2001:0db8:0001:0000:0000:0000:0000:0002 "
             "DST=2001:0db8:0002:0000:0000:0000:0000:0002 ")

EXPECTED: dict[str, list[str]] = {
    'ah': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH SPI=0xabcd1234 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH SPI=0xabcd1234 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH SPI=0xabcd1234 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH SPI=0xabcd1234 ',
    ],
    'ah fragment': [
        'SW00000x00 ' + M4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 ',
        'SW00000x0f ' + M4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 ',
        'SW00000x20 ' + D4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 ',
        'SW00000x2f ' + D4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 ',
    ],
    'ah short': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH INCOMPLETE [8 bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH INCOMPLETE [8 bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH INCOMPLETE [8 bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=AH INCOMPLETE [8 bytes] ',
    ],
    'esp': [
        'SW00000x00 ' + M4 + A4 + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP SPI=0x1234 ',
        'SW00000x0f ' + M4 + A4 + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP SPI=0x1234 ',
        'SW00000x20 ' + D4 + A4 + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP SPI=0x1234 ',
        'SW00000x2f ' + D4 + A4 + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP SPI=0x1234 ',
    ],
    'esp fragment': [
        'SW00000x00 ' + M4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 PROTO=ESP ',
        'SW00000x0f ' + M4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 PROTO=ESP ',
        'SW00000x20 ' + D4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 PROTO=ESP ',
        'SW00000x2f ' + D4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:5 PROTO=ESP ',
    ],
    'esp short': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=23 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP INCOMPLETE [3 bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=23 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP INCOMPLETE [3 bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=23 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP INCOMPLETE [3 bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=23 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ESP INCOMPLETE [3 bytes] ',
    ],
    'icmp 4 bytes': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP INCOMPLETE [4 bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP INCOMPLETE [4 bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP INCOMPLETE [4 bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP INCOMPLETE [4 bytes] ',
    ],
    'icmp echo': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=55 SEQ=66 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=55 SEQ=66 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=55 SEQ=66 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=32 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=55 SEQ=66 ',
    ],
    'icmp echo reply': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=0 CODE=0 ID=1 SEQ=2 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=0 CODE=0 ID=1 SEQ=2 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=0 CODE=0 ID=1 SEQ=2 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=0 CODE=0 ID=1 SEQ=2 ',
    ],
    'icmp frag needed inner tcp': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=71 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=4 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=1000 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=80 '
        + 'DPT=5000 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1400 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=71 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=4 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=1000 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=80 '
        + 'DPT=5000 SEQ=0 ACK=0 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1400 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=71 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=4 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=1000 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=80 '
        + 'DPT=5000 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1400 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=71 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=4 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=1000 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=80 '
        + 'DPT=5000 SEQ=0 ACK=0 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1400 ',
    ],
    'icmp fragment': [
        'SW00000x00 ' + M4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:3 PROTO=ICMP ',
        'SW00000x0f ' + M4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:3 PROTO=ICMP ',
        'SW00000x20 ' + D4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:3 PROTO=ICMP ',
        'SW00000x2f ' + D4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 FRAG:3 PROTO=ICMP ',
    ],
    'icmp inner icmp echo': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=13 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=8 CODE=0 ID=9 SEQ=10 ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=13 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=8 CODE=0 ID=9 SEQ=10 ] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=13 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=8 CODE=0 ID=9 SEQ=10 ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=13 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=8 CODE=0 ID=9 SEQ=10 ] ',
    ],
    'icmp inner icmp error': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=3 CODE=3 ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=3 CODE=3 ] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=3 CODE=3 ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 '
        + '[SRC=203.0.113.2 DST=198.51.100.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=ICMP TYPE=3 CODE=3 ] ',
    ],
    'icmp inner ihl 15 short': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP INCOMPLETE '
        + '[4294967264 bytes] ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 TRUNCATED] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP INCOMPLETE '
        + '[4294967264 bytes] ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 TRUNCATED] ',
    ],
    'icmp inner ip header 19 bytes': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=47 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 INCOMPLETE [27 '
        + 'bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=47 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 INCOMPLETE [27 '
        + 'bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=47 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 INCOMPLETE [27 '
        + 'bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=47 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 INCOMPLETE [27 '
        + 'bytes] ',
    ],
    'icmp inner ip truncated': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=0.0.0.0 '
        + 'DST=0.0.0.0 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP INCOMPLETE [0 '
        + 'bytes] ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=0.0.0.0 '
        + 'DST=0.0.0.0 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP INCOMPLETE [0 '
        + 'bytes] ] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=0.0.0.0 '
        + 'DST=0.0.0.0 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP INCOMPLETE [0 '
        + 'bytes] ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=11 CODE=0 [SRC=0.0.0.0 '
        + 'DST=0.0.0.0 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP INCOMPLETE [0 '
        + 'bytes] ] ',
    ],
    'icmp inner tcp 8 bytes': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=1 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP INCOMPLETE [8 '
        + 'bytes] ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=1 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP INCOMPLETE [8 '
        + 'bytes] ] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=1 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP INCOMPLETE [8 '
        + 'bytes] ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=1 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP INCOMPLETE [8 '
        + 'bytes] ] ',
    ],
    'icmp parameter problem': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=12 CODE=0 PARAMETER=20 ',
    ],
    'icmp port unreachable inner udp': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=53 '
        + 'DPT=5000 LEN=8 ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=53 '
        + 'DPT=5000 LEN=8 ] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=53 '
        + 'DPT=5000 LEN=8 ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=203.0.113.2 '
        + 'DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=53 '
        + 'DPT=5000 LEN=8 ] ',
    ],
    'icmp redirect': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=5 CODE=1 '
        + 'GATEWAY=203.0.113.9 [SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 '
        + 'TTL=64 ID=1 PROTO=UDP SPT=53 DPT=5000 LEN=8 ] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=5 CODE=1 '
        + 'GATEWAY=203.0.113.9 [SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 '
        + 'TTL=64 ID=1 PROTO=UDP SPT=53 DPT=5000 LEN=8 ] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=5 CODE=1 '
        + 'GATEWAY=203.0.113.9 [SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 '
        + 'TTL=64 ID=1 PROTO=UDP SPT=53 DPT=5000 LEN=8 ] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=56 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=5 CODE=1 '
        + 'GATEWAY=203.0.113.9 [SRC=203.0.113.2 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 '
        + 'TTL=64 ID=1 PROTO=UDP SPT=53 DPT=5000 LEN=8 ] ',
    ],
    'icmp timestamp': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=52 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=52 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=52 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=52 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
    ],
    'icmp timestamp short': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=44 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=44 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=44 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=44 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=13 CODE=0 ',
    ],
    'icmp type 40': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=40 CODE=7 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=40 CODE=7 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=40 CODE=7 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=40 CODE=7 ',
    ],
    'icmp unreach 8 bytes': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=0 INCOMPLETE [8 '
        + 'bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=0 INCOMPLETE [8 '
        + 'bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=0 INCOMPLETE [8 '
        + 'bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=ICMP TYPE=3 CODE=0 INCOMPLETE [8 '
        + 'bytes] ',
    ],
    'input udp to fw': [
        'SW00000x00 IN=c0 OUT= MAC=02:00:00:00:01:01:02:00:00:00:01:02:08:00 '
        + 'SRC=198.51.100.2 DST=198.51.100.1 LEN=30 TOS=0x10 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
        'SW00000x0f IN=c0 OUT= MAC=02:00:00:00:01:01:02:00:00:00:01:02:08:00 '
        + 'SRC=198.51.100.2 DST=198.51.100.1 LEN=30 TOS=0x10 PREC=0x00 TTL=64 ID=1 '
        + 'PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
        'SW00000x20 IN=c0 OUT= MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 '
        + 'MACPROTO=0800 SRC=198.51.100.2 DST=198.51.100.1 LEN=30 TOS=0x10 PREC=0x00 '
        + 'TTL=64 ID=1 PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
        'SW00000x2f IN=c0 OUT= MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 '
        + 'MACPROTO=0800 SRC=198.51.100.2 DST=198.51.100.1 LEN=30 TOS=0x10 PREC=0x00 '
        + 'TTL=64 ID=1 PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
    ],
    'input v6 udp to fw': [
        'SW00000x00 IN=c0 OUT= MAC=02:00:00:00:01:01:02:00:00:00:01:02:86:dd '
        + 'SRC=2001:0db8:0001:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0001 LEN=50 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
        'SW00000x0f IN=c0 OUT= MAC=02:00:00:00:01:01:02:00:00:00:01:02:86:dd '
        + 'SRC=2001:0db8:0001:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0001 LEN=50 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
        'SW00000x20 IN=c0 OUT= MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 '
        + 'MACPROTO=86dd SRC=2001:0db8:0001:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0001 LEN=50 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
        'SW00000x2f IN=c0 OUT= MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 '
        + 'MACPROTO=86dd SRC=2001:0db8:0001:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0001 LEN=50 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=5 DPT=9999 LEN=10 ',
    ],
    'ip options nop ra': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=8192 '
        + 'RES=0x00 SYN URGP=0 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 OPT (0194040000000000) PROTO=TCP SPT=1 '
        + 'DPT=2 SEQ=0 ACK=0 WINDOW=8192 RES=0x00 SYN URGP=0 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=8192 '
        + 'RES=0x00 SYN URGP=0 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=48 TOS=0x00 PREC=0x00 TTL=63 ID=1 OPT (0194040000000000) PROTO=TCP SPT=1 '
        + 'DPT=2 SEQ=0 ACK=0 WINDOW=8192 RES=0x00 SYN URGP=0 ',
    ],
    'ip options rr': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 OPT (070B08C63364010000000000) PROTO=UDP '
        + 'SPT=1 DPT=2 LEN=8 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=8 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 OPT (070B08C63364010000000000) PROTO=UDP '
        + 'SPT=1 DPT=2 LEN=8 ',
    ],
    'proto 253': [
        'SW00000x00 ' + M4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=253 ',
        'SW00000x0f ' + M4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=253 ',
        'SW00000x20 ' + D4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=253 ',
        'SW00000x2f ' + D4 + A4 + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=253 ',
    ],
    'tcp 8 bytes': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP INCOMPLETE [8 bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP INCOMPLETE [8 bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP INCOMPLETE [8 bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP INCOMPLETE [8 bytes] ',
    ],
    'tcp ack seq wrap': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=65535 DPT=1 WINDOW=0 '
        + 'RES=0x00 ACK URGP=0 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=65535 DPT=1 SEQ=4294967295 '
        + 'ACK=2147483648 WINDOW=0 RES=0x00 ACK URGP=0 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=65535 DPT=1 WINDOW=0 '
        + 'RES=0x00 ACK URGP=0 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=65535 DPT=1 SEQ=4294967295 '
        + 'ACK=2147483648 WINDOW=0 RES=0x00 ACK URGP=0 ',
    ],
    'tcp ae psh fin rst': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=5000 DPT=80 WINDOW=1234 '
        + 'RES=0x00 AE PSH RST FIN URGP=0 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=5000 DPT=80 SEQ=1 ACK=2 '
        + 'WINDOW=1234 RES=0x00 AE PSH RST FIN URGP=0 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=5000 DPT=80 WINDOW=1234 '
        + 'RES=0x00 AE PSH RST FIN URGP=0 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=5000 DPT=80 SEQ=1 ACK=2 '
        + 'WINDOW=1234 RES=0x00 AE PSH RST FIN URGP=0 ',
    ],
    'tcp non-first fragment evil bit': [
        'SW00000x00 ' + M4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 CE FRAG:100 PROTO=TCP ',
        'SW00000x0f ' + M4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 CE FRAG:100 PROTO=TCP ',
        'SW00000x20 ' + D4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 CE FRAG:100 PROTO=TCP ',
        'SW00000x2f ' + D4 + A4 + 'LEN=36 TOS=0x00 PREC=0x00 TTL=63 ID=1 CE FRAG:100 PROTO=TCP ',
    ],
    'tcp options cut short': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=8192 '
        + 'RES=0x00 SYN URGP=0 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=2 SEQ=0 ACK=0 '
        + 'WINDOW=8192 RES=0x00 SYN URGP=0 OPT (TRUNCATED)',
        'SW00000x20 ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=8192 '
        + 'RES=0x00 SYN URGP=0 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=TCP SPT=1 DPT=2 SEQ=0 ACK=0 '
        + 'WINDOW=8192 RES=0x00 SYN URGP=0 OPT (TRUNCATED)',
    ],
    'tcp syn opts tos df res ece cwr urg': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=48 TOS=0x1E PREC=0xE0 TTL=63 ID=777 DF PROTO=TCP SPT=5000 DPT=80 '
        + 'WINDOW=8192 RES=0x38 CWR ECE URG SYN URGP=9 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=48 TOS=0x1E PREC=0xE0 TTL=63 ID=777 DF PROTO=TCP SPT=5000 DPT=80 SEQ=1000 '
        + 'ACK=0 WINDOW=8192 RES=0x38 CWR ECE URG SYN URGP=9 OPT (020405B401030307) ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=48 TOS=0x1E PREC=0xE0 TTL=63 ID=777 DF PROTO=TCP SPT=5000 DPT=80 '
        + 'WINDOW=8192 RES=0x38 CWR ECE URG SYN URGP=9 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=48 TOS=0x1E PREC=0xE0 TTL=63 ID=777 DF PROTO=TCP SPT=5000 DPT=80 SEQ=1000 '
        + 'ACK=0 WINDOW=8192 RES=0x38 CWR ECE URG SYN URGP=9 OPT (020405B401030307) ',
    ],
    'udp 4 bytes': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP INCOMPLETE [4 bytes] ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP INCOMPLETE [4 bytes] ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP INCOMPLETE [4 bytes] ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=24 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP INCOMPLETE [4 bytes] ',
    ],
    'udp first fragment': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=44 TOS=0x0A PREC=0x00 TTL=63 ID=1 MF PROTO=UDP SPT=5000 DPT=53 LEN=24 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=44 TOS=0x0A PREC=0x00 TTL=63 ID=1 MF PROTO=UDP SPT=5000 DPT=53 LEN=24 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=44 TOS=0x0A PREC=0x00 TTL=63 ID=1 MF PROTO=UDP SPT=5000 DPT=53 LEN=24 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=44 TOS=0x0A PREC=0x00 TTL=63 ID=1 MF PROTO=UDP SPT=5000 DPT=53 LEN=24 ',
    ],
    'udp marked': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=29 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=4242 LEN=9 '
        + 'MARK=0xbeef ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=29 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=4242 LEN=9 '
        + 'MARK=0xbeef ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=29 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=4242 LEN=9 '
        + 'MARK=0xbeef ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=29 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDP SPT=1 DPT=4242 LEN=9 '
        + 'MARK=0xbeef ',
    ],
    'udplite': [
        'SW00000x00 ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDPLITE SPT=1 DPT=2 LEN=8 ',
        'SW00000x0f ' + M4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDPLITE SPT=1 DPT=2 LEN=8 ',
        'SW00000x20 ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDPLITE SPT=1 DPT=2 LEN=8 ',
        'SW00000x2f ' + D4 + A4
        + 'LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 PROTO=UDPLITE SPT=1 DPT=2 LEN=8 ',
    ],
    'v6 151 dest-opt headers (line cut at 1016 chars)': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=1256 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 ',
        'SW00000x0f ' + M6 + A6 + 'LEN=1256 TC=0 HOPLIMIT=63 FLOWLBL=0 ' + 'OPT ( ) ' * 102
        + 'OPT ( ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=1256 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 ',
        'SW00000x2f ' + D6 + A6 + 'LEN=1256 TC=0 HOPLIMIT=63 FLOWLBL=0 ' + 'OPT ( ) ' * 100
        + 'OPT ',
    ],
    'v6 ah short': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=46 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP INCOMPLETE [4294967278 bytes] ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=46 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( AH INCOMPLETE [6 bytes] )',
        'SW00000x20 ' + D6 + A6
        + 'LEN=46 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP INCOMPLETE [4294967278 bytes] ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=46 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( AH INCOMPLETE [6 bytes] )',
    ],
    'v6 ah tcp': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=84 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=0 DPT=0 WINDOW=0 RES=0x00 '
        + 'URGP=2 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=84 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( AH SPI=0x99 ) PROTO=TCP SPT=0 DPT=0 '
        + 'SEQ=0 ACK=0 WINDOW=0 RES=0x00 URGP=2 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=84 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=0 DPT=0 WINDOW=0 RES=0x00 '
        + 'URGP=2 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=84 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( AH SPI=0x99 ) PROTO=TCP SPT=0 DPT=0 '
        + 'SEQ=0 ACK=0 WINDOW=0 RES=0x00 URGP=2 ',
    ],
    'v6 dest unreach inner udp': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=1 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=1 DPT=2 LEN=8 ] ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=1 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=1 DPT=2 LEN=8 ] ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=1 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=1 DPT=2 LEN=8 ] ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=1 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=1 DPT=2 LEN=8 ] ',
    ],
    'v6 echo request': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=8 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=8 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=8 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=8 ',
    ],
    'v6 esp': [
        'SW00000x00 ' + M6 + A6 + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 ',
        'SW00000x0f ' + M6 + A6 + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ESP SPI=0x1234 )',
        'SW00000x20 ' + D6 + A6 + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 ',
        'SW00000x2f ' + D6 + A6 + 'LEN=52 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ESP SPI=0x1234 )',
    ],
    'v6 esp short': [
        'SW00000x00 ' + M6 + A6 + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ESP INCOMPLETE [4 bytes] )',
        'SW00000x20 ' + D6 + A6 + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ESP INCOMPLETE [4 bytes] )',
    ],
    'v6 ext header cut': [
        'SW00000x00 ' + M6 + A6 + 'LEN=41 TC=0 HOPLIMIT=63 FLOWLBL=0 TRUNCATED',
        'SW00000x0f ' + M6 + A6 + 'LEN=41 TC=0 HOPLIMIT=63 FLOWLBL=0 TRUNCATED',
        'SW00000x20 ' + D6 + A6 + 'LEN=41 TC=0 HOPLIMIT=63 FLOWLBL=0 TRUNCATED',
        'SW00000x2f ' + D6 + A6 + 'LEN=41 TC=0 HOPLIMIT=63 FLOWLBL=0 TRUNCATED',
    ],
    'v6 hbh frag first udp': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:0 INCOMPLETE ID:00001234 PROTO=UDP '
        + 'SPT=5000 DPT=80 LEN=24 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ) OPT ( FRAG:0 INCOMPLETE ID:00001234 ) '
        + 'PROTO=UDP SPT=5000 DPT=80 LEN=24 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:0 INCOMPLETE ID:00001234 PROTO=UDP '
        + 'SPT=5000 DPT=80 LEN=24 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ) OPT ( FRAG:0 INCOMPLETE ID:00001234 ) '
        + 'PROTO=UDP SPT=5000 DPT=80 LEN=24 ',
    ],
    'v6 icmpv6 4 bytes': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 INCOMPLETE [4 bytes] ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 INCOMPLETE [4 bytes] ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 INCOMPLETE [4 bytes] ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=44 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 INCOMPLETE [4 bytes] ',
    ],
    'v6 inner icmpv6 error': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=144 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=ICMPv6 TYPE=1 CODE=0 ] ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=144 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=ICMPv6 TYPE=1 CODE=0 ] ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=144 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=ICMPv6 TYPE=1 CODE=0 ] ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=144 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=ICMPv6 TYPE=1 CODE=0 ] ',
    ],
    'v6 inner ipv6 truncated': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=69 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=3 CODE=0 [TRUNCATED] ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=69 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=3 CODE=0 [TRUNCATED] ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=69 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=3 CODE=0 [TRUNCATED] ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=69 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=3 CODE=0 [TRUNCATED] ',
    ],
    'v6 mld query': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=130 CODE=0 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=130 CODE=0 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=130 CODE=0 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=130 CODE=0 ',
    ],
    'v6 no next header': [
        'SW00000x00 ' + M6 + A6 + 'LEN=40 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=59 ',
        'SW00000x0f ' + M6 + A6 + 'LEN=40 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=59 ',
        'SW00000x20 ' + D6 + A6 + 'LEN=40 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=59 ',
        'SW00000x2f ' + D6 + A6 + 'LEN=40 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=59 ',
    ],
    'v6 non-first fragment tcp': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:80 ID:00001234 PROTO=TCP ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( FRAG:80 ID:00001234 ) PROTO=TCP ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:80 ID:00001234 PROTO=TCP ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( FRAG:80 ID:00001234 ) PROTO=TCP ',
    ],
    'v6 non-first fragment then dstopts': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:80 INCOMPLETE ID:ffffffff ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( FRAG:80 INCOMPLETE ID:ffffffff ) OPT ( )',
        'SW00000x20 ' + D6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:80 INCOMPLETE ID:ffffffff ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=64 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( FRAG:80 INCOMPLETE ID:ffffffff ) OPT ( )',
    ],
    'v6 packet too big': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=108 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=TCP SPT=1 DPT=2 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1280 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=108 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=TCP SPT=1 DPT=2 SEQ=0 ACK=0 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1280 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=108 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=TCP SPT=1 DPT=2 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1280 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=108 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=2 CODE=0 '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=TCP SPT=1 DPT=2 SEQ=0 ACK=0 WINDOW=8192 RES=0x00 SYN URGP=0 ] MTU=1280 ',
    ],
    'v6 param problem': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=1 POINTER=0000002a '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=53 DPT=53 LEN=8 ] ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=1 POINTER=0000002a '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=53 DPT=53 LEN=8 ] ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=1 POINTER=0000002a '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=53 DPT=53 LEN=8 ] ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=96 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=1 POINTER=0000002a '
        + '[SRC=2001:0db8:0002:0000:0000:0000:0000:0002 '
        + 'DST=2001:0db8:0001:0000:0000:0000:0000:0002 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 '
        + 'PROTO=UDP SPT=53 DPT=53 LEN=8 ] ',
    ],
    'v6 proto 253': [
        'SW00000x00 ' + M6 + A6 + 'LEN=48 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=253 ',
        'SW00000x0f ' + M6 + A6 + 'LEN=48 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=253 ',
        'SW00000x20 ' + D6 + A6 + 'LEN=48 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=253 ',
        'SW00000x2f ' + D6 + A6 + 'LEN=48 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=253 ',
    ],
    'v6 routing dstopts udp': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=7 DPT=8 LEN=8 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ) OPT ( ) PROTO=UDP SPT=7 DPT=8 LEN=8 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=7 DPT=8 LEN=8 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 OPT ( ) OPT ( ) PROTO=UDP SPT=7 DPT=8 LEN=8 ',
    ],
    'v6 tcp ack tc flowlabel': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=60 TC=165 HOPLIMIT=63 FLOWLBL=703710 PROTO=TCP SPT=5000 DPT=80 WINDOW=8192 '
        + 'RES=0x00 ACK URGP=0 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=60 TC=165 HOPLIMIT=63 FLOWLBL=703710 PROTO=TCP SPT=5000 DPT=80 SEQ=0 ACK=0 '
        + 'WINDOW=8192 RES=0x00 ACK URGP=0 ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=60 TC=165 HOPLIMIT=63 FLOWLBL=703710 PROTO=TCP SPT=5000 DPT=80 WINDOW=8192 '
        + 'RES=0x00 ACK URGP=0 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=60 TC=165 HOPLIMIT=63 FLOWLBL=703710 PROTO=TCP SPT=5000 DPT=80 SEQ=0 ACK=0 '
        + 'WINDOW=8192 RES=0x00 ACK URGP=0 ',
    ],
    'v6 tcp options': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=68 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=1 DPT=2 WINDOW=8192 RES=0x00 '
        + 'SYN URGP=0 ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=68 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=1 DPT=2 SEQ=5 ACK=0 WINDOW=8192 '
        + 'RES=0x00 SYN URGP=0 OPT (020405A004020000) ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=68 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=1 DPT=2 WINDOW=8192 RES=0x00 '
        + 'SYN URGP=0 ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=68 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=1 DPT=2 SEQ=5 ACK=0 WINDOW=8192 '
        + 'RES=0x00 SYN URGP=0 OPT (020405A004020000) ',
    ],
    'v6 udp marked': [
        'SW00000x00 ' + M6 + A6
        + 'LEN=49 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=1 DPT=4242 LEN=9 MARK=0xbeef ',
        'SW00000x0f ' + M6 + A6
        + 'LEN=49 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=1 DPT=4242 LEN=9 MARK=0xbeef ',
        'SW00000x20 ' + D6 + A6
        + 'LEN=49 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=1 DPT=4242 LEN=9 MARK=0xbeef ',
        'SW00000x2f ' + D6 + A6
        + 'LEN=49 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=1 DPT=4242 LEN=9 MARK=0xbeef ',
    ],
}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_matches_observed_kernel_lines(name: str) -> None:
    raw = _cases()[name]
    got = [ours(name, raw, f, pfx(f)) for f in COMBOS]
    assert got == EXPECTED[name]


@pytest.mark.parametrize("name", ["input udp to fw", "input v6 udp to fw"])
def test_matches_observed_kernel_lines_input(name: str) -> None:
    raw = _local_cases()[name]
    assert [ours_local(name, raw, f, pfx(f)) for f in COMBOS] == EXPECTED[name]


# ---------------------------------------------------------------------------------------
# Unit tests that do not need the kernel

def test_format_ipv6() -> None:
    a = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert format_ipv6(a) == "2001:0db8:0000:0000:0000:0000:0000:0001"


def test_in_out_mac_forms() -> None:
    s = _scapy()
    pkt = decode_ip(v4(s.UDP(sport=1, dport=2)))
    tail = ("SRC=198.51.100.2 DST=203.0.113.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 "
            "PROTO=UDP SPT=1 DPT=2 LEN=8 ")
    assert log_line("P ", pkt, None, "eth0", ETH4) == "P IN= OUT=eth0 " + tail
    assert log_line("", pkt, "tun0", None, None) == "IN=tun0 OUT= MAC= " + tail
    assert log_line("", pkt, "tun0", None, None, XT_LOG_MACDECODE) == \
        "IN=tun0 OUT= MAC= " + tail
    assert log_line("", pkt, "eth0", None, ETH4, XT_LOG_MACDECODE,
                    vlan=(0x8100, 7)) == (
        "IN=eth0 OUT= MACSRC=02:00:00:00:01:02 MACDST=02:00:00:00:01:01 VPROTO=8100 VID=7 "
        "MACPROTO=0800 " + tail)
    pkt.mark = 0x10
    assert log_line("", pkt, None, "o", None).endswith("LEN=8 MARK=0x10 ")


def test_uid_only_for_the_outer_packet_and_with_the_flag() -> None:
    s = _scapy()
    pkt = decode_ip(v4(s.UDP(sport=1, dport=2)))
    assert log_line("", pkt, None, "o", None, XT_LOG_UID, uid_gid=(1000, 100)).endswith(
        "LEN=8 UID=1000 GID=100 ")
    assert "UID" not in log_line("", pkt, None, "o", None, 0, uid_gid=(1000, 100))


def test_truncation_to_the_nf_log_buffer() -> None:
    s = _scapy()
    hdrs = s.IPv6ExtHdrDestOpt()
    for _ in range(150):
        hdrs = hdrs / s.IPv6ExtHdrDestOpt()
    pkt = decode_ip(v6(hdrs / s.UDP(sport=1, dport=2)))
    rec = log_record("P ", pkt, None, "o", None, XT_LOG_IPOPT)
    assert isinstance(rec, LogRecord) and rec.level == 4
    assert len(rec.text) == 1016 and rec.kmsg().startswith("<4>P IN= OUT=o ")
    with pytest.raises(ValueError):
        log_record("", pkt, None, None, level=8)


# ---------------------------------------------------------------------------------------
# Live: the kernel still writes EXPECTED, and so do we

def _lab_reason() -> str | None:
    try:
        from statewall.lab.netns import lab_available
    except Exception as exc:  # pragma: no cover
        return f"lab not importable: {exc}"
    ok, why = lab_available()
    if not ok:
        return why
    if not Path("/proc/sys/net/netfilter/nf_log_all_netns").exists():
        return "no net.netfilter.nf_log_all_netns"
    if subprocess.run(["dmesg"], capture_output=True).returncode != 0:
        return "dmesg is not readable"
    return None


LAB_SKIP = _lab_reason()
live = pytest.mark.skipif(LAB_SKIP is not None,
                          reason=f"live kernel comparison needs the lab: {LAB_SKIP}")


def _local_cases() -> dict[str, bytes]:
    """Packets that fw receives itself (INPUT) - the OUTPUT case is made by fw's stack."""
    s = _scapy()
    return {"input udp to fw": v4(s.UDP(sport=5, dport=9999) / b"in", dst=FW4, tos=0x10),
            "input v6 udp to fw": v6(s.UDP(sport=5, dport=9999) / b"in", dst=FW6)}


def ours_local(name: str, raw: bytes, flags: int, prefix: str) -> str:
    if name.startswith("input"):
        return log_line(prefix, decode_ip(raw), "c0", None,
                        ETH4 if raw[0] >> 4 == 4 else ETH6, flags)
    return log_line(prefix, decode_ip(raw), None, "c0", None, flags, uid_gid=(0, 0))


def _rules(tag: str) -> str:
    rules = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
             ":OUTPUT ACCEPT [0:0]"]
    for chain in ("FORWARD", "INPUT", "OUTPUT"):
        for f in COMBOS:
            opts = [opt for bit, opt in ((XT_LOG_TCPSEQ, "--log-tcp-sequence"),
                                         (XT_LOG_TCPOPT, "--log-tcp-options"),
                                         (XT_LOG_IPOPT, "--log-ip-options"),
                                         (XT_LOG_UID, "--log-uid"),
                                         (XT_LOG_MACDECODE, "--log-macdecode")) if f & bit]
            match = "" if chain == "FORWARD" else "-p udp --dport 9999 "
            rules.append(f'-A {chain} {match}-j LOG --log-prefix "{tag}x{f:02x} " '
                         + " ".join(opts))
    rules += ["COMMIT", "*mangle", f"-A FORWARD -p udp --dport {MARK_PORT} -j MARK "
              f"--set-mark {MARK}", "COMMIT"]
    return "\n".join(rules) + "\n"


KNOB = Path("/proc/sys/net/netfilter/nf_log_all_netns")
_KNOB_LOCK = Path("/tmp/statewall-nf_log_all_netns.lock")
_KNOB_STATE = Path("/tmp/statewall-nf_log_all_netns.json")


@contextlib.contextmanager
def nf_log_all_netns() -> Iterator[None]:
    """``net.netfilter.nf_log_all_netns=1`` while inside; the value found before is
    restored when the last holder leaves. Holders are counted across processes (pytest-xdist
    workers, concurrent runs) under a file lock, so overlapping users neither restore it
    early nor leave it at 1; a holder that died is dropped on the next entry."""
    import fcntl
    import json

    def update(fn: Callable[[dict[str, Any]], None]) -> None:
        with open(_KNOB_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                st: dict[str, Any] = (json.loads(_KNOB_STATE.read_text())
                                      if _KNOB_STATE.exists() else {})
                st["holders"] = [h for h in st.get("holders", [])
                                 if Path(f"/proc/{h}").exists()]
                fn(st)
                if st["holders"]:
                    _KNOB_STATE.write_text(json.dumps(st))
                else:
                    _KNOB_STATE.unlink(missing_ok=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def enter(st: dict[str, Any]) -> None:
        if not st["holders"] and "prev" not in st:
            st["prev"] = KNOB.read_text().strip()
        st["holders"].append(os.getpid())
        KNOB.write_text("1")

    def leave(st: dict[str, Any]) -> None:
        if os.getpid() in st["holders"]:
            st["holders"].remove(os.getpid())
        if not st["holders"]:
            KNOB.write_text(st.get("prev", "0"))

    update(enter)
    try:
        yield
    finally:
        update(leave)


def kernel_lines(cases: dict[str, bytes]) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    """Send each case through fw with LOG rules; return (name -> the four kernel lines with
    the prefix mapped back to ``SW00000x<flags> ``, name -> datagram of the locally generated
    cases). Besides ``cases`` (FORWARD): ``_local_cases`` to fw (INPUT) and a UDP datagram
    fw's own socket sends to the client (OUTPUT, ``--log-uid``), captured at the client.
    ``nf_log_all_netns`` is 1 only while our namespaces exist (``nf_log_all_netns()``); its
    previous value is restored, also on failure."""
    from statewall.lab.capture import Capture
    from statewall.lab.netns import Topology
    tag = f"SW{os.getpid() % 100000:05d}"     # as long as "SW00000": cut lines stay equal
    seen = 0

    def new_lines() -> list[str]:
        nonlocal seen
        out = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
        lines = [ln.split("] ", 1)[1] for ln in out.splitlines() if f"] {tag}x" in ln]
        fresh = lines[seen:]
        seen = len(lines)
        return [ln.replace(f"{tag}x", "SW00000x", 1) for ln in fresh]

    def collect() -> list[str]:
        deadline = time.monotonic() + 2.0
        got: list[str] = []
        while len(got) < len(COMBOS) and time.monotonic() < deadline:
            time.sleep(0.01)
            got += new_lines()
        return got

    result: dict[str, list[str]] = {}
    local: dict[str, bytes] = {}
    with nf_log_all_netns(), Topology() as topo:
        topo.up()
        topo.run("fw", ["iptables-restore"], input=_rules(tag))
        topo.run("fw", ["ip6tables-restore"], input=_rules(tag))
        inj = topo.socket("client", socket.AF_PACKET, socket.SOCK_RAW, 0)
        inj.bind(("eth0", 0))
        cap = Capture(topo.socket("client", *Capture.open_socket_args()),
                      ("eth0",)).start()
        try:
            new_lines()
            for name, raw in {**cases, **_local_cases()}.items():
                inj.send((ETH4 if raw[0] >> 4 == 4 else ETH6) + raw)
                result[name] = collect()
            start = cap.count()
            with topo.socket("fw", socket.AF_INET, socket.SOCK_DGRAM) as us:
                us.sendto(b"from fw", (C4, 9999))
            result["output udp from fw"] = collect()
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                frames = [f.l3 for f in cap.snapshot()[start:]
                          if not f.outgoing and f.l3[:1] == b"\x45" and f.l3[9] == 17]
                if frames:
                    local["output udp from fw"] = frames[0]
                    break
                time.sleep(0.01)
        finally:
            cap.stop()
            inj.close()
    return result, local


@pytest.fixture(scope="module")
def observed() -> tuple[dict[str, list[str]], dict[str, bytes]]:
    return kernel_lines(_cases())


@live
@pytest.mark.parametrize("name", CASE_NAMES)
def test_live_kernel_lines(observed: tuple[dict[str, list[str]], dict[str, bytes]],
                           name: str) -> None:
    lines, _ = observed
    raw = _cases()[name]
    mine = [ours(name, raw, f, pfx(f)) for f in COMBOS]
    assert lines[name] == mine
    if name in EXPECTED:
        assert lines[name] == EXPECTED[name], "the kernel's lines changed"


@live
@pytest.mark.parametrize("name", ["input udp to fw", "input v6 udp to fw",
                                  "output udp from fw"])
def test_live_local_lines(observed: tuple[dict[str, list[str]], dict[str, bytes]],
                          name: str) -> None:
    lines, local = observed
    raw = local.get(name) or _local_cases()[name]
    assert lines[name] == [ours_local(name, raw, f, pfx(f)) for f in COMBOS]
