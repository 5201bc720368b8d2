"""The seed text's UDP walk-through: a DNS query, no answer for 11 s (the entry shows 19 s
left 10.5 s in), the reply (UNREPLIED goes, timeout back to 30), then a second query+reply
3 s later (now a stream: ASSURED and the stream timeout, 120 s on modern kernels, 180 s in
2.4).  Listing timeouts are floor(seconds left), so snapshots are taken half a second early."""

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP

from statewall.lab.scenario import Scenario, Send, Sleep, Snapshot

C, S = "198.51.100.2", "203.0.113.2"


def query(qid: int) -> IP:
    return IP(src=C, dst=S, id=qid) / UDP(sport=1032, dport=53) / DNS(
        id=qid, rd=1, qd=DNSQR(qname="www.example.com", qtype="A"))


def reply(qid: int) -> IP:
    return IP(src=S, dst=C, id=qid + 0x4000) / UDP(sport=53, dport=1032) / DNS(
        id=qid, qr=1, aa=1, rd=1, ra=1, qd=DNSQR(qname="www.example.com", qtype="A"),
        an=DNSRR(rrname="www.example.com", type="A", ttl=300, rdata="192.0.2.80"))


SCENARIO = Scenario(
    name="demo_udp_dns",
    description=__doc__,
    steps=[
        Send("client", query(0x1001), delay=10.5),
        Snapshot("10.5 s after the query, no reply yet (seed: 19 s left)"),
        Sleep(0.5),
        Send("server", reply(0x1001), delay=1.5),
        Snapshot("1.5 s after the reply (seed: 28 s left, no UNREPLIED)"),
        Sleep(1.5),
        Send("client", query(0x1002), delay=0.2),
        Send("server", reply(0x1002), delay=2.5),
        Snapshot("2.5 s after the second reply (seed: ASSURED, 177 s of 180)"),
    ],
)
