"""An ssh-like long-lived TCP session between real programs: a line-echo server and a
client that opens one connection with keepalive on, sends a short line every 0.7 s for
about 5 s (each echoed back), then closes.  Small segments both ways, delayed ACKs, a FIN
handshake at the end."""

import sys

from statewall.lab.scenario import Run, Scenario

SERVER = ("import socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('203.0.113.2', 2222)); s.listen(1)\n"
          "c, _ = s.accept()\n"
          "f = c.makefile('rwb', buffering=0)\n"
          "for line in f:\n"
          "    f.write(b'echo ' + line)\n"
          "c.close()\n")
CLIENT = ("import socket, time\n"
          "c = socket.create_connection(('203.0.113.2', 2222), timeout=10)\n"
          "c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)\n"
          "c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
          "f = c.makefile('rwb', buffering=0)\n"
          "for i in range(7):\n"
          "    f.write(b'keystroke %d\\n' % i)\n"
          "    print(f.readline().decode().strip())\n"
          "    time.sleep(0.7)\n"
          "c.close()\n")

SCENARIO = Scenario(
    name="prog_tcp_session",
    description=__doc__,
    steps=[Run(server=[sys.executable, "-c", SERVER], client=[sys.executable, "-c", CLIENT],
               server_ready=0.8, quiet=1.5, timeout=30)],
)
