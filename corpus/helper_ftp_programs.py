"""The FTP helper with real programs through the headline ruleset (raw ``CT --helper ftp``
for tcp/21; filter FORWARD policy DROP, accept ESTABLISHED,RELATED, NEW only to tcp/21 and
udp/69): vsftpd serves anonymous FTP on 203.0.113.2; the client fetches a file with curl
(passive: EPSV, then PASV; active: EPRT, then PORT), lftp (active and passive) and Python's
ftplib (active).  Every transfer works, each data connection being RELATED to its control
connection; a plain connection to port 8080 is dropped (curl gives up after 1 s)."""

import sys

from statewall.lab.programs import vsftpd_server
from statewall.lab.scenario import Run, Scenario

RULES = """*raw
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m udp --dport 69 -m conntrack --ctstate NEW -j ACCEPT
COMMIT"""

# vsftpd in the foreground, anonymous read-only, its files in a directory of its own
SERVER = vsftpd_server("/tmp/statewall-lab-ftp", "hello from vsftpd")

URL = "ftp://203.0.113.2/hello.txt"
FTPLIB = ("import ftplib, sys\n"
          "f = ftplib.FTP('203.0.113.2', timeout=10)\n"
          "f.login()\n"
          "f.set_pasv(False)\n"
          "f.retrbinary('RETR hello.txt', sys.stdout.buffer.write)\n"
          "f.quit()\n")
LFTP = "set net:timeout 5; set net:max-retries 1; set ftp:passive-mode {}; " \
       "open ftp://203.0.113.2; cat hello.txt"

CLIENTS = [
    ["curl", "-sS", "-m", "10", URL],                                    # EPSV
    ["curl", "-sS", "-m", "10", "--disable-epsv", URL],                  # PASV / 227
    ["curl", "-sS", "-m", "10", "-P", "198.51.100.2", URL],              # EPRT
    ["curl", "-sS", "-m", "10", "-P", "198.51.100.2", "--disable-eprt", URL],   # PORT
    ["lftp", "-c", LFTP.format("off")],
    ["lftp", "-c", LFTP.format("on")],
    [sys.executable, "-c", FTPLIB],
    ["curl", "-sS", "-m", "1", "http://203.0.113.2:8080/"],              # dropped
]

SCENARIO = Scenario(
    name="helper_ftp_programs",
    description=__doc__,
    rules_v4=RULES,
    requires=("rules",),
    snapshots=40,                 # keeps kernel.json small enough to commit
    steps=[Run(client=c, server=SERVER, server_ready=0.5, timeout=20, quiet=0.5)
           for c in CLIENTS],
)
