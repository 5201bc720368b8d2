"""Active FTP through NAT with a real client and server: the client (198.51.100.2) is
masqueraded behind 203.0.113.1 (MASQUERADE on s0, raw ``CT --helper ftp``).  vsftpd serves
203.0.113.2; curl fetches a file actively with PORT.  The helper rewrites the PORT command
to the mapped address (``198,51,100,2`` becomes ``203,0,113,1``: one byte shorter, so every
later sequence and acknowledgment number of the control connection is adjusted) and
expects the server's data connection (from port 20) at 203.0.113.1, which is DNATed to the
client as it arrives (the expectation's ``follow_master``).  The transfer works."""

from statewall.lab.programs import vsftpd_server
from statewall.lab.scenario import Run, Scenario

RULES = """*raw
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o s0 -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i c0 -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
COMMIT"""

SERVER = vsftpd_server("/tmp/statewall-lab-natftp", "hello through NAT")

URL = "ftp://203.0.113.2/hello.txt"
CLIENTS = [
    ["curl", "-sS", "-m", "10", "-P", "-", "--disable-eprt", URL],       # PORT
]

SCENARIO = Scenario(
    name="nat_ftp_active_programs",
    description=__doc__,
    rules_v4=RULES,
    requires=("rules",),
    snapshots=8,                  # keeps kernel.json small enough to commit
    steps=[Run(client=c, server=SERVER, server_ready=0.5, timeout=20, quiet=0.5)
           for c in CLIENTS],
)
