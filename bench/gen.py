"""Generate a benchmark capture: many concurrent TCP flows, each a full session
(handshake, data both ways, close), interleaved, as Ethernet frames in a pcap file.

Built with struct (no scapy): correct IPv4 and TCP checksums, realistic options on SYNs.
"""

from __future__ import annotations

import random
import struct
import sys
from typing import BinaryIO, Iterator

from statewall.io.capture import PcapWriter
from statewall.packet.checksum import inet_checksum, pseudo_sum, ones_sum

ETH = bytes.fromhex("020000000101" "020000000102" "0800")
SYN_OPTS = bytes.fromhex("020405b4" "0402" "080a000000010000000001030307")  # MSS SACKOK TS NOP WS7


def _ip_tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
            win: int, payload: bytes = b"", opts: bytes = b"") -> bytes:
    doff = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, win, 0, 0) + opts + payload
    s = ones_sum(tcp) + pseudo_sum(src, dst, 6, len(tcp))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    csum = ~s & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    return ip + tcp


def flow_packets(i: int, rng: random.Random, data_rounds: int) -> list[bytes]:
    """One TCP session between a client and a server, as IP datagrams in order."""
    c = bytes([198, 51, 100, 2 + (i >> 16) % 200]) if False else bytes([198, 51, 100, 1 + i % 250])
    s = bytes([203, 0, 113, 1 + (i // 250) % 250])
    sport = 1024 + (i * 7919) % 60000
    dport = 80
    cs, ss = rng.getrandbits(32), rng.getrandbits(32)
    out = [
        _ip_tcp(c, s, sport, dport, cs, 0, 0x02, 64240, opts=SYN_OPTS),
        _ip_tcp(s, c, dport, sport, ss, cs + 1, 0x12, 65160, opts=SYN_OPTS),
    ]
    cs += 1
    ss += 1
    out.append(_ip_tcp(c, s, sport, dport, cs, ss, 0x10, 502))
    for _ in range(data_rounds):
        req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
        out.append(_ip_tcp(c, s, sport, dport, cs, ss, 0x18, 502, req))
        cs += len(req)
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + b"x" * 300
        out.append(_ip_tcp(s, c, dport, sport, ss, cs, 0x18, 509, resp))
        ss += len(resp)
        out.append(_ip_tcp(c, s, sport, dport, cs, ss, 0x10, 502))
    out.append(_ip_tcp(c, s, sport, dport, cs, ss, 0x11, 502))
    cs += 1
    out.append(_ip_tcp(s, c, dport, sport, ss, cs, 0x11, 509))
    ss += 1
    out.append(_ip_tcp(c, s, sport, dport, cs, ss, 0x10, 502))
    return out


def generate(f: BinaryIO, packets: int, concurrent: int = 2000, seed: int = 1) -> int:
    """Write at least ``packets`` frames; ``concurrent`` flows interleaved. Returns count."""
    rng = random.Random(seed)
    w = PcapWriter(f, nanosecond=False)
    active: list[Iterator[bytes]] = []
    flow = 0
    n = 0
    t = 1_700_000_000 * 10**9
    while n < packets:
        while len(active) < concurrent:
            active.append(iter(flow_packets(flow, rng, rng.randint(2, 6))))
            flow += 1
        k = rng.randrange(len(active))
        p = next(active[k], None)
        if p is None:
            active[k] = active[-1]
            active.pop()
            continue
        t += 20_000          # 20 µs apart
        w.write(ETH + p, t)
        n += 1
    return n


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as out:
        print(generate(out, int(sys.argv[2]) if len(sys.argv) > 2 else 300_000))
