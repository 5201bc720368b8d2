"""A UDP stream (RTP-like): datagrams both ways every 0.4 s for 3 s.  The first answer
clears [UNREPLIED]; once traffic has gone both ways for more than 2 s the entry is
[ASSURED] with nf_conntrack_udp_timeout_stream (120 s)."""

from scapy.layers.inet import IP, UDP

from statewall.lab.scenario import Scenario, Send

C, S = "198.51.100.2", "203.0.113.2"
steps = []
for i in range(8):
    steps.append(Send("client", IP(src=C, dst=S, id=100 + i) / UDP(sport=16384, dport=16386)
                      / (bytes([0x80, 0, 0, i]) + bytes(160)), delay=0.2))
    steps.append(Send("server", IP(src=S, dst=C, id=900 + i) / UDP(sport=16386, dport=16384)
                      / (bytes([0x80, 0, 1, i]) + bytes(160)), delay=0.2))

SCENARIO = Scenario(name="udp_stream", description=__doc__, steps=steps)
