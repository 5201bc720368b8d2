"""An incomplete IPv4 datagram: the first fragment only.  With net.ipv4.ipfrag_time lowered
to 3 s the queue expires (fw sends no ICMP for forwarded traffic); the last fragment
arriving 4 s later starts a new queue that never completes either; nothing is tracked.
A clean datagram afterwards is NEW."""

from scapy.layers.inet import IP, UDP, fragment

from statewall.lab.scenario import Scenario, Snapshot

C, S = "198.51.100.2", "203.0.113.2"
frags = fragment(IP(src=C, dst=S, id=0x7171) / UDP(sport=40260, dport=7006)
                 / (b"incomplete" * 100), fragsize=600)
assert len(frags) == 2

SCENARIO = Scenario(
    name="frag_ipv4_incomplete",
    description=__doc__,
    sysctls={"net.ipv4.ipfrag_time": 3},
    steps=[("client", frags[0], 4.0), Snapshot("4 s later"), ("client", frags[1], 0.2),
           ("client", IP(src=C, dst=S) / UDP(sport=40261, dport=7006) / b"clean", 0.1)],
)
