"""DNAT (port forwarding) in PREROUTING, every form of --to-destination: a TCP port forward
(203.0.113.1:8080 -> 198.51.100.2:80; the handshake completes, the server's answers leave
as 203.0.113.1:8080); a UDP forward to a port range (the first port of the range - a
destination manip searches from offset 0 -, the next when two public ports land on the
same tuple); an address range (the address is the kernel's jhash of the addresses: the
same in statewall), with and without --persistent; a port range with a base port
(7000-7009 -> 8000-8009/7000: port 7005 maps to 8005)."""

from scapy.layers.inet import IP, TCP, UDP

from statewall.lab.scenario import REQUIRES_RULES, Scenario

FW, C = "203.0.113.1", "198.51.100.2"
R = ["203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5", "203.0.113.6"]
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 8080 -j DNAT --to-destination 198.51.100.2:80
-A PREROUTING -i s0 -d 203.0.113.1 -p udp --dport 5000:5001 -j DNAT --to-destination 198.51.100.2:6000-6009
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 9000 -j DNAT --to-destination 198.51.100.2-198.51.100.9
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 9001 -j DNAT --to-destination 198.51.100.2-198.51.100.9 --persistent
-A PREROUTING -i s0 -d 203.0.113.1 -p tcp --dport 7000:7009 -j DNAT --to-destination 198.51.100.2:8000-8009/7000
COMMIT"""


def syn(src: str, sport: int, dport: int) -> IP:
    return IP(src=src, dst=FW, id=sport) / TCP(sport=sport, dport=dport, flags="S", seq=sport)


steps: list[object] = [
    ("server", syn(R[0], 41000, 8080), 0.2),
    ("client", IP(src=C, dst=R[0], id=1) / TCP(sport=80, dport=41000, flags="SA", seq=900,
                                                ack=41001), 0.2),
    ("server", IP(src=R[0], dst=FW, id=2) / TCP(sport=41000, dport=8080, flags="A", seq=41001,
                                                 ack=901), 0.2),
    ("server", IP(src=R[0], dst=FW, id=3) / UDP(sport=41001, dport=5000) / b"u1", 0.2),
    ("server", IP(src=R[0], dst=FW, id=4) / UDP(sport=41001, dport=5001) / b"u2", 0.2),
    ("client", IP(src=C, dst=R[0], id=5) / UDP(sport=6001, dport=41001) / b"r2", 0.2),
    ("client", IP(src=C, dst=R[0], id=6) / UDP(sport=6000, dport=41001) / b"r1", 0.2),
]
steps += [("server", syn(r, 42000 + i, 9000), 0.15) for i, r in enumerate(R)]
steps += [("server", syn(r, 43000 + i, 9001), 0.15) for i, r in enumerate(R)]
steps += [("server", syn(R[0], 44000, 7005), 0.2), ("server", syn(R[1], 44001, 7009), 0.2)]

SCENARIO = Scenario(
    name="nat_dnat_portfwd",
    description=__doc__,
    rules_v4=RULES,
    requires=(REQUIRES_RULES,),
    snapshots=2,                  # keeps kernel.json small enough to commit
    steps=steps,
)
