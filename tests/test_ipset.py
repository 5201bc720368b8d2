"""ipset: ``ipset save`` files (statewall/ipset), ``-m set`` and ``-j SET`` (rules/ext/ipset.py).

The kernel's answers for a rule set over real sets are in corpus/rules_ipset (recorded in a
namespace with ipset and iptables; tests/test_kernel_corpus.py replays it). Here: the save
format, the element rules the kernel applies (the most specific network first, nomatch and
--return-nomatch, protocols and ports, directions, families, bitmap ranges, list:set order,
timeouts, --exist, maxelem), the rule texts as iptables 1.8.9 prints them (taken from the
real iptables in a namespace), and the command-line options.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import raw

from statewall.conntrack.sysctl import Settings
from statewall.firewall import Firewall
from statewall.io.config import LoadError, load_ipsets
from statewall.ipset import load
from statewall.ipset.sets import change, matches
from statewall.live.config import Config, RulesError, load_rules
from statewall.packet.decode import decode_ip
from statewall.rules.errors import ConfigError
from statewall.rules.listing import list_ruleset
from statewall.rules.parse import load as load_rules_text
from statewall.rules.save import save

SAVE = """create blocked hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1
add blocked 192.0.2.0/24
add blocked 192.0.2.128/25 nomatch
add blocked 192.0.2.192/26
create web hash:ip,port family inet hashsize 1024 maxelem 65536
add web 203.0.113.2,tcp:80
add web 203.0.113.2,udp:53
add web 203.0.113.2,icmp:echo-request
add web 203.0.113.3,8080-8081
create t hash:ip family inet hashsize 1024 maxelem 2 timeout 300
add t 198.51.100.9 timeout 19
create ports bitmap:port range 0-1024
add ports 22
create hosts bitmap:ip range 198.51.100.0/28
add hosts 198.51.100.3
create six hash:ip family inet6
add six 2001:db8::1
create masked hash:ip family inet netmask 24
add masked 198.51.100.77
create pair hash:net,net family inet
add pair 198.51.100.0/24,203.0.113.0/24
create all list:set size 8
add all masked
add all blocked
"""


def pkt(p: object) -> object:
    return decode_ip(raw(p))


def udp(src: str, dst: str = "203.0.113.2", dport: int = 53, sport: int = 1000) -> object:
    return pkt(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport))


def test_save_file_types_and_elements() -> None:
    reg = load(SAVE, "sets.save")
    assert sorted(reg.sets) == ["all", "blocked", "hosts", "masked", "pair", "ports", "six",
                                "t", "web"]
    assert reg.sets["blocked"].cidrs == [[26, 25, 24]]
    assert len(reg.sets["web"].elems) == 5                # 8080-8081 is two elements
    assert reg.sets["all"].members == ["masked", "blocked"]
    assert reg.sets["masked"].elems.keys() == {(bytes([198, 51, 100, 0]),)}


@pytest.mark.parametrize("text, line, why", [
    ("create a hash:mac", 1, "set type 'hash:mac' is not supported by statewall"),
    ("create a hash:ip\nadd b 1.2.3.4", 2, "does not exist: b"),
    ("create a hash:ip\nadd a 2001:db8::1", 2, "not an IPv4 address"),
    ("create a hash:ip\nadd a 198.51.100.1 timeout 5", 2, "without timeout support"),
    ("create a hash:ip\nadd a 198.51.100.1 nomatch", 2, "nomatch is only for net types"),
    ("create a hash:ip maxelem 1\nadd a 198.51.100.1\nadd a 198.51.100.2", 3, "Hash is full"),
    ("create a bitmap:port range 0-10\nadd a 22", 2, "out of the range"),
    ("create a hash:ip\ncreate a hash:ip", 2, "same name already exists"),
    ("flush a", 1, "reads 'create' and 'add' lines"),
    ("create a hash:ip,port\nadd a 198.51.100.1", 2, "elements have 2 parts"),
    ("create a hash:net netmask 24", 1, "netmask is for hash:ip and bitmap:ip"),
])
def test_save_file_errors_name_the_line(text: str, line: int, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(text, "x.save")
    assert e.value.line == line and e.value.file == "x.save" and why in e.value.message


def test_nets_most_specific_first_nomatch_and_return_nomatch() -> None:
    reg = load(SAVE)
    s = reg.sets["blocked"]
    got = {a: (matches(reg, s, udp(a), (True,), False, 1.0),
               matches(reg, s, udp(a), (True,), True, 1.0))
           for a in ("192.0.2.5", "192.0.2.130", "192.0.2.200", "198.51.100.1")}
    # /24 matches; /25 is nomatch; the /26 inside it matches again; outside: nothing
    assert got == {"192.0.2.5": (True, False), "192.0.2.130": (False, True),
                   "192.0.2.200": (True, False), "198.51.100.1": (False, False)}
    # list:set: members in order, --return-nomatch applied inside each member
    all_ = reg.sets["all"]
    assert matches(reg, all_, udp("192.0.2.130"), (True,), True, 1.0)
    assert matches(reg, all_, udp("198.51.100.200"), (True,), False, 1.0)   # masked /24
    assert not matches(reg, all_, udp("203.0.113.9"), (True,), False, 1.0)


def test_ports_protocols_directions_and_dimensions() -> None:
    reg = load(SAVE)
    web = reg.sets["web"]
    dd = (False, False)
    assert matches(reg, web, udp("198.51.100.2", dport=53), dd, False, 1.0)
    assert not matches(reg, web, udp("198.51.100.2", dport=80), dd, False, 1.0)   # udp:80
    tcp80 = pkt(IP(src="198.51.100.2", dst="203.0.113.2") / TCP(sport=5, dport=80))
    assert matches(reg, web, tcp80, dd, False, 1.0)
    assert not matches(reg, web, tcp80, (False, True), False, 1.0)    # the source port 5
    assert not matches(reg, web, tcp80, (False,), False, 1.0)         # fewer flags than dims
    assert matches(reg, web, tcp80, (False, False, True), False, 1.0)  # more: ignored
    ping = pkt(IP(src="198.51.100.2", dst="203.0.113.2") / ICMP(type=8, id=1))
    assert matches(reg, web, ping, dd, False, 1.0)
    alt = pkt(IP(src="198.51.100.2", dst="203.0.113.3") / TCP(dport=8081))
    assert matches(reg, web, alt, dd, False, 1.0)
    frag = pkt(IP(src="198.51.100.2", dst="203.0.113.2", frag=8, proto=6) / (b"x" * 8))
    assert not matches(reg, web, frag, dd, False, 1.0)                 # no ports in it
    ports, hosts = reg.sets["ports"], reg.sets["hosts"]
    assert matches(reg, ports, pkt(IP(dst="203.0.113.2") / TCP(dport=22)), (False,), False, 1.0)
    assert not matches(reg, ports, pkt(IP(dst="203.0.113.2") / TCP(dport=2222)), (False,),
                    False, 1.0)
    assert matches(reg, hosts, udp("198.51.100.3"), (True,), False, 1.0)
    assert not matches(reg, hosts, udp("198.51.100.200"), (True,), False, 1.0)   # out of range
    pair = reg.sets["pair"]
    assert matches(reg, pair, udp("198.51.100.7"), (True, False), False, 1.0)
    assert not matches(reg, pair, udp("198.51.100.7"), (False, True), False, 1.0)
    six = reg.sets["six"]
    p6 = pkt(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP())
    assert matches(reg, six, p6, (True,), False, 1.0)
    assert not matches(reg, reg.sets["blocked"], p6, (True,), False, 1.0)        # family


def test_timeouts_exist_and_maxelem() -> None:
    reg = load(SAVE)
    t = reg.sets["t"]
    assert matches(reg, t, udp("198.51.100.9"), (True,), False, 100.0)      # clock starts: 19 s
    assert matches(reg, t, udp("198.51.100.9"), (True,), False, 118.9)
    assert not matches(reg, t, udp("198.51.100.9"), (True,), False, 119.0)
    a = udp("198.51.100.1")
    assert change(reg, t, a, (True,), True, 5, False, 120.0)            # --timeout 5
    assert not change(reg, t, a, (True,), True, 50, False, 121.0)       # exists: no refresh
    assert not matches(reg, t, a, (True,), False, 125.0)
    assert change(reg, t, a, (True,), True, None, False, 126.0)         # default 300 s
    assert change(reg, t, a, (True,), True, 10, True, 127.0)            # --exist refreshes
    assert matches(reg, t, a, (True,), False, 136.9) and not matches(reg, t, a, (True,), False, 137)
    assert change(reg, t, udp("198.51.100.2"), (True,), True, 1, False, 140.0)
    assert change(reg, t, udp("198.51.100.3"), (True,), True, None, False, 140.0)
    assert not change(reg, t, udp("198.51.100.4"), (True,), True, None, False, 140.5)  # full
    assert change(reg, t, udp("198.51.100.4"), (True,), True, None, False, 141.0)  # .2 expired
    assert change(reg, t, udp("198.51.100.3"), (True,), False, None, False, 141.0)   # del
    assert not matches(reg, t, udp("198.51.100.3"), (True,), False, 141.0)
    web = reg.sets["web"]                              # no timeout support: --timeout ignored
    p80 = pkt(IP(src="198.51.100.2", dst="203.0.113.9") / TCP(dport=80))
    assert change(reg, web, p80, (False, False), True, 5, False, 150.0)
    assert matches(reg, web, p80, (False, False), False, 1e9)
    blocked = reg.sets["blocked"]                      # a net: the most specific prefix
    assert change(reg, blocked, udp("203.0.113.77"), (True,), True, None, False, 1.0)
    assert (bytes([203, 0, 113, 64]), 26) in {k[0] for k in blocked.elems}


RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m set --match-set blocked src -j DROP
-A FORWARD -m set --match-set t src -j ACCEPT
-A FORWARD -m set --match-set web dst,dst -j SET --add-set t src --exist --timeout 5 --del-set masked src
-A FORWARD -m set ! --match-set all src --return-nomatch ! --update-counters -j ACCEPT
COMMIT
"""


def test_rules_texts_as_iptables_prints_them() -> None:
    reg = load(SAVE)
    rs = load_rules_text(RULES, "r", 4, sets=reg)
    saved = save(rs)
    # (iptables-legacy 1.8.9's iptables-save and -L for the same rules and sets)
    assert ("-A FORWARD -m set --match-set web dst,dst -j SET --add-set t src --exist "
            "--timeout 5 --del-set masked src") in saved
    assert "-A FORWARD -m set ! --match-set all src --return-nomatch ! --update-counters " \
           "-j ACCEPT" in saved
    listed = list_ruleset(rs)
    assert "match-set web dst,dst add-set t src exist timeout 5 del-set masked src" in listed
    assert "! match-set all src return-nomatch ! update-counters" in listed
    assert save(load_rules_text(saved, "again", 4, sets=reg)) == saved


@pytest.mark.parametrize("rule, why", [
    ("-m set --match-set nosuch src", "Set nosuch doesn't exist."),
    ("-m set --match-set web sr", "You must spefify (the comma separated list of) 'src' or "
                                  "'dst'."),
    ("-m set --match-set web src,dst,src,dst,src,dst,src", "Can't be more src/dst options "
                                                           "than 6."),
    ("-m set --match-set web src ! --return-nomatch", "--return-nomatch flag cannot be "
                                                      "inverted"),
    ("-m set --match-set web src --packets-gt 5", "not supported by statewall"),
    ("-j SET --timeout 5", "You must specify either `--add-set' or `--del-set'"),
    ("-j SET --map-set web src --map-mark", "not supported by statewall"),
    ("-m set --match-set " + "a" * 32 + " src", "too long, max 31 characters."),
])
def test_rule_errors(rule: str, why: str) -> None:
    text = f"*filter\n-A FORWARD {rule}\nCOMMIT\n"
    with pytest.raises(ConfigError) as e:
        load_rules_text(text, "r.rules", 4, sets=load(SAVE))
    assert e.value.line == 2 and why in e.value.message


def test_set_rules_need_sets_when_read() -> None:
    with pytest.raises(ConfigError, match="Set blocked doesn't exist."):
        load_rules_text(RULES, "r.rules", 4)


def test_firewall_adds_to_sets_and_later_packets_see_it() -> None:
    fw = Firewall(Settings(), rules4=load_rules_text(RULES, "r", 4, sets=load(SAVE)), trace=True)

    def verdict(data: bytes, now: float) -> tuple[str, str | None]:
        d = fw.process(decode_ip(data), now)
        return d.verdict, d.source
    other = raw(IP(src="198.51.100.50", dst="203.0.113.9") / UDP(sport=7, dport=9))
    web = raw(IP(src="198.51.100.50", dst="203.0.113.2") / UDP(sport=8, dport=53))
    assert verdict(other, 10.0) == ("DROP", "filter/FORWARD policy")   # in masked (all)
    # SET adds the source to t and deletes it from masked: no longer in "all"
    assert verdict(web, 11.0) == ("ACCEPT", "filter/FORWARD#4")
    assert verdict(other, 12.0) == ("ACCEPT", "filter/FORWARD#2")       # in t now
    again = raw(IP(src="198.51.100.50", dst="203.0.113.9") / UDP(sport=9, dport=9))
    assert verdict(again, 16.5) == ("ACCEPT", "filter/FORWARD#4")      # t's 5 s ran out


def test_files_and_live_config(tmp_path: Path) -> None:
    (tmp_path / "sets").write_text(SAVE)
    (tmp_path / "bad").write_text("create a hash:ip\nadd a nonsense\n")
    (tmp_path / "rules").write_text(RULES)
    reg = load_ipsets([str(tmp_path / "sets")])
    assert "web" in reg and load_ipsets([]) is None
    with pytest.raises(LoadError, match=r"bad:2: "):
        load_ipsets([str(tmp_path / "bad")])
    r4, r6 = load_rules(Config(rules4=str(tmp_path / "rules"), ipsets=[str(tmp_path / "sets")]))
    assert r4.sets is not None and r6 is None
    with pytest.raises(RulesError, match="Set blocked doesn't exist"):
        load_rules(Config(rules4=str(tmp_path / "rules")))


def test_command_line_options(tmp_path: Path) -> None:
    (tmp_path / "sets").write_text(SAVE)
    (tmp_path / "rules").write_text(RULES)
    sw = [sys.executable, "-m", "statewall"]
    r = subprocess.run(sw + ["rules", "check", str(tmp_path / "rules")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "rules:5: Set blocked doesn't exist." in r.stderr
    r = subprocess.run(sw + ["rules", "check", str(tmp_path / "rules"), "--ipset",
                             str(tmp_path / "sets")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from statewall.io.capture import PcapWriter
    with open(tmp_path / "c.pcap", "wb") as f:
        w = PcapWriter(f, linktype=101)
        for k, (src, dst, dport) in enumerate([("198.51.100.50", "203.0.113.9", 9),
                                               ("198.51.100.50", "203.0.113.2", 53),
                                               ("198.51.100.50", "203.0.113.9", 9)]):
            w.write(raw(IP(src=src, dst=dst) / UDP(sport=100 + k, dport=dport)),
                    (1_700_000_000 + k) * 10**9)
    r = subprocess.run(sw + ["replay", str(tmp_path / "c.pcap"), "--rules",
                             str(tmp_path / "rules"), "--ipset", str(tmp_path / "sets"),
                             "--trace", "-"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = [(d["verdict"], d["source"]) for d in map(json.loads, r.stdout.splitlines())]
    assert got == [("DROP", "filter/FORWARD policy"), ("ACCEPT", "filter/FORWARD#4"),
                   ("ACCEPT", "filter/FORWARD#2")]


def test_live_daemon_keeps_its_sets_for_iptables_edits(tmp_path: Path) -> None:
    """``statewall run --ipset``: the running rule set may be edited with rules that name the
    sets (the supervisor checks them, every worker compiles them with its own sets)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_conntrack_cli import STATEWALL, _daemon
    (tmp_path / "sets").write_text(SAVE)
    with _daemon(tmp_path, "--queue", "0", "--ipset", str(tmp_path / "sets")) as ctl:
        def ipt(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([STATEWALL, "iptables", *argv], capture_output=True,
                                  text=True, timeout=60,
                                  env=dict(os.environ, STATEWALL_CONTROL=ctl))
        r = ipt("-A", "FORWARD", "-m", "set", "--match-set", "web", "dst,dst", "-j", "SET",
                "--add-set", "t", "src", "--exist")
        assert r.returncode == 0, r.stderr
        bad = ipt("-A", "FORWARD", "-m", "set", "--match-set", "nosuch", "src", "-j", "DROP")
        assert bad.returncode != 0 and "Set nosuch doesn't exist." in bad.stderr
        listed = ipt("-S", "FORWARD").stdout
        assert "-A FORWARD -m set --match-set web dst,dst -j SET --add-set t src --exist" \
            in listed
