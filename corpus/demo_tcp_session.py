"""A complete TCP session through fw, as two Linux hosts would play it: SYN, SYN/ACK, ACK,
an HTTP request and response with their ACKs, FIN/ACK from the client, ACK, FIN/ACK from
the server, last ACK (the entry ends in TIME_WAIT).  Options: MSS, SACK-permitted,
timestamps, window scale 7."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Snapshot

f = TcpFlow(client=("198.51.100.2", 1311), server=("203.0.113.2", 80))
REQUEST = b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: statewall-lab\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            b"hello, world\n")

SCENARIO = Scenario(
    name="demo_tcp_session",
    description=__doc__,
    steps=[
        f.syn(delay=0.1),
        f.synack(delay=0.1),
        f.ack("client", delay=0.1),
        f.data("client", REQUEST, delay=0.1),
        f.ack("server", delay=0.1),
        f.data("server", RESPONSE, delay=0.1),
        f.ack("client", delay=0.1),
        f.fin("client", delay=0.1),
        f.ack("server", delay=0.1),
        f.fin("server", delay=0.1),
        f.ack("client", delay=0.5),
        Snapshot("0.5 s after the last ACK"),
    ],
)
