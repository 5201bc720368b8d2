"""A real UDP datagram from the client to a closed port of the server; the server's stack
answers with ICMP port unreachable, which fw classifies as RELATED (reply direction)."""

import sys

from statewall.lab.scenario import Run, Scenario

SEND = ("import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('198.51.100.2', 40001))\n"
        "s.sendto(b'is anybody there?', ('203.0.113.2', 33434))\n"
        "s.settimeout(2)\n"
        "try:\n"
        "    s.recv(100)\n"
        "except OSError as e:\n"
        "    print('recv:', e)\n")

SCENARIO = Scenario(
    name="demo_icmp_error",
    description=__doc__,
    steps=[Run(client=[sys.executable, "-c", SEND], quiet=0.5)],
)
