"""The TFTP helper with real programs through the headline ruleset (raw ``CT --helper tftp``
for udp/69; filter FORWARD policy DROP, accept ESTABLISHED,RELATED, NEW only to tcp/21 and
udp/69): tftpd-hpa serves 203.0.113.2; the client reads a file with curl and with tftp-hpa,
and writes one with tftp-hpa.  The server answers each request from a new port: that answer
is RELATED (the request's expectation) and forwarded; the transfers work."""

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

D = "/tmp/statewall-lab-tftp"
SERVER = ["sh", "-c", f"""set -e
mkdir -p {D}; chmod 1777 {D}
echo 'hello from tftpd' > {D}/hello.txt; chmod 644 {D}/hello.txt; rm -f {D}/up.txt
exec in.tftpd -L -c -a 203.0.113.2:69 -s {D}"""]

CLIENTS = [
    ["curl", "-sS", "-m", "10", "tftp://203.0.113.2/hello.txt"],
    ["tftp", "203.0.113.2", "-c", "get", "hello.txt", "/dev/stdout"],
    ["sh", "-c", "echo upload > /tmp/statewall-lab-tftp-up.txt && "
                 "tftp 203.0.113.2 -c put /tmp/statewall-lab-tftp-up.txt up.txt"],
]

SCENARIO = Scenario(
    name="helper_tftp_programs",
    description=__doc__,
    rules_v4=RULES,
    requires=("rules",),
    steps=[Run(client=c, server=SERVER, server_ready=0.5, timeout=20, quiet=0.5)
           for c in CLIENTS],
)
