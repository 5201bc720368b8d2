"""``make demo`` / ``statewall demo``: the seed text's walk-through, on captures recorded from
the real kernel (corpus/demo_*), printing what conntrack made of every packet and the state
table after it.

Owns: the demo's story and layout. Must not know: how tracking works (it drives the
``Firewall`` facade like ``replay`` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .conntrack.conn import ctinfo_state
from .conntrack.format import conntrack_line, ip_conntrack_line
from .conntrack.sysctl import Settings
from .firewall import Firewall
from .io.capture import open_capture
from .packet.decode import decode_ip
from .packet.describe import describe
from .packet.link import l3_offset

CORPUS = Path(__file__).resolve().parents[2] / "corpus"

STORIES = [
    ("demo_udp_dns", "UDP: a DNS query, its reply 11 s later, then a second exchange",
     "The query makes a NEW entry marked [UNREPLIED] with 30 s to live; the reply is\n"
     "ESTABLISHED and clears [UNREPLIED]; traffic both ways 2 s later makes it a stream:\n"
     "[ASSURED] with the stream timeout (120 s today, 180 s in 2001)."),
    ("demo_tcp_session", "TCP: SYN, SYN/ACK, ACK, data both ways, FIN from each side",
     "SYN_SENT (120 s) -> SYN_RECV (60 s) -> ESTABLISHED [ASSURED] (5 days) -> FIN_WAIT ->\n"
     "CLOSE_WAIT -> LAST_ACK -> TIME_WAIT (120 s). The SYN/ACK is already ESTABLISHED for\n"
     "the rules: conntrack states are not TCP states."),
    ("demo_ping", "ICMP: ping -c 3",
     "Echo request NEW, echo reply ESTABLISHED; the entry lives 30 s after the last packet."),
    ("demo_icmp_error", "ICMP error: a UDP datagram to a closed port",
     "The server's port-unreachable quotes the datagram; conntrack finds the UDP entry through\n"
     "the quoted header and classifies the error as RELATED."),
]


def _rule(title: str) -> str:
    return f"\n{'=' * 78}\n{title}\n{'=' * 78}"


def play(name: str, profile: str = "linux") -> list[str]:
    """Replay one demo capture; return the printed lines."""
    lines: list[str] = []
    path = CORPUS / name / "capture.pcapng"
    fw = Firewall(Settings(profile))
    l4 = fw.tracker.l4
    t0 = None
    prev = 0.0
    fmt = ip_conntrack_line if profile == "linux-2.4" else conntrack_line

    def table(now: float) -> None:
        for ct in fw.tracker.entries(now):
            lines.append("      " + fmt(ct, now, l4[ct.proto]).rstrip())

    with open_capture(path) as cap:
        for n, fr in enumerate(cap, 1):
            if t0 is None:
                t0 = prev = fr.ts
            if fr.ts - prev >= 5:
                lines.append(f"\n   (t={fr.ts - t0:6.3f}s, {fr.ts - prev:.0f} s of silence: "
                             "the table just before the next packet)")
                table(fr.ts - 0.001)
            prev = fr.ts
            off = l3_offset(fr.linktype, fr.data)[0]
            pkt = decode_ip(fr.data[off:])
            pkt.iface = fr.iface_name
            d = fw.process(pkt, fr.ts)
            seen = d.pkt or pkt
            state = ctinfo_state(seen.ct, seen.ctinfo) if d.pkt is not None else "-"
            lines.append(f"\n#{n} t={fr.ts - t0:6.3f}s in {fr.iface_name}: {describe(pkt)}")
            lines.append(f"   -> {d.verdict}, ctstate {state}"
                         + (f" ({d.reason})" if d.reason else ""))
            table(fr.ts)
    return lines


def main() -> int:
    if not CORPUS.is_dir():
        print(f"statewall demo: the bundled captures are not at {CORPUS}", file=sys.stderr)
        return 1
    print("statewall demo: captures recorded from the Linux kernel in network namespaces")
    print("(corpus/), replayed through statewall's connection tracker. After every packet:")
    print("what conntrack made of it, and the whole state table (conntrack -L).")
    for name, title, story in STORIES:
        print(_rule(title))
        print(story)
        print(f"$ statewall replay corpus/{name}/capture.pcapng --trace - --table")
        for line in play(name):
            print(line)
    print(_rule("The same DNS exchange with the 2001 kernel (--profile linux-2.4)"))
    print("The seed text's numbers: 19 s left after 11 s unanswered, 180 s once ASSURED.")
    print("$ statewall replay corpus/demo_udp_dns/capture.pcapng --profile linux-2.4 "
          "--format ip_conntrack --table")
    for line in play("demo_udp_dns", "linux-2.4"):
        print(line)
    print("\nTry: statewall replay CAPTURE --trace - --events - --table "
          "[--sysctl net.netfilter.nf_conntrack_udp_timeout=3] [--now SECONDS]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
