"""Connection tracking helpers: the interface, the per-entry helper extension, the registry.

Owns: the ``Helper`` protocol (``struct nf_conntrack_helper``: name, family, protocol, port,
expectation policies, ``help``), ``Help`` (``struct nf_conn_help``: the entry's helper, its
expectations, the helper's private data), the registry of the helpers a profile has (names
and ports from the module parameters), attaching a helper to an entry, and the ``-m helper``
test. Must not know: rules, output formats, how a helper parses its protocol (``ftp.py``,
``tftp.py``).
Follows net/netfilter/nf_conntrack_helper.c (``nf_ct_helper_init`` names: ``ftp`` for the
default port, ``ftp-<port>`` / ``tftp-<index>`` for others; ``__nf_conntrack_helper_find``;
``__nf_ct_try_assign_helper``), net/netfilter/xt_helper.c, and for ``linux-2.4`` the 2.4.0
``ip_conntrack_core.c`` (the helper is chosen by the reply tuple: source port 21).

Attachment: the current kernel attaches a helper only explicitly, from the template of a
raw-table ``CT --helper`` rule (``Tracker.conntrack_in(..., template=CtTemplate(helper=...))``);
the ``linux-2.4`` profile attaches the FTP helper to every TCP connection to port 21.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..conn import IPS_EXPECTED, IPS_HELPER

if TYPE_CHECKING:
    from ...packet.packet import Packet
    from ..conn import Conn
    from ..core import Tracker
    from ..expect import ExpectPolicy, Expectation
    from ..sysctl import Settings

IPPROTO_TCP = 6
IPPROTO_UDP = 17


class Helper(Protocol):
    """One registered helper (per family: the kernel registers an IPv4 and an IPv6 one).

    name: as ``conntrack -L`` shows it and ``CT --helper`` names it; l3num: 2 or 10;
    proto: 6 or 17; port: the port it was registered for; policy: per expectation class.
    """

    name: str
    l3num: int
    proto: int
    port: int
    policy: tuple[ExpectPolicy, ...]

    def help(self, tracker: Tracker, ct: Conn, pkt: Packet, ctinfo: int, now: float) -> int:
        """Look at one packet of a helped entry (after the rules, before confirm).
        Returns NF_ACCEPT or NF_DROP (then ``pkt.reason`` says why)."""
        ...

    def new_data(self) -> Any:
        """Fresh helper-private state for a newly helped entry."""
        ...


class Help:
    """``struct nf_conn_help`` of an entry, created when it gets a helper or comes from an
    expectation (then ``origin`` is that expectation and ``helper`` usually None).

    expectations: this master's live expectations, newest first (``help->expectations``);
    data: the helper's private state; children: confirmed, live entries whose master this
    is (each holds a reference on it: ``conntrack -L`` shows ``use=1+children``)."""

    __slots__ = ("helper", "expectations", "data", "children", "origin")

    def __init__(self, helper: Helper | None, origin: Expectation | None = None) -> None:
        self.helper = helper
        self.expectations: list[Expectation] = []
        self.data: Any = helper.new_data() if helper is not None else None
        self.children = 0
        self.origin = origin


def attach(ct: Conn, helper: Helper, explicit: bool = True) -> None:
    """Give ``ct`` a helper (``__nf_ct_try_assign_helper``; IPS_HELPER when explicit)."""
    h = ct.help
    if h is None:
        ct.help = Help(helper)
    else:
        h.helper = helper
        h.data = helper.new_data()
    ct.helper = helper.name
    if explicit:
        ct.status |= IPS_HELPER


def from_expectation(ct: Conn, exp: Expectation) -> None:
    """``init_conntrack`` for an entry that fulfils ``exp``: IPS_EXPECTED, the master and
    its mark, the expectation's helper (none for FTP/TFTP); ``ct.help.origin`` keeps the
    expectation for the trace."""
    master = exp.master
    ct.status |= IPS_EXPECTED
    ct.master = master
    ct.mark = master.mark
    ct.help = Help(exp.helper, origin=exp)
    if exp.helper is not None:
        ct.helper = exp.helper.name


def helper_match(ct: Conn | None, name: str) -> bool:
    """``-m helper --helper NAME`` (xt_helper, before ``!``): the entry is an expected one
    and its master's helper name is a prefix of NAME (``strncmp(helper, NAME,
    strlen(helper))``); an empty NAME matches any helper. NAME is cut to 29 characters."""
    if ct is None:
        return False
    m = ct.master
    if m is None or m.help is None or m.help.helper is None:
        return False
    name = name[:29]
    if name == "":
        return True
    return name.startswith(m.help.helper.name)


class Registry:
    """The helpers of one profile, by (name, family, protocol) and, for linux-2.4, by port.

    Module parameters as the kernel reads them at load time: ``nf_conntrack_ftp.ports``
    (helpers ``ftp`` / ``ftp-<port>``), ``nf_conntrack_ftp.loose``,
    ``nf_conntrack_tftp.ports`` (``tftp`` / ``tftp-<index>``). A module whose port list
    registers a name or port twice fails to load in the kernel: none of its helpers exist.
    """

    __slots__ = ("by_name", "by_port")

    def __init__(self, settings: Settings) -> None:
        self.by_name: dict[tuple[str, int, int], Helper] = {}
        self.by_port: dict[tuple[int, int], Helper] = {}
        if settings.profile == "linux-2.4":
            from .ftp import Ftp24
            # 2.4.0 registered one FTP helper (IPv4, port 21); statewall honours the ports
            # parameter of later 2.4 releases
            for port in dict.fromkeys(settings.ftp_ports):
                h24 = Ftp24(port)
                self.by_name[(h24.name, 2, IPPROTO_TCP)] = h24
                self.by_port[(IPPROTO_TCP, port)] = h24
            return
        from .ftp import Ftp
        from .tftp import Tftp
        ftp: list[Helper] = []
        for port in settings.ftp_ports:
            name = "ftp" if port == 21 else f"ftp-{port}"
            ftp += [Ftp(name, l3, port, settings.ftp_loose) for l3 in (2, 10)]
        tftp: list[Helper] = []
        for i, port in enumerate(settings.tftp_ports):
            name = "tftp" if port == 69 else f"tftp-{i}"
            tftp += [Tftp(name, l3, port) for l3 in (2, 10)]
        for group in (ftp, tftp):
            keys = {(h.name, h.l3num, h.proto) for h in group}
            ports = {(h.l3num, h.proto, h.port) for h in group}
            if len(keys) != len(group) or len(ports) != len(group):
                continue                     # nf_conntrack_helpers_register: -EBUSY
            for h in group:
                self.by_name[(h.name, h.l3num, h.proto)] = h

    def find(self, name: str, l3num: int, proto: int) -> Helper | None:
        """``__nf_conntrack_helper_find``: what ``CT --helper NAME`` resolves to (None:
        iptables refuses the rule, "No such file or directory")."""
        return self.by_name.get((name, l3num, proto))

    def names(self) -> list[str]:
        return sorted({k[0] for k in self.by_name})

    def by_reply_port(self, proto: int, port: int) -> Helper | None:
        """linux-2.4: the helper whose tuple matches the new entry's reply tuple (source
        port = the original destination port)."""
        return self.by_port.get((proto, port))
