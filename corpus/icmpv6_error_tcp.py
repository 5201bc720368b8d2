"""ICMPv6 errors about an IPv6 TCP connection: a packet-too-big from a router on the
server side quoting the client's segment (RELATED, reply direction), a destination
unreachable from the client side quoting the server's segment (RELATED, original
direction); the connection goes on unchanged."""

from statewall.lab.craft import TcpFlow, icmp_error
from statewall.lab.scenario import Scenario

f = TcpFlow(client=("2001:db8:1::2", 40310), server=("2001:db8:2::2", 443))
steps = [*f.handshake(delay=0.1)]
cseg = f.data("client", b"\x16\x03\x01" + bytes(500), delay=0.1)
sseg = f.data("server", b"\x16\x03\x03" + bytes(300), delay=0.1)
steps += [cseg, sseg,
          ("server", icmp_error(cseg.packet, "2001:db8:2::fe", kind="frag-needed", mtu=1280),
           0.1),
          ("client", icmp_error(sseg.packet, "2001:db8:1::fe", kind="port-unreachable"), 0.1),
          f.ack("client", delay=0.1)]

SCENARIO = Scenario(name="icmpv6_error_tcp", description=__doc__, steps=steps)
