"""ipset: -m set and -j SET against fw's own sets.  A source in a blocked network is
dropped, except inside its nomatch part, which a list:set with --return-nomatch accepts; a
UDP datagram to a listed server port adds its source to a timeout set (SET --add-set), so
that source's next datagram to any port passes; a bitmap:port set accepts SSH and not
telnet; a hash:ip,port element for tcp:80 accepts a web SYN (and remembers its source)."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

S = "203.0.113.2"
IPSETS = """create blocked hash:net family inet hashsize 1024 maxelem 65536
add blocked 192.0.2.0/24
add blocked 192.0.2.128/25 nomatch
create web hash:ip,port family inet hashsize 1024 maxelem 65536
add web 203.0.113.2,tcp:80
add web 203.0.113.2,udp:53
create seen hash:ip family inet hashsize 1024 maxelem 65536 timeout 60
create ports bitmap:port range 0-1024
add ports 22
create all list:set size 8
add all blocked"""
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m set --match-set blocked src -j DROP
-A FORWARD -m set --match-set seen src -j ACCEPT
-A FORWARD -m set --match-set web dst,dst -j SET --add-set seen src --exist
-A FORWARD -m set --match-set web dst,dst -j ACCEPT
-A FORWARD -m set --match-set all src --return-nomatch -j ACCEPT
-A FORWARD -p tcp -m set --match-set ports dst -j ACCEPT
COMMIT"""


def udp(src: str, sport: int, dport: int) -> tuple[str, object, float]:
    return ("client", IP(src=src, dst=S) / UDP(sport=sport, dport=dport) / b"x", 0.1)


def syn(src: str, sport: int, dport: int) -> tuple[str, object, float]:
    return ("client", IP(src=src, dst=S) / TCP(sport=sport, dport=dport, flags="S"), 0.1)


steps = [udp("192.0.2.5", 40600, 53),          # blocked network: dropped
         udp("192.0.2.200", 40601, 9),         # its nomatch part: accepted (return-nomatch)
         udp("198.51.100.2", 40602, 9),        # nothing says yes: dropped
         udp("198.51.100.2", 40603, 53),       # web udp:53: SET adds the source, accepted
         udp("198.51.100.2", 40604, 9),        # now in "seen": accepted
         syn("198.51.100.3", 40605, 22),       # bitmap:port 22: accepted
         syn("198.51.100.3", 40606, 23),       # dropped
         syn("198.51.100.4", 40607, 80)]       # web tcp:80: accepted, source remembered

SCENARIO = Scenario(name="rules_ipset", description=__doc__, rules_v4=RULES, ipsets=IPSETS,
                    requires=(REQUIRES_RULES,), steps=steps)
