"""Bad L4 checksums (fw's veth has rx checksum offload off, so the kernel verifies them like
for a real NIC without offload; nf_conntrack_checksum=1): a TCP SYN, a UDP datagram and an
ICMP echo request with wrong checksums are INVALID and create no entry; a UDP datagram
with checksum 0 (none) is fine; then the same TCP SYN with a correct checksum is NEW."""

from scapy.layers.inet import ICMP, IP, TCP, UDP

from statewall.lab.scenario import Scenario

C, S = "198.51.100.2", "203.0.113.2"

SCENARIO = Scenario(
    name="checksum_invalid",
    description=__doc__,
    steps=[
        ("client", IP(src=C, dst=S) / TCP(sport=40400, dport=80, flags="S", seq=1, chksum=0x1234), 0.1),
        ("client", IP(src=C, dst=S) / UDP(sport=40401, dport=53, chksum=0x1234) / b"bad", 0.1),
        ("client", IP(src=C, dst=S) / ICMP(type=8, id=7, seq=1, chksum=0x1234) / b"bad", 0.1),
        ("client", IP(src=C, dst=S) / UDP(sport=40402, dport=53, chksum=0) / b"no checksum", 0.1),
        ("client", IP(src=C, dst=S) / TCP(sport=40400, dport=80, flags="S", seq=1), 0.1),
    ],
)
