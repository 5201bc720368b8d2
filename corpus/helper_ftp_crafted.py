"""The FTP helper through the headline ruleset, crafted: raw ``-p tcp --dport 21 -j CT
--helper ftp``; filter FORWARD policy DROP, accept ESTABLISHED,RELATED, NEW only to tcp/21
and udp/69.  A control connection logs in, announces an active data port (PORT), the server
connects from port 20 (RELATED, forwarded); a second connection to a port nobody announced
is dropped; PASV/227 opens a passive data connection (RELATED), a second one to the same,
used-up port and one to port 8080 are dropped.  Then the hostile bits: a command cut short
("POR": the packet is dropped and its retransmission accepted), a PORT naming another host
(no expectation), EPRT/EPSV, and the same over IPv6."""

from statewall.lab.craft import TcpFlow
from statewall.lab.scenario import Scenario, Send, Snapshot

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

D = 0.1


def login(f):
    steps = f.handshake(delay=D)
    for side, data in (("server", b"220 hi\r\n"), ("client", b"USER ftp\r\n"),
                       ("server", b"331 pw\r\n"), ("client", b"PASS x\r\n"),
                       ("server", b"230 ok\r\n")):
        steps.append(f.data(side, data, delay=D))
    return steps


def data_conn(src, dst, opener):
    other = "server" if opener == "client" else "client"
    d = TcpFlow(client=src, server=dst, client_isn=0x11110000, server_isn=0x22220000)
    out = []
    for st in d.handshake(delay=D):
        out.append(Send(opener if st.side == "client" else other, st.packet, D))
    out.append(Send(opener, d.data("client", b"x" * 100).packet, D))
    out.append(Send(other, d.ack("server").packet, D))
    return out


def cmd(f, side, data, **kw):
    return f.data(side, data, delay=D, **kw)


f = TcpFlow(client=("198.51.100.2", 41021), server=("203.0.113.2", 21))
g = TcpFlow(client=("2001:db8:1::2", 41022), server=("2001:db8:2::2", 21))

STEPS = (
    login(f)
    + [cmd(f, "client", b"PORT 198,51,100,2,156,64\r\n"), cmd(f, "server", b"200 ok\r\n")]
    + data_conn(("203.0.113.2", 20), ("198.51.100.2", 40000), "server")
    + data_conn(("203.0.113.2", 20), ("198.51.100.2", 40001), "server")
    + [cmd(f, "client", b"PASV\r\n"),
       cmd(f, "server", b"227 Entering Passive Mode (203,0,113,2,117,48).\r\n")]
    + data_conn(("198.51.100.2", 45001), ("203.0.113.2", 30000), "client")
    + data_conn(("198.51.100.2", 45002), ("203.0.113.2", 30000), "client")
    + data_conn(("198.51.100.2", 45003), ("203.0.113.2", 8080), "client")
    + [Snapshot("after the data connections"),
       cmd(f, "client", b"POR", advance=False),
       cmd(f, "client", b"PORT 198,51,100,2,156,66\r\n"),
       cmd(f, "server", b"200 ok\r\n"),
       cmd(f, "client", b"PORT 192,0,2,9,156,67\r\n"),
       cmd(f, "server", b"200 ok\r\n"),
       cmd(f, "client", b"EPRT |1|198.51.100.2|40068|\r\n"),
       cmd(f, "server", b"200 ok\r\n"),
       cmd(f, "client", b"EPSV\r\n"),
       cmd(f, "server", b"229 Entering Extended Passive Mode (|||30001|)\r\n")]
    + data_conn(("198.51.100.2", 45004), ("203.0.113.2", 30001), "client")
    + login(g)
    + [cmd(g, "client", b"EPRT |2|2001:db8:1::2|40000|\r\n"), cmd(g, "server", b"200 ok\r\n")]
    + data_conn(("2001:db8:2::2", 20), ("2001:db8:1::2", 40000), "server")
    + [cmd(g, "client", b"EPSV\r\n"),
       cmd(g, "server", b"229 Entering Extended Passive Mode (|||30002|)\r\n")]
    + data_conn(("2001:db8:1::2", 45005), ("2001:db8:2::2", 30002), "client")
    + data_conn(("2001:db8:1::2", 45006), ("2001:db8:2::2", 30003), "client")
    + [Snapshot("end")]
)

SCENARIO = Scenario(
    name="helper_ftp_crafted",
    description=__doc__,
    rules_v4=RULES,
    rules_v6=RULES,
    requires=("rules",),
    snapshots=4,                 # keeps kernel.json small enough to commit
    steps=STEPS,
)
