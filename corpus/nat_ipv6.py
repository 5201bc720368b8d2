"""IPv6 NAT: SNAT of a client network to fw's address with a port range (ports kept when in
range and free, moved when they clash), DNAT of a port forward, ICMPv6 echo with its
identifier, and ICMPv6 errors about translated packets - a destination unreachable from the
server quoting an SNATed datagram, a packet too big from the inside host quoting a DNATed
one - translated outside and inside, their checksums recomputed."""

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, \
    ICMPv6PacketTooBig, IPv6
from scapy.packet import raw

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, C2, S, FW = "2001:db8:1::2", "2001:db8:1::3", "2001:db8:2::2", "2001:db8:2::1"
NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i s0 -d 2001:db8:2::1 -p tcp --dport 8080 -j DNAT --to-destination [2001:db8:1::2]:80
-A POSTROUTING -o s0 -s 2001:db8:1::/64 -p udp -j SNAT --to-source [2001:db8:2::1]:47000-47001
-A POSTROUTING -o s0 -s 2001:db8:1::/64 -j SNAT --to-source 2001:db8:2::1
COMMIT"""

U1 = IPv6(src=C, dst=S) / UDP(sport=47000, dport=53) / b"q1"
U2 = IPv6(src=C2, dst=S) / UDP(sport=47000, dport=53) / b"q2"
U2_NAT = IPv6(src=FW, dst=S, hlim=63) / UDP(sport=47001, dport=53) / b"q2"
T1 = IPv6(src=S, dst=FW) / TCP(sport=47002, dport=8080, flags="S", seq=3)
T1_IN = IPv6(src=S, dst=C, hlim=63) / TCP(sport=47002, dport=80, flags="S", seq=3)

SCENARIO = Scenario(
    name="nat_ipv6",
    description=__doc__,
    rules_v6=NAT,
    requires=(REQUIRES_RULES,),
    steps=[
        ("client", U1, 0.2),
        ("client", U2, 0.2),
        ("server", IPv6(src=S, dst=FW) / UDP(sport=53, dport=47001) / b"a2", 0.2),
        ("server", IPv6(src=S, dst=FW) / ICMPv6DestUnreach(code=4) / raw(U2_NAT), 0.2),
        ("client", IPv6(src=C, dst=S) / ICMPv6EchoRequest(id=77, seq=1, data=b"ping"), 0.2),
        ("server", IPv6(src=S, dst=FW) / ICMPv6EchoReply(id=77, seq=1, data=b"ping"), 0.2),
        ("server", T1, 0.2),
        ("client", IPv6(src=C, dst=S) / ICMPv6PacketTooBig(mtu=1280) / raw(T1_IN), 0.2),
    ],
)
