"""The replay benchmark with a stateful rule set of 12 rules (issue 3's target: no less than
1/4 of the bare loop's packets/s), printed next to the bare loop measured in the same run.

Run from bench/run.py; standalone: ``python bench/rules.py CAPTURE``.
"""

from __future__ import annotations

import gc
import sys
import time

from statewall import gcpolicy
from statewall.conntrack.sysctl import Settings
from statewall.firewall import Firewall
from statewall.host import HostModel, parse_iface
from statewall.io.capture import open_capture
from statewall.packet.decode import decode_ip
from statewall.packet.link import l3_offset
from statewall.rules.parse import parse_ruleset

RULES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 123 -j CT --notrack
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 22 -j MARK --set-mark 0x1
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -m limit --limit 10/second -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -p tcp ! --syn -m conntrack --ctstate NEW -j DROP
-A FORWARD -s 192.0.2.0/24 -j DROP
-A FORWARD -p tcp -m multiport --dports 22,25,443 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p tcp --dport 80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
"""


def replay_with_rules(path: str) -> tuple[int, float]:
    host = HostModel([parse_iface("eth0=198.51.100.254/24"),
                      parse_iface("eth1=203.0.113.254/24")])
    fw = Firewall(Settings(), rules4=parse_ruleset(RULES, "bench.rules", 4), host=host)
    old = gcpolicy.for_packet_loop()      # as statewall replay does (statewall/gcpolicy.py)
    t0 = time.perf_counter()
    n = 0
    with open_capture(path) as cap:
        for fr in cap:
            off = l3_offset(fr.linktype, fr.data)[0]
            pkt = decode_ip(fr.data[off:])
            pkt.iface = "eth0" if pkt.src[0] == 198 else "eth1"
            fw.process(pkt, fr.ts)
            n += 1
    dt = time.perf_counter() - t0
    gc.set_threshold(*old)
    gc.unfreeze()
    return n, dt


if __name__ == "__main__":
    n, dt = replay_with_rules(sys.argv[1])
    print(f"{n / dt:,.0f} packets/s with {RULES.count('-A ')} rules")
