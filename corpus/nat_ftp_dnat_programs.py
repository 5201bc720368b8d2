"""An FTP server behind a port forward, with a real client and server: the client
(198.51.100.2) knows the server as 192.0.2.21, which fw DNATs to vsftpd on 203.0.113.2 (raw
``CT --helper ftp``).  curl fetches a file with PASV: the server's ``227 (203,0,113,2,...)``
is rewritten to ``192,0,2,21`` (one byte shorter: the rest of the control connection is
sequence-adjusted, in the reply direction), the helper expects the client at 192.0.2.21,
and that data connection is DNATed to the server like its master.  The transfer works."""

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
-A PREROUTING -i c0 -d 192.0.2.21 -p tcp --dport 21 -j DNAT --to-destination 203.0.113.2
COMMIT"""

SERVER = vsftpd_server("/tmp/statewall-lab-natftp2", "hello behind a port forward", pasv=(30010, 30019))

URL = "ftp://192.0.2.21/hello.txt"
CLIENTS = [
    ["curl", "-sS", "-m", "10", "--disable-epsv", URL],                  # PASV / 227
]

SCENARIO = Scenario(
    name="nat_ftp_dnat_programs",
    description=__doc__,
    rules_v4=RULES,
    requires=("rules",),
    snapshots=8,                  # keeps kernel.json small enough to commit
    steps=[Run(client=c, server=SERVER, server_ready=0.5, timeout=20, quiet=0.5)
           for c in CLIENTS],
)
