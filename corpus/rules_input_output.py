"""Rules for fw's own traffic: INPUT and OUTPUT drop by default; INPUT accepts
ESTABLISHED/RELATED and new SSH; OUTPUT accepts ESTABLISHED/RELATED and DNS queries.  The
client's SSH connection to fw works (fw answers through OUTPUT as ESTABLISHED); a SYN to
fw's port 23 is dropped at INPUT (no entry); fw's DNS query to the server and the answer
pass; fw's own SYN to the server's port 80 is dropped at OUTPUT (never sent)."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import FW, REQUIRES_RULES, Scenario, Send

RULES = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT
COMMIT"""
ssh = TcpFlow(client=("198.51.100.2", 40500), server=("198.51.100.1", 22))

SCENARIO = Scenario(
    name="rules_input_output",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    steps=[
        ssh.syn(delay=0.1),
        Send(FW, ssh.synack().packet, 0.1),
        ssh.ack("client", delay=0.1),
        Send(FW, ssh.data("server", b"SSH-2.0-fw\r\n").packet, 0.1),
        ("client", IP(src="198.51.100.2", dst="198.51.100.1")
         / TCP(sport=40501, dport=23, flags="S", seq=3), 0.1),
        Send(FW, IP(src="203.0.113.1", dst="203.0.113.2") / UDP(sport=40502, dport=53)
             / b"query", 0.1),
        ("server", IP(src="203.0.113.2", dst="203.0.113.1") / UDP(sport=53, dport=40502)
         / b"answer", 0.1),
        Send(FW, IP(src="203.0.113.1", dst="203.0.113.2")
             / TCP(sport=40503, dport=80, flags="S", seq=4), 0.1),
    ],
)
