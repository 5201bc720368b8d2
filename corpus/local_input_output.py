"""Traffic to and from fw itself, no rules: the client pings fw (INPUT; fw's own echo
reply is silenced, so the entry stays [UNREPLIED]); a TCP connection from the client to
fw's port 22 with fw's answers sent through OUTPUT; fw pings the server and opens a TCP
connection to it (OUTPUT, the answers come in through INPUT); IPv6 likewise."""

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import FW, Scenario, Send

ssh = TcpFlow(client=("198.51.100.2", 40510), server=("198.51.100.1", 22))
out = TcpFlow(client=("203.0.113.1", 40511), server=("203.0.113.2", 80))

SCENARIO = Scenario(
    name="local_input_output",
    description=__doc__,
    steps=[
        ("client", IP(src="198.51.100.2", dst="198.51.100.1") / ICMP(id=0x7070, seq=1), 0.1),
        ssh.syn(delay=0.1),
        Send(FW, ssh.synack().packet, 0.1),
        ssh.ack("client", delay=0.1),
        Send(FW, IP(src="203.0.113.1", dst="203.0.113.2") / ICMP(id=0x7171, seq=1), 0.1),
        ("server", IP(src="203.0.113.2", dst="203.0.113.1") / ICMP(type=0, id=0x7171, seq=1),
         0.1),
        Send(FW, out.syn().packet, 0.1),
        Send("server", out.synack().packet, 0.1),
        Send(FW, out.ack("client").packet, 0.1),
        Send(FW, out.data("client", b"GET /\r\n").packet, 0.1),
        Send(FW, IPv6(src="2001:db8:2::1", dst="2001:db8:2::2")
             / ICMPv6EchoRequest(id=0x7272, seq=1), 0.1),
        ("server", IPv6(src="2001:db8:2::2", dst="2001:db8:2::1")
         / ICMPv6EchoReply(id=0x7272, seq=1), 0.1),
    ],
)
