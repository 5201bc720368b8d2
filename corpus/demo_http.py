"""A real HTTP exchange: a Python HTTP server on the server, a Python client fetching one
page (the peers' own TCP stacks: real ISNs, options, delayed ACKs, FIN handshake)."""

import sys

from statewall.lab.scenario import Run, Scenario

SERVER = ("import http.server\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    protocol_version = 'HTTP/1.0'\n"
          "    def do_GET(self):\n"
          "        body = b'hello from the server\\n'\n"
          "        self.send_response(200)\n"
          "        self.send_header('Content-Length', str(len(body)))\n"
          "        self.end_headers()\n"
          "        self.wfile.write(body)\n"
          "class S(http.server.HTTPServer):\n"
          "    def server_bind(self):  # no getfqdn(): no resolver traffic\n"
          "        http.server.socketserver.TCPServer.server_bind(self)\n"
          "        self.server_name, self.server_port = '203.0.113.2', 8080\n"
          "S(('203.0.113.2', 8080), H).serve_forever()\n")
CLIENT = ("import urllib.request\n"
          "r = urllib.request.urlopen('http://203.0.113.2:8080/', timeout=10)\n"
          "print(r.status, r.read())\n")

SCENARIO = Scenario(
    name="demo_http",
    description=__doc__,
    steps=[Run(server=[sys.executable, "-c", SERVER], client=[sys.executable, "-c", CLIENT],
               server_ready=1.0, quiet=1.5)],
)
