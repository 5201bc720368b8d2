"""Fragments through NAT: conntrack reassembles, NAT rewrites the whole datagram (the UDP
checksum covers all of it), and it leaves in fragments again cut where the original ones
were (IPv4: same identification; IPv6: a new one, as the kernel picks it).  IPv4 through
MASQUERADE on s0, IPv6 likewise; the unfragmented answers come back."""

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, fragment6, IPv6ExtHdrFragment

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S, FW = "198.51.100.2", "203.0.113.2", "203.0.113.1"
C6, S6, FW6 = "2001:db8:1::2", "2001:db8:2::2", "2001:db8:2::1"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o s0 -j MASQUERADE
COMMIT"""

big = IP(src=C, dst=S, id=4321) / UDP(sport=46000, dport=4000) / (b"x" * 2000)
frags = fragment(big, fragsize=800)
big6 = IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=46001, dport=4000) \
    / (b"y" * 2000)
frags6 = fragment6(big6, 900)

steps: list[object] = [("client", f, 0.15) for f in frags]
steps.append(("server", IP(src=S, dst=FW, id=7) / UDP(sport=4000, dport=46000) / b"ok", 0.2))
steps += [("client", f, 0.15) for f in frags6]
steps.append(("server", IPv6(src=S6, dst=FW6) / UDP(sport=4000, dport=46001) / b"ok6", 0.2))

SCENARIO = Scenario(
    name="nat_fragments",
    description=__doc__,
    rules_v4=NAT,
    rules_v6=NAT,
    requires=(REQUIRES_RULES,),
    steps=steps,
)
