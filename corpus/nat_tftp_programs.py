"""TFTP through NAT with real programs: the client (198.51.100.2) is masqueraded behind
203.0.113.1 (raw ``CT --helper tftp``).  tftpd-hpa on 203.0.113.2 answers each request from
a new port to 203.0.113.1: the helper's expectation (NATed: it remembers the client's real
port) makes that answer RELATED and DNATs it to the client.  curl and tftp-hpa read a file,
tftp-hpa writes one."""

from statewall.lab.scenario import Run, Scenario

RULES = """*raw
-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o s0 -j MASQUERADE
COMMIT"""

D = "/tmp/statewall-lab-nattftp"
SERVER = ["sh", "-c", f"""set -e
mkdir -p {D}; chmod 1777 {D}
echo 'hello from tftpd through NAT' > {D}/hello.txt; chmod 644 {D}/hello.txt
rm -f {D}/up.txt
exec in.tftpd -L -c -a 203.0.113.2:69 -s {D}"""]

CLIENTS = [
    ["curl", "-sS", "-m", "10", "tftp://203.0.113.2/hello.txt"],
    ["tftp", "203.0.113.2", "-c", "get", "hello.txt", "/dev/stdout"],
    ["sh", "-c", "echo upload > /tmp/statewall-lab-nattftp-up.txt && "
                 "tftp 203.0.113.2 -c put /tmp/statewall-lab-nattftp-up.txt up.txt"],
]

SCENARIO = Scenario(
    name="nat_tftp_programs",
    description=__doc__,
    rules_v4=RULES,
    requires=("rules",),
    steps=[Run(client=c, server=SERVER, server_ready=0.5, timeout=20, quiet=0.5)
           for c in CLIENTS],
)
