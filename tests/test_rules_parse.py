"""Rule files in, canonical iptables-save text out: parsing, restore commands, kernel
checks, errors with file and line, quoting, listing, the ``statewall rules`` command.

Expected texts were taken from iptables 1.8.9 (iptables-save, iptables -L -n -v -x) on this
project's reference machine. As root with iptables and ``ip netns``, the differential tests
at the end load the same files into a real kernel and compare byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statewall.cli.main import main
from statewall.rules.errors import ConfigError
from statewall.rules.listing import list_table
from statewall.rules.model import Target
from statewall.rules.parse import load, parse_ruleset
from statewall.rules.quote import save_string, tokenize
from statewall.rules.save import save, save_ruleset


def canon(text: str, family: int = 4, counters: bool = False) -> str:
    return save(load(text, "t.rules", family, counters), counters=counters)


def rules_of(text: str, family: int = 4) -> list[str]:
    return [ln for ln in canon(text, family).splitlines() if ln.startswith("-A ")]


def one(rule: str, family: int = 4, table: str = "filter", chain: str = "FORWARD") -> str:
    out = rules_of(f"*{table}\n-A {chain} {rule}\nCOMMIT\n", family)
    assert len(out) == 1, out
    return out[0][len(f"-A {chain}"):].strip()


def error(text: str, family: int = 4) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        load(text, "t.rules", family)
    return e.value


# --------------------------------------------------------------------------- round trip
FIREWALL = """\
# a hand-written file
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p tcp --syn --dport ssh -m recent --name ssh --update --seconds 60 --hitcount 4 -j DROP
-A INPUT -p tcp --dport 22 -m comment --comment "ssh in" -j ACCEPT
-A INPUT -p icmp --icmp-type echo-request -m limit --limit 5/s -j ACCEPT
-A INPUT -s 192.0.2.7/24,198.51.100.0/255.255.255.0 -p udp -m multiport --dports 53,123 -j ACCEPT
-A FORWARD -p tcp -m multiport --dports 80,443 -g web
-A FORWARD -j LOG --log-prefix "fwd drop: " --log-level info
-A web -m hashlimit --hashlimit-upto 10/sec --hashlimit-mode srcip --hashlimit-name web -j ACCEPT
-A web -p tcp -j REJECT --reject-with tcp-reset
COMMIT
"""

FIREWALL_SAVED = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -m recent --update \
--seconds 60 --hitcount 4 --name ssh --mask 255.255.255.255 --rsource -j DROP
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh in" -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec -j ACCEPT
-A INPUT -s 192.0.2.0/24 -p udp -m multiport --dports 53,123 -j ACCEPT
-A INPUT -s 198.51.100.0/24 -p udp -m multiport --dports 53,123 -j ACCEPT
-A FORWARD -p tcp -m multiport --dports 80,443 -g web
-A FORWARD -j LOG --log-prefix "fwd drop: " --log-level 6
-A web -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-mode srcip \
--hashlimit-name web -j ACCEPT
-A web -p tcp -j REJECT --reject-with tcp-reset
COMMIT
"""


def test_round_trip_to_canonical_text() -> None:
    assert canon(FIREWALL) == FIREWALL_SAVED
    assert canon(FIREWALL_SAVED) == FIREWALL_SAVED          # canonical is a fixed point


def test_model_shape() -> None:
    rs = parse_ruleset(FIREWALL, "fw.rules")
    t = rs.table("filter")
    assert t is not None and rs.table("nat") is None
    assert [c.name for c in t.chains] == ["INPUT", "FORWARD", "OUTPUT", "web"]
    inp = t.chain("INPUT")
    assert inp is not None and inp.policy == "DROP" and inp.builtin
    web = t.chain("web")
    assert web is not None and web.policy is None and not web.builtin
    r = inp.rules[2]
    assert r.src.file == "fw.rules" and r.src.line == 9 and "--syn" in r.text
    assert [m.name for m in r.matches] == ["tcp", "recent"]
    assert inp.rules[0].target == Target("verdict", "ACCEPT")
    fwd = t.chain("FORWARD")
    assert fwd is not None and fwd.rules[0].target == Target("goto", "web")
    assert len(inp.rules) == 7                                 # the -s list became two rules


# ------------------------------------------------------------------- generic options
@pytest.mark.parametrize("rule, saved", [
    ("-p tcp --dport 80", "-p tcp -m tcp --dport 80"),
    ("-p 6 --sport 1024:", "-p tcp -m tcp --sport 1024:65535"),
    ("-p TCP ! --syn", "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN"),
    ("-p tcp --tcp-flags ALL NONE", "-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE"),
    ("-p tcp --dpo 0x50", "-p tcp -m tcp --dport 80"),         # abbreviation, base 0
    ("--protocol=udp --destination-port=domain", "-p udp -m udp --dport 53"),
    ("-ptcp -s1.2.3.4 -jACCEPT", "-s 1.2.3.4/32 -p tcp -j ACCEPT"),
    ("-s 10.1.2.3/8 ! -d 10.0.0.1", "-s 10.0.0.0/8 ! -d 10.0.0.1/32"),
    ("-s 10.11.12.13/255.0.255.0", "-s 10.0.12.0/255.0.255.0"),
    ("-s 10", "-s 10.0.0.0/32"),
    ("-s 0/0 -d 1.2.3.4/0", ""),
    ("-i + -o eth+", "-o eth+"),
    ("! -i +", "! -i +"),
    ("-p gre", "-p gre"),
    ("-p 255", "-p 255"),
    ("-p all", ""),
    ("-f -p udp", "-p udp -f"),
    ("! -f", "! -f"),
    ("-m state --state new,e", "-m state --state NEW,ESTABLISHED"),
    ("-m conntrack --ctstate N --ctproto tcp", "-m conntrack --ctstate NEW --ctproto 6"),
    ("-p icmp --icmp-type host-unreachable", "-p icmp -m icmp --icmp-type 3/1"),
    ("-m mark --mark 1/0xff", "-m mark --mark 0x1/0xff"),
    ("-j MARK --or-mark 0xf", "-j MARK --set-xmark 0xf/0xf"),
    ("-j CONNMARK --save-mark --mask 0xff", "-j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff"),
    ("-m connlimit ! --connlimit-above 3",
     "-m connlimit --connlimit-upto 3 --connlimit-mask 32 --connlimit-saddr"),
    ("-m hashlimit --hashlimit-upto 60/min --hashlimit-name x",
     "-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name x "
     "--hashlimit-htable-expire 60000"),
    ("-m limit", "-m limit --limit 3/hour"),
    ("-m comment --comment \"it's\"", "-m comment --comment \"it\\'s\""),
    ("-j LOG --log-prefix \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
     "-j LOG --log-prefix aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("-c 5 6 -j ACCEPT", "-j ACCEPT"),
    ("-m quota --quota 1000", "-m quota --quota 1000"),
    ("-m statistic --mode nth --every 3 --packet 1",
     "-m statistic --mode nth --every 3 --packet 1"),
    ("-j NFQUEUE --queue-bypass", "-j NFQUEUE --queue-num 0 --queue-bypass"),
])
def test_canonical_rule(rule: str, saved: str) -> None:
    assert one(rule) == saved


@pytest.mark.parametrize("rule, saved", [
    ("-s 2001:db8::1/64 -d ::ffff:1.2.3.4", "-s 2001:db8::/64 -d ::ffff:1.2.3.4/128"),
    ("-s 2001:db8::/ffff:ffff::", "-s 2001:db8::/32"),
    ("-p icmpv6 --icmpv6-type echo-request", "-p ipv6-icmp -m icmp6 --icmpv6-type 128"),
    ("-m icmpv6 -p 58 --icmpv6-type 1/3", "-p ipv6-icmp -m icmp6 --icmpv6-type 1/3"),
    ("-m hl --hl-lt 3", "-m hl --hl-lt 3"),
    ("-j REJECT --reject-with adm-prohibited", "-j REJECT --reject-with icmp6-adm-prohibited"),
    ("-m recent --set --mask ffff::", "-m recent --set --name DEFAULT --mask ffff:: --rsource"),
])
def test_canonical_rule_ipv6(rule: str, saved: str) -> None:
    assert one(rule, 6) == saved


def test_multiple_addresses_expand_to_rules() -> None:
    out = rules_of("*filter\n-A INPUT -s 1.2.3.4,5.6.7.8 -d 10.0.0.0/8,11.0.0.0/8\nCOMMIT\n")
    assert out == ["-A INPUT -s 1.2.3.4/32 -d 10.0.0.0/8", "-A INPUT -s 1.2.3.4/32 -d 11.0.0.0/8",
                   "-A INPUT -s 5.6.7.8/32 -d 10.0.0.0/8", "-A INPUT -s 5.6.7.8/32 -d 11.0.0.0/8"]


def test_family_lines() -> None:
    text = "*filter\n-4 -A INPUT -s 1.2.3.4\n-6 -A INPUT -s ::1\n-A INPUT -j ACCEPT\nCOMMIT\n"
    assert rules_of(text, 4) == ["-A INPUT -s 1.2.3.4/32", "-A INPUT -j ACCEPT"]
    assert rules_of(text, 6) == ["-A INPUT -s ::1/128", "-A INPUT -j ACCEPT"]


# ----------------------------------------------------------------------- restore file
def test_restore_commands() -> None:
    text = """*filter
:a - [0:0]
:b - [0:0]
-A INPUT -j a
-A a -p tcp -j ACCEPT
-A a -p udp -j ACCEPT
-I a -p icmp -j ACCEPT
-I a 3 -p gre -j ACCEPT
-R a 2 -p esp -j ACCEPT
-D a -p udp -j ACCEPT
-A b -j DROP
-D b 1
-X b
-N c
-E c d
-A d -j RETURN
-A INPUT -j d
-P FORWARD DROP
-A OUTPUT -j ACCEPT
-F OUTPUT
COMMIT
"""
    assert canon(text) == """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:a - [0:0]
:d - [0:0]
-A INPUT -j a
-A INPUT -j d
-A a -p icmp -j ACCEPT
-A a -p esp -j ACCEPT
-A a -p gre -j ACCEPT
-A d -j RETURN
COMMIT
"""


def test_rename_moves_references() -> None:
    e = error("*filter\n:x - [0:0]\n-A INPUT -j x\n-A x -g x2\n:x2 - [0:0]\nCOMMIT\n")
    assert e.line == 4 and "x2" in e.message         # a chain is declared before use
    text = "*filter\n:x - [0:0]\n:y - [0:0]\n-A INPUT -j x\n-A y -g x\n-E x z\nCOMMIT\n"
    assert rules_of(text) == ["-A INPUT -j z", "-A y -g z"]


def test_counters() -> None:
    text = "*filter\n:INPUT DROP [5:500]\n[3:300] -A INPUT -j ACCEPT\n-A INPUT -c 7 70\nCOMMIT\n"
    assert canon(text) == "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n" \
        ":OUTPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-A INPUT\nCOMMIT\n"
    assert canon(text, counters=True) == "*filter\n:INPUT DROP [5:500]\n:FORWARD ACCEPT [0:0]\n" \
        ":OUTPUT ACCEPT [0:0]\n[3:300] -A INPUT -j ACCEPT\n[7:70] -A INPUT\nCOMMIT\n"
    rs = load(text, counters=True)
    assert save_ruleset(rs, counters=True) == save(rs, counters=True)


def test_table_twice_is_rebuilt_keeping_policy() -> None:
    text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n*filter\n-A FORWARD\nCOMMIT\n"
    assert canon(text) == "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n" \
        ":OUTPUT ACCEPT [0:0]\n-A FORWARD\nCOMMIT\n"


def test_all_tables() -> None:
    text = ("*raw\n-A PREROUTING -p udp --dport 123 -j CT --notrack\n-A OUTPUT -j TRACE\nCOMMIT\n"
            "*mangle\n-A PREROUTING -j CONNMARK --restore-mark\nCOMMIT\n"
            "*nat\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080\n"
            "-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n*filter\nCOMMIT\n")
    rs = load(text)
    assert [t.name for t in rs.tables] == ["raw", "mangle", "nat", "filter"]
    assert [c.name for c in rs.tables[2].chains] == ["PREROUTING", "INPUT", "OUTPUT",
                                                     "POSTROUTING"]


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize("text, line, words", [
    ("*filter\n-A INPUT -m bogus\nCOMMIT\n", 2, "bogus"),
    ("*filter\n-A INPUT -p tcp -m sctp --dport 1\nCOMMIT\n", 2, "sctp"),
    ("*filter\n-A INPUT -j TCPMSS --set-mss 1400\nCOMMIT\n", 2, "TCPMSS"),
    ("*filter\n-A INPUT -p tcp --dport 1 --dport 2\nCOMMIT\n", 2, "--dport"),
    ("*filter\n-A INPUT -p tcp --d 80\nCOMMIT\n", 2, "ambiguous"),
    ("*filter\n-A INPUT -m tcp --dport 22\nCOMMIT\n", 2, "only valid for protocol 6"),
    ("*filter\n-A INPUT -j nowhere\nCOMMIT\n", 2, "nowhere"),
    ("*filter\n-A INPUT -s 1.2.3.4 -s 5.6.7.8\nCOMMIT\n", 2, "multiple --source"),
    ("*filter\n-A INPUT -o eth0\nCOMMIT\n", 2, "-o with INPUT"),
    ("*filter\n-A OUTPUT -i eth0\nCOMMIT\n", 2, "-i with OUTPUT"),
    ("*filter\n-A INPUT -i thisinterfaceistoolong0\nCOMMIT\n", 2, "shorter than 16"),
    ("*filter\n-A INPUT ! -p all\nCOMMIT\n", 2, "never match"),
    ("*filter\n-A INPUT -m state ! ! --state NEW\nCOMMIT\n", 2, "consecutive"),
    ("*filter\n-A INPUT -j LOG --log-prefix\nCOMMIT\n", 2, "requires an argument"),
    ("*filter\n-A INPUT -m limit ! --limit 1/s\nCOMMIT\n", 2, "cannot be inverted"),
    ("*filter\n-A INPUT -p tcp --sport 4:3\nCOMMIT\n", 2, "min > max"),
    ("*filter\n-A INPUT -m conntrack --ctstate wrong\nCOMMIT\n", 2, "wrong"),
    ("*filter\n-A INPUT -j REJECT --reject-with tcp-reset\nCOMMIT\n", 2, "-p tcp"),
    ("*filter\n-A FORWARD -s 1.2.3.4\n", 2, "COMMIT expected"),
    ("-A INPUT -j ACCEPT\n", 1, "no table"),
    ("*security\nCOMMIT\n", 1, "SECMARK"),
    ("*bogus\nCOMMIT\n", 1, "does not exist"),
    ("*nat\n-A PREROUTING -j DROP\nCOMMIT\n", 2, "nat"),
    ("*nat\n:PREROUTING DROP [0:0]\nCOMMIT\n", 2, "nat"),
    ("*filter\n:INPUT BOGUS [0:0]\nCOMMIT\n", 2, "policy"),
    ("*filter\n:x - [0:0]\n:x - [0:0]\nCOMMIT\n", 3, "already exists"),
    ("*filter\n:x ACCEPT [0:0]\nCOMMIT\n", 2, "not a built-in"),
    ("*filter\n:LOG - [0:0]\nCOMMIT\n", 2, "target name"),
    ("*filter\n-I INPUT 3 -j ACCEPT\nCOMMIT\n", 2, "too big"),
    ("*filter\n-D INPUT -p tcp -j ACCEPT\nCOMMIT\n", 2, "matching rule"),
    ("*filter\n:x - [0:0]\n-A INPUT -j x\n-X x\nCOMMIT\n", 4, "referenced"),
    ("*filter\n:x - [0:0]\n-A x -j ACCEPT\n-X x\nCOMMIT\n", 4, "not empty"),
    ("*filter\n-X INPUT\nCOMMIT\n", 2, "built-in"),
    ("*filter\n-P web ACCEPT\nCOMMIT\n", 2, "does not exist"),
    ("*filter\n-L\nCOMMIT\n", 2, "not a command"),
    ("*filter\n-t nat -A INPUT\nCOMMIT\n", 2, "-t"),
    ("*filter\n-A INPUT bogus\nCOMMIT\n", 2, "bogus"),
    ("*filter\n[1:2 -A INPUT\nCOMMIT\n", 2, "need ]"),
    ("*raw\n-A PREROUTING -j CT --helper irc\nCOMMIT\n", 2, "irc"),
    ("*raw\n-A PREROUTING -j CT --helper ftp\nCOMMIT\n", 2, "-p tcp"),
    ("*filter\n-A INPUT -j REJECT --reject-with bogus\nCOMMIT\n", 2, "bogus"),
    ("*filter\n-A INPUT -m addrtype --src-type BLACKHOLE\nCOMMIT\n", 2, "BLACKHOLE"),
])
def test_errors_name_file_line_and_problem(text: str, line: int, words: str) -> None:
    e = error(text)
    assert e.file == "t.rules" and e.line == line, str(e)
    assert words.lower() in e.message.lower(), str(e)
    assert str(e).startswith(f"t.rules:{line}: ")


@pytest.mark.parametrize("text, line, words", [
    ("*filter\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n"
     "-A PREROUTING -j ACCEPT\nCOMMIT\n", 3, "PREROUTING"),
    ("*raw\n-A PREROUTING -j REJECT\nCOMMIT\n", 2, "REJECT"),
    ("*filter\n-A INPUT -j CT --notrack\nCOMMIT\n", 2, "raw"),
    ("*filter\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -j a\nCOMMIT\n", 6, "loop"),
    ("*filter\n:a - [0:0]\n-A OUTPUT -j a\n-A a -m addrtype --src-type LOCAL --limit-iface-in\n"
     "COMMIT\n", 4, "POSTROUTING and OUTPUT"),
    ("*nat\n-A PREROUTING -j SNAT --to-source 1.2.3.4\nCOMMIT\n", 2, "POSTROUTING"),
    ("*nat\n-A POSTROUTING -j DNAT --to-destination 1.2.3.4:80\nCOMMIT\n", 2, "port"),
    ("*filter\n-A INPUT -m hashlimit --hashlimit-upto 1/day --hashlimit-name x\nCOMMIT\n", 2,
     "overflow"),
    ("*filter\n-A INPUT -m recent --set --seconds 5\nCOMMIT\n", 2, "--seconds"),
])
def test_kernel_checks(text: str, line: int, words: str) -> None:
    e = error(text)
    assert e.line == line, str(e)
    assert words.lower() in e.message.lower(), str(e)


def test_user_chain_hooks_come_from_callers() -> None:
    ok = "*filter\n:c - [0:0]\n-A INPUT -j c\n-A c -m addrtype --dst-type LOCAL --limit-iface-in\nCOMMIT\n"
    load(ok)
    # an unreachable chain is not checked against hooks (the kernel's mark_source_chains)
    load("*filter\n:c - [0:0]\n-A c -j REJECT\nCOMMIT\n")


# ---------------------------------------------------------------------------- quoting
def test_tokenize_like_iptables_restore() -> None:
    assert tokenize('-m comment --comment "a \\"q\\" b"  -c "" x') == \
        ["-m", "comment", "--comment", 'a "q" b', "-c", "", "x"]
    assert tokenize("'single quoted'") == ["'single", "quoted'"]
    assert tokenize('ab"c d"e') == ["abc d", "e"]
    assert tokenize('"unterminated') == ["unterminated"]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\x00\n\r"), max_size=40))
@settings(max_examples=300)
def test_save_string_round_trips(s: str) -> None:
    assert tokenize(save_string(s)) == [s]


@given(st.text(alphabet="abcxyz \"'\\:_-", min_size=1, max_size=30))
@settings(max_examples=200)
def test_comment_round_trips_through_save(s: str) -> None:
    text = f"*filter\n-A INPUT -m comment --comment {save_string(s).strip()}\nCOMMIT\n"
    saved = canon(text)
    assert canon(saved) == saved
    rule = load(saved).tables[0].chains[0].rules[0]
    assert rule.matches[0].info.comment == s          # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- listing
LISTING_RULES = """*filter
:INPUT DROP [0:0]
:web - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT ! -i eth+ -s 10.0.0.0/255.0.255.0 ! -d 192.168.1.1/32 -j ACCEPT
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --sport 1024:65535 --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT
-A INPUT -p icmp -m icmp ! --icmp-type 3 -j ACCEPT
-A INPUT -p tcp -m multiport ! --sports 22,80 -j web
-A INPUT -f
-A INPUT ! -p tcp
-A INPUT -j LOG --log-prefix "drop: " --log-level 6 --log-tcp-sequence
-A INPUT -g web
-A web -j DROP
COMMIT
"""

LISTING = """\
Chain INPUT (policy DROP 0 packets, 0 bytes)
num      pkts      bytes target     prot opt in     out     source               destination         
1           0        0 ACCEPT     0    --  lo     *       0.0.0.0/0            0.0.0.0/0           
2           0        0 ACCEPT     0    --  !eth+  *       10.0.0.0/255.0.255.0 !192.168.1.1         
3           0        0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            state RELATED,ESTABLISHED
4           0        0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spts:1024:65535 dpt:22 flags:0x17/0x02
5           0        0 ACCEPT     1    --  *      *       0.0.0.0/0            0.0.0.0/0            icmp !type 3
6           0        0 web        6    --  *      *       0.0.0.0/0            0.0.0.0/0            multiport sports  !22,80
7           0        0            0    -f  *      *       0.0.0.0/0            0.0.0.0/0           
8           0        0           !6    --  *      *       0.0.0.0/0            0.0.0.0/0           
9           0        0 LOG        0    --  *      *       0.0.0.0/0            0.0.0.0/0            LOG flags 1 level 6 prefix "drop: "
10          0        0 web        0    --  *      *       0.0.0.0/0            0.0.0.0/0           [goto] 

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
num      pkts      bytes target     prot opt in     out     source               destination         

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
num      pkts      bytes target     prot opt in     out     source               destination         

Chain web (2 references)
num      pkts      bytes target     prot opt in     out     source               destination         
1           0        0 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0           
"""


def test_listing_like_iptables_L_n_v_x() -> None:
    rs = load(LISTING_RULES)
    assert list_table(rs.tables[0], 4, line_numbers=True) == LISTING


# ------------------------------------------------------------------------ the command
def test_cli_check_and_save(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.rules"
    good.write_text(FIREWALL)
    assert main(["rules", "check", str(good)]) == 0
    assert main(["rules", "save", str(good)]) == 0
    assert capsys.readouterr().out == FIREWALL_SAVED
    bad = tmp_path / "bad.rules"
    bad.write_text("*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -m owner "
                   "--uid-owner 0 -j DROP\nCOMMIT\n")
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"{bad}:3: match owner is not supported by statewall"
    v6 = tmp_path / "v6.rules"
    v6.write_text("*filter\n-A INPUT -s 2001:db8::1 -j ACCEPT\nCOMMIT\n")
    assert main(["rules", "check", str(v6)]) == 1
    assert main(["rules", "save", "-6", str(v6)]) == 0
    assert "-A INPUT -s 2001:db8::1/128 -j ACCEPT" in capsys.readouterr().out
    assert main(["rules", "check", str(tmp_path / "missing")]) == 2
    assert main(["rules", "list", str(good), "--line-numbers"]) == 0
    assert "Chain web (1 references)" in capsys.readouterr().out


def test_cli_save_counters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.rules"
    f.write_text("*filter\n:INPUT ACCEPT [4:40]\n[1:2] -A INPUT -j ACCEPT\nCOMMIT\n")
    assert main(["rules", "save", "-c", str(f)]) == 0
    out = capsys.readouterr().out
    assert ":INPUT ACCEPT [4:40]" in out and "[1:2] -A INPUT -j ACCEPT" in out


# ------------------------------------------------------------ against the real iptables
def _netns_ok() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("iptables-restore")) and \
        bool(shutil.which("ip"))


DIFF_V4 = FIREWALL + """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 123 -j CT --notrack
-A PREROUTING -j CT --zone 5
-A OUTPUT -j NOTRACK
COMMIT
*mangle
-A PREROUTING -j CONNMARK --restore-mark --mask 0xff
-A PREROUTING -m mark --mark 0 -j MARK --set-mark 5
-A POSTROUTING -o eth0 -j CONNMARK --save-mark
COMMIT
*nat
-A PREROUTING -d 1.2.3.4 -p tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080
-A PREROUTING -p tcp -j REDIRECT --to-ports 3128-3130 --random
-A POSTROUTING -o eth0 -j MASQUERADE
-A POSTROUTING -s 10.0.0.0/8 -j SNAT --to-source 1.2.3.4-1.2.3.8 --random
COMMIT
"""


@pytest.mark.skipif(not _netns_ok(), reason="needs root, iptables and ip netns")
@pytest.mark.parametrize("family, text", [(4, DIFF_V4), (4, LISTING_RULES)])
def test_same_save_and_listing_as_real_iptables(family: int, text: str) -> None:
    ns = f"sw-rules-{uuid.uuid4().hex[:8]}"
    tool = "iptables" if family == 4 else "ip6tables"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, tool + "-restore"], input=text, text=True,
                       check=True)
        rs = load(text, "diff.rules", family)
        for table in rs.tables:
            real = subprocess.run(["ip", "netns", "exec", ns, tool + "-save", "-t", table.name],
                                  capture_output=True, text=True, check=True).stdout
            real_lines = [ln for ln in real.splitlines() if not ln.startswith("#")]
            ours = save(rs, tables=(table.name,)).splitlines()
            assert ours == real_lines
            real_l = subprocess.run(["ip", "netns", "exec", ns, tool, "-t", table.name, "-L",
                                     "-n", "-v", "-x"], capture_output=True, text=True,
                                    check=True).stdout
            assert list_table(table, family) == real_l
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# -------------------------------------------------------------------------- robustness
_WORDS = ["-A", "INPUT", "-p", "tcp", "udp", "icmp", "--dport", "80", ":", "1:2", "!", "-m",
          "state", "--state", "NEW", "conntrack", "--ctstate", "-j", "ACCEPT", "LOG",
          "--log-prefix", '"x y"', "-s", "10.0.0.0/8", "-d", "::1", "-i", "eth+", "-o",
          "multiport", "--dports", "1,2,3", "recent", "--set", "--name", "hashlimit",
          "--hashlimit-upto", "1/s", "--hashlimit-name", "limit", "--limit", "-c", "1", "2",
          "REJECT", "--reject-with", "tcp-reset", "-f", "-N", "x", "-X", "-I", "3", "-D",
          "-g", "-E", "-P", "DROP", "--syn", "--tcp-flags", "ALL", "NONE", "-4", "-6", "=",
          "--src=1.2.3.4", "mark", "--mark", "0x1/0x0", "--", "-", "\\", "[1:2]"]


@given(st.lists(st.sampled_from(_WORDS), max_size=14), st.sampled_from([4, 6]),
       st.sampled_from(["filter", "nat", "mangle", "raw"]))
@settings(max_examples=400, deadline=None)
def test_any_line_loads_or_raises_config_error(words: list[str], family: int,
                                               table: str) -> None:
    text = f"*{table}\n{' '.join(words)}\nCOMMIT\n"
    try:
        rs = load(text, "fuzz.rules", family)
    except ConfigError as e:
        assert e.line in (2, 3) and e.message
        return
    saved = save(rs)
    assert save(load(saved, "again", family)) == saved      # canonical text reloads as is


def test_rules_core_is_sans_io() -> None:
    import ast
    src = Path(__file__).resolve().parent.parent / "src" / "statewall" / "rules"
    forbidden = {"os", "io", "time", "datetime", "socket", "random", "subprocess", "select",
                 "threading", "logging", "signal", "asyncio"}
    bad = []
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in forbidden or n.startswith(("statewall.cli", "statewall.io")):
                    bad.append(f"{path.name} imports {n}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("open", "print", "input"):
                bad.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    assert not bad, bad


def test_ct_target_forms() -> None:
    assert one("-p tcp -j CT --helper ftp --timeout pol --zone-orig 3", table="raw",
               chain="PREROUTING") == "-p tcp -j CT --helper ftp --timeout pol --zone-orig 3"
    assert one("-j CT --ctevents new,mark --expevents new", table="raw", chain="OUTPUT") == \
        "-j CT --ctevents new,mark --expevents new"


def test_rename_of_a_missing_chain_is_a_config_error() -> None:
    """Found by the random-line test: ``-E`` naming no chain raised an assertion."""
    text = "*filter\n:INPUT ACCEPT [0:0]\n-E nochain newname\nCOMMIT\n"
    with pytest.raises(ConfigError, match="can't rename chain `nochain'"):
        parse_ruleset(text, "r.rules", 4)
