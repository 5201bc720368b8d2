"""curl against a Python HTTP server across fw: the peers' own TCP stacks (real ISNs, SACK,
timestamps, window scaling, delayed ACKs), an HTTP/1.1 request with keep-alive off, the
response, both FINs."""

import sys

from statewall.lab.scenario import Run, Scenario

SERVER = ("import http.server\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    protocol_version = 'HTTP/1.1'\n"
          "    def do_GET(self):\n"
          "        body = b'statewall lab ' * 64\n"
          "        self.send_response(200)\n"
          "        self.send_header('Content-Length', str(len(body)))\n"
          "        self.send_header('Connection', 'close')\n"
          "        self.end_headers()\n"
          "        self.wfile.write(body)\n"
          "    def log_message(self, *a):\n"
          "        pass\n"
          "class S(http.server.HTTPServer):\n"
          "    def server_bind(self):  # no getfqdn(): no resolver traffic\n"
          "        http.server.socketserver.TCPServer.server_bind(self)\n"
          "        self.server_name, self.server_port = '203.0.113.2', 8000\n"
          "S(('203.0.113.2', 8000), H).serve_forever()\n")

SCENARIO = Scenario(
    name="prog_curl_http",
    description=__doc__,
    steps=[Run(server=[sys.executable, "-c", SERVER],
               client=["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://203.0.113.2:8000/index.html"],
               server_ready=1.0, quiet=1.5)],
)
