"""The time match against the kernel's clock: a date range that ended, one that runs, the
whole day, an empty weekday set, a time range that wraps past midnight, a start equal to
the stop (the whole day), and rules whose answer depends on when the recording was made
(weekdays, odd days of the month, daytime hours, with and without --kerneltz): replayed
with the capture's timestamps, statewall must give the kernel's answer for that moment."""

from scapy.layers.inet import IP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

C, S = "198.51.100.2", "203.0.113.2"
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp --dport 1 -m time --datestop 2020-01-01 -j ACCEPT
-A FORWARD -p udp --dport 2 -m time --datestart 2020-01-01T00:00:00 -j ACCEPT
-A FORWARD -p udp --dport 3 -m time --timestart 00:00 --timestop 23:59:59 -j ACCEPT
-A FORWARD -p udp --dport 4 -m time ! --weekdays Mon,Tue,Wed,Thu,Fri,Sat,Sun -j ACCEPT
-A FORWARD -p udp --dport 5 -m time --weekdays Mon,Wed,Fri,Sun -j ACCEPT
-A FORWARD -p udp --dport 6 -m time --timestart 12:00 --timestop 11:59:59 -j ACCEPT
-A FORWARD -p udp --dport 7 -m time --timestart 12:00 --timestop 12:00 -j ACCEPT
-A FORWARD -p udp --dport 8 -m time --monthdays 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 -j ACCEPT
-A FORWARD -p udp --dport 9 -m time --timestart 06:00 --timestop 18:00 -j ACCEPT
-A FORWARD -p udp --dport 10 -m time --timestart 18:00 --timestop 06:00 --weekdays Tue,Thu,Sat --contiguous -j ACCEPT
-A FORWARD -p udp --dport 11 -m time --timestart 06:00 --timestop 18:00 --kerneltz -j ACCEPT
-A FORWARD -p udp --dport 12 -m time ! --monthdays 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 -j ACCEPT
COMMIT"""

steps = [("client", IP(src=C, dst=S) / UDP(sport=40700 + p, dport=p) / b"t", 0.1)
         for p in range(1, 13)]

SCENARIO = Scenario(name="rules_time", description=__doc__, rules_v4=RULES,
                    requires=(REQUIRES_RULES,), steps=steps)
