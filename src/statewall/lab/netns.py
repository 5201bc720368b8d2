"""The lab topology: a firewall namespace ``fw`` and one peer namespace per fw interface,
joined by veth pairs (the corpus lab: client - fw - server).

Owns: creating the namespaces and *always* tearing them down again (context manager,
``atexit``, SIGTERM/SIGHUP turned into ``SystemExit``, a reaper for namespaces left by dead
processes), addressing, routes, static neighbours, sysctls, the peers' "silence" rules,
commands run inside a namespace and sockets opened inside a namespace.
Must not know: scenarios, conntrack, capture or trace formats. This is edge code: it runs
``ip``, ``sysctl``, ``iptables-restore``/``ip6tables-restore`` as
subprocesses and needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN for ``ip netns``).

The standard lab (``Topology()``) has two peers, ``client`` behind fw's ``c0`` and ``server``
behind ``s0``, with the addressing plan below.  ``Topology(endpoints=[...])`` builds any number
of fw interfaces (``statewall kernel-diff`` names them after a capture's interfaces); each
``Endpoint`` says which prefixes fw routes to it and which addresses get a permanent
neighbour entry there, so fw forwards to any address without ARP/ND.

Safety: the corpus lab configures only documentation addresses (198.51.100.0/24,
203.0.113.0/24, 192.0.2.0/24, 2001:db8::/32); a capture lab uses the capture's addresses,
which exist only inside these namespaces (fw's only links are the veths to its peers, whose
stacks are silenced).  The root namespace is never touched: every command runs through
``ip netns exec <ours>`` and every socket is opened after ``setns`` into one of ours.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Final

Role = str  # "fw" or a peer's side name
Side = str  # a peer: "client", "server", or (capture labs) the fw interface's name

NS_PREFIX: Final = "sw-"
CLONE_NEWNET: Final = 0x40000000

# ---------------------------------------------------------------------------------------
# Addressing plan (documentation ranges only).  MACs are fixed, locally administered
# unicast addresses, so that captures are byte-for-byte reproducible between runs.
FW_CLIENT_IF: Final = "c0"  # fw's interface towards the client
FW_SERVER_IF: Final = "s0"  # fw's interface towards the server
PEER_IF: Final = "eth0"  # the client's / server's only interface

FW_CLIENT_MAC: Final = "02:00:00:00:01:01"
CLIENT_MAC: Final = "02:00:00:00:01:02"
FW_SERVER_MAC: Final = "02:00:00:00:02:01"
SERVER_MAC: Final = "02:00:00:00:02:02"

FW_CLIENT_V4: Final = "198.51.100.1"
CLIENT_V4: Final = "198.51.100.2"
FW_SERVER_V4: Final = "203.0.113.1"
SERVER_V4: Final = "203.0.113.2"
FW_CLIENT_V6: Final = "2001:db8:1::1"
CLIENT_V6: Final = "2001:db8:1::2"
FW_SERVER_V6: Final = "2001:db8:2::1"
SERVER_V6: Final = "2001:db8:2::2"

# Which side of fw an address lives on.  Crafted packets may use any address of these
# prefixes; fw has routes and static neighbour entries for all of them.
CLIENT_SIDE_V4: Final = ("198.51.100.0/24", "192.0.2.0/24")
SERVER_SIDE_V4: Final = ("203.0.113.0/24",)
CLIENT_SIDE_V6: Final = ("2001:db8:1::/64",)
SERVER_SIDE_V6: Final = ("2001:db8:2::/64",)
DOC_PREFIXES: Final = CLIENT_SIDE_V4 + SERVER_SIDE_V4 + ("2001:db8::/32",)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One peer namespace and the fw interface that faces it.

    ``ipv4``/``ipv6``: the peer's own addresses ("" for none; only live peers use them);
    ``fw_ipv4``/``fw_ipv6``: fw's first address on the link ("" for none), with
    ``fw_plen4``/``fw_plen6`` and any ``fw_extra`` ("ADDR/PLEN") addresses; ``routes``:
    prefixes fw routes out of ``fw_ifname`` (besides the connected ones); ``neighbours``:
    addresses that get a permanent neighbour entry with the peer's MAC on that link (and a
    host route when no route covers them).
    """

    side: Side
    ns: str
    ifname: str
    mac: str
    ipv4: str
    ipv6: str
    fw_ifname: str
    fw_mac: str
    fw_ipv4: str
    fw_ipv6: str
    fw_plen4: int = 24
    fw_plen6: int = 64
    fw_extra: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    neighbours: tuple[str, ...] = ()

    def fw_addresses(self) -> list[str]:
        """fw's addresses on this link as ``ADDR/PLEN``."""
        out = []
        if self.fw_ipv4:
            out.append(f"{self.fw_ipv4}/{self.fw_plen4}")
        if self.fw_ipv6:
            out.append(f"{self.fw_ipv6}/{self.fw_plen6}")
        return out + list(self.fw_extra)


def lab_mac(index: int, fw: bool) -> str:
    """The fixed MAC of fw's (``fw``) or the peer's end of link ``index`` (0-based)."""
    return f"02:00:00:00:{index + 1:02x}:{1 if fw else 2:02x}"


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A fw interface of a capture lab, before namespace names exist: its name, fw's
    addresses on it (``ADDR/PLEN``), the prefixes routed out of it and the addresses that
    live behind it (permanent neighbour entries)."""

    fw_ifname: str
    fw_addrs: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    neighbours: tuple[str, ...] = ()


def link_endpoints(prefix: str, links: Sequence[LinkSpec]) -> list[Endpoint]:
    """Endpoints for ``links``: the peer behind fw's ``X`` is called ``X`` (namespace
    ``<prefix>-p<i>``), its MACs are ``lab_mac(i, ...)``; peers have no addresses."""
    import ipaddress

    out = []
    for i, ln in enumerate(links):
        v4 = [ipaddress.ip_interface(a) for a in ln.fw_addrs if ":" not in a]
        v6 = [ipaddress.ip_interface(a) for a in ln.fw_addrs if ":" in a]
        firsts = {str(v[0]) for v in (v4, v6) if v}
        extra = tuple(str(ipaddress.ip_interface(a)) for a in ln.fw_addrs
                      if str(ipaddress.ip_interface(a)) not in firsts)
        out.append(Endpoint(
            ln.fw_ifname, f"{prefix}-p{i}", PEER_IF, lab_mac(i, False), "", "",
            ln.fw_ifname, lab_mac(i, True),
            str(v4[0].ip) if v4 else "", str(v6[0].ip) if v6 else "",
            v4[0].network.prefixlen if v4 else 24, v6[0].network.prefixlen if v6 else 64,
            extra, tuple(ln.routes), tuple(ln.neighbours)))
    return out


def standard_endpoints(prefix: str) -> list[Endpoint]:
    """The corpus lab: ``client`` behind ``c0``, ``server`` behind ``s0``."""
    nb_client = [f"{net}.{h}" for net in ("198.51.100", "192.0.2") for h in range(1, 255)
                 if f"{net}.{h}" != FW_CLIENT_V4] + [CLIENT_V6]
    nb_server = [f"203.0.113.{h}" for h in range(1, 255)
                 if f"203.0.113.{h}" != FW_SERVER_V4] + [SERVER_V6]
    return [
        Endpoint("client", f"{prefix}-cl", PEER_IF, CLIENT_MAC, CLIENT_V4, CLIENT_V6,
                 FW_CLIENT_IF, FW_CLIENT_MAC, FW_CLIENT_V4, FW_CLIENT_V6,
                 routes=("192.0.2.0/24",), neighbours=tuple(nb_client)),
        Endpoint("server", f"{prefix}-sv", PEER_IF, SERVER_MAC, SERVER_V4, SERVER_V6,
                 FW_SERVER_IF, FW_SERVER_MAC, FW_SERVER_V4, FW_SERVER_V6,
                 neighbours=tuple(nb_server)),
    ]


class LabError(RuntimeError):
    """A lab command failed (the message carries the command and its stderr)."""


# ---------------------------------------------------------------------------------------
# Cleanup registry: every live Topology is torn down at interpreter exit and on
# SIGTERM/SIGHUP (turned into SystemExit so that ``finally`` blocks run).  SIGINT already
# raises KeyboardInterrupt.
_LIVE: set[Topology] = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False
_SEQ = 0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _install_cleanup_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(teardown_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _exit_on_signal)


def teardown_all() -> None:
    """Tear down every topology this process still has up (idempotent)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for topo in live:
        topo.down()


def list_lab_namespaces(prefix: str = NS_PREFIX) -> list[str]:
    """Names of existing network namespaces that start with ``prefix``."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def reap_stale(prefix: str = NS_PREFIX) -> list[str]:
    """Delete lab namespaces ``<prefix><pid>-...`` whose creating process is gone."""
    reaped = []
    pat = re.compile(re.escape(prefix) + r"(\d+)-")
    for name in list_lab_namespaces(prefix):
        m = pat.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        reaped.append(name)
    return reaped


def lab_available() -> tuple[bool, str]:
    """Can this process build a lab?  Returns (ok, reason-if-not)."""
    if os.geteuid() != 0:
        return False, "needs root (CAP_NET_ADMIN/CAP_SYS_ADMIN) for ip netns"
    for tool in ("ip", "iptables-restore", "ip6tables-restore", "conntrack", "sysctl"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found"
    probe = f"{NS_PREFIX}{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"ip netns add failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True, ""


# ---------------------------------------------------------------------------------------
# Sockets inside a namespace: setns(2) affects only the calling thread, so a short-lived
# thread enters the namespace, opens the socket and ends; the socket stays in that netns.
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in_netns(ns: str, family: int, type_: int, proto: int = 0, *,
                    fsuid: int | None = None) -> socket.socket:
    """Open ``socket(family, type_, proto)`` inside network namespace ``ns``.

    ``fsuid``: create it with this filesystem uid (the socket's owner, as ``-m owner
    --uid-owner`` sees it); root keeps CAP_NET_RAW, which is not a filesystem capability.
    """
    box: dict[str, socket.socket | BaseException] = {}

    def work() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            if fsuid is not None:
                _libc.setfsuid(fsuid)  # per thread; this thread ends right after
            box["sock"] = socket.socket(family, type_, proto)
        except BaseException as exc:  # handed to the caller below
            box["err"] = exc

    t = threading.Thread(target=work, name=f"setns-{ns}", daemon=True)
    t.start()
    t.join()
    err = box.get("err")
    if isinstance(err, BaseException):
        raise err
    sock = box["sock"]
    assert isinstance(sock, socket.socket)
    return sock


# Offloads off through the legacy SIOCETHTOOL set-value commands (no ethtool binary needed):
# veth marks CHECKSUM_NONE packets as CHECKSUM_UNNECESSARY when the receiver has rx-csum
# on, which would stop conntrack from checking crafted checksums; tx/tso/gso offloads would
# hand fw partial checksums and 64 KiB super-segments.
SIOCETHTOOL: Final = 0x8946
_ETHTOOL_OFFLOAD_SETTERS: Final = (
    0x15,  # ETHTOOL_SRXCSUM
    0x17,  # ETHTOOL_STXCSUM
    0x1F,  # ETHTOOL_STSO
    0x24,  # ETHTOOL_SGSO
    0x2C,  # ETHTOOL_SGRO
)


def _ethtool_set(sock: socket.socket, ifname: str, cmd: int, value: int) -> None:
    import fcntl
    import struct

    val = ctypes.create_string_buffer(struct.pack("=II", cmd, value), 8)
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(val)) + bytes(16)
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


# ---------------------------------------------------------------------------------------
class Topology:
    """client --(eth0|c0)-- fw --(s0|eth0)-- server, each in its own network namespace
    (or, with ``links`` or ``endpoints``, any set of peers behind fw's interfaces).

    ``up()`` builds it, ``down()`` removes it (idempotent, also runs at exit / on signals).
    Use as a context manager.  ``live_peers=False`` silences the peers' own stacks (raw
    PREROUTING DROP and OUTPUT policy DROP) so crafted packets get no kernel answers;
    ``live_peers=True`` lets them answer (real programs).
    """

    def __init__(self, prefix: str | None = None,
                 endpoints: Sequence[Endpoint] | None = None,
                 links: Sequence[LinkSpec] | None = None) -> None:
        global _SEQ
        _SEQ += 1
        self.prefix = prefix or f"{NS_PREFIX}{os.getpid()}-{_SEQ}"
        if endpoints is not None:
            eps = list(endpoints)
        elif links is not None:
            eps = link_endpoints(self.prefix, links)
        else:
            eps = standard_endpoints(self.prefix)
        if not eps:
            raise LabError("a topology needs at least one peer")
        names = [ep.side for ep in eps]
        if len(set(names)) != len(names) or "fw" in names:
            raise LabError(f"peer names must be unique and not 'fw': {names}")
        self.endpoints: tuple[Endpoint, ...] = tuple(eps)
        self.ns: dict[Role, str] = {"fw": f"{self.prefix}-fw"}
        for ep in eps:
            self.ns[ep.side] = ep.ns
        by_side = {ep.side: ep for ep in eps}
        self.client = by_side.get("client", eps[0])
        self.server = by_side.get("server", eps[-1])
        self.live_peers = False
        self.offloads_disabled = False
        self.route_table: list[tuple[str, str]] = []  # (prefix, fw interface), as built
        self._procs: list[subprocess.Popen[bytes]] = []
        self._up = False

    # -- context manager ------------------------------------------------------------
    def __enter__(self) -> Topology:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    def endpoint(self, side: Side) -> Endpoint:
        for ep in self.endpoints:
            if ep.side == side:
                return ep
        raise KeyError(f"no peer {side!r} in this lab")

    def endpoint_of_iface(self, fw_ifname: str) -> Endpoint:
        for ep in self.endpoints:
            if ep.fw_ifname == fw_ifname:
                return ep
        raise KeyError(f"fw has no interface {fw_ifname!r}")

    @property
    def fw_ifaces(self) -> tuple[str, ...]:
        return tuple(ep.fw_ifname for ep in self.endpoints)

    @property
    def is_up(self) -> bool:
        return self._up

    # -- commands ---------------------------------------------------------------------
    def argv(self, role: Role, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *argv]

    def run(self, role: Role, argv: Sequence[str], *, check: bool = True,
            input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``role``'s namespace and wait for it."""
        full = self.argv(role, argv)
        r = subprocess.run(full, capture_output=True, text=True, input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{' '.join(full)} -> {r.returncode}: {r.stderr.strip()}")
        return r

    def popen(self, role: Role, argv: Sequence[str], **kw: object) -> subprocess.Popen[bytes]:
        """Start a command inside ``role``'s namespace; it is killed by ``down()``."""
        p: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            self.argv(role, argv), start_new_session=True, **kw)
        self._procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
             timeout: float = 2.0) -> int | None:
        """Signal a process started by ``popen`` (its whole session) and reap it."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout)
        if p in self._procs:
            self._procs.remove(p)
        return p.returncode

    def socket(self, role: Role, family: int, type_: int, proto: int = 0, *,
               fsuid: int | None = None) -> socket.socket:
        return socket_in_netns(self.ns[role], family, type_, proto, fsuid=fsuid)

    def sysctl(self, role: Role, settings: dict[str, str | int]) -> dict[str, str]:
        """Write sysctls in ``role``'s namespace; return the values read back."""
        if not settings:
            return {}
        self.run(role, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())])
        r = self.run(role, ["sysctl", "-n", *settings])
        return dict(zip(settings, r.stdout.split("\n")))

    def ifindexes(self, role: Role) -> dict[int, str]:
        """ifindex -> name inside ``role``'s namespace."""
        r = self.run(role, ["ip", "-o", "link", "show"])
        out: dict[int, str] = {}
        for line in r.stdout.splitlines():
            idx, name = line.split(":", 2)[:2]
            out[int(idx)] = name.strip().split("@")[0]
        return out

    # -- build / teardown -------------------------------------------------------------
    def up(self, *, live_peers: bool = False, extra_v6: Iterable[str] = (),
           disable_offloads: bool = True) -> Topology:
        """Build the three namespaces.  On any failure everything is torn down again.

        ``extra_v6``: IPv6 addresses (besides the standard ones) that crafted packets use;
        fw gets static neighbour entries for them.  IPv4 needs none: fw has permanent
        neighbour entries for every host of the three /24s.  ``disable_offloads`` (default
        on) turns off checksum/segmentation offloads on all four veth ends, so that fw
        verifies checksums like a real NIC's driver would leave it to, and receives real
        checksums and MTU-sized segments from the peers' stacks.
        """
        if self._up:
            raise LabError("topology already up")
        _install_cleanup_handlers()
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._up = True
        self.live_peers = live_peers
        try:
            self._build(live_peers, list(extra_v6), disable_offloads)
        except BaseException:
            self.down()
            raise
        return self

    def _build(self, live_peers: bool, extra_v6: list[str], offloads_off: bool) -> None:
        roles: list[Role] = ["fw", *(ep.side for ep in self.endpoints)]
        for role in roles:
            subprocess.run(["ip", "netns", "add", self.ns[role]], check=True,
                           capture_output=True)
        for role in roles:
            # No DAD (addresses usable at once), no RA/RS, lo up.
            self.sysctl(role, {"net.ipv6.conf.all.accept_dad": 0,
                               "net.ipv6.conf.default.accept_dad": 0,
                               "net.ipv6.conf.all.accept_ra": 0,
                               "net.ipv6.conf.default.accept_ra": 0,
                               "net.ipv6.conf.default.router_solicitations": 0})
            self.run(role, ["ip", "link", "set", "lo", "up"])
        for ep in self.endpoints:
            self._peer_firewall(ep, live_peers)

        fw = self.ns["fw"]
        for ep in self.endpoints:
            subprocess.run(
                ["ip", "link", "add", ep.fw_ifname, "netns", fw, "address", ep.fw_mac,
                 "type", "veth", "peer", "name", ep.ifname, "netns", ep.ns,
                 "address", ep.mac], check=True, capture_output=True)
        if offloads_off:
            self._disable_offloads()

        self.sysctl("fw", {"net.ipv4.ip_forward": 1,
                           "net.ipv6.conf.all.forwarding": 1,
                           "net.ipv4.conf.all.send_redirects": 0,
                           "net.ipv4.conf.default.send_redirects": 0,
                           "net.ipv4.conf.all.rp_filter": 0,
                           "net.ipv4.conf.default.rp_filter": 0})
        batch_fw: list[str] = []
        for ep in self.endpoints:
            batch_fw.append(f"link set {ep.fw_ifname} up")
            for a in ep.fw_addresses():
                batch_fw.append(f"addr add {a} dev {ep.fw_ifname}"
                                + (" nodad" if ":" in a else ""))
            peer_batch = [f"link set {ep.ifname} up"]
            if ep.ipv4:
                peer_batch.append(f"addr add {ep.ipv4}/{ep.fw_plen4} dev {ep.ifname}")
            if ep.ipv6:
                peer_batch.append(f"addr add {ep.ipv6}/{ep.fw_plen6} dev {ep.ifname} nodad")
            if ep.ipv4 and ep.fw_ipv4:
                peer_batch += [f"route add default via {ep.fw_ipv4}",
                               f"neigh replace {ep.fw_ipv4} lladdr {ep.fw_mac} "
                               f"dev {ep.ifname} nud permanent"]
            if ep.ipv6 and ep.fw_ipv6:
                peer_batch += [f"route add default via {ep.fw_ipv6}",
                               f"neigh replace {ep.fw_ipv6} lladdr {ep.fw_mac} "
                               f"dev {ep.ifname} nud permanent"]
            self.run(ep.side, ["ip", "-batch", "-"], input="\n".join(peer_batch) + "\n")
        self.run("fw", ["ip", "-batch", "-"], input="\n".join(batch_fw) + "\n")
        self._fw_routes(extra_v6)
        self._wait_carrier()

    def _fw_routes(self, extra_v6: list[str]) -> None:
        """Routes and permanent neighbours in fw: no ARP/ND is ever needed towards peers."""
        import ipaddress

        nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        batch: list[str] = []
        for ep in self.endpoints:
            for a in ep.fw_addresses():
                nets.append((ipaddress.ip_interface(a).network, ep.fw_ifname))
            for r in ep.routes:
                net = ipaddress.ip_network(r, strict=False)
                nets.append((net, ep.fw_ifname))
                batch.append(f"route replace {net} dev {ep.fw_ifname}")
        routes = [(str(net), dev) for net, dev in nets]
        own = {ipaddress.ip_interface(a).ip for ep in self.endpoints
               for a in ep.fw_addresses()}
        extra: dict[str, list[str]] = {}
        for addr in extra_v6:
            extra.setdefault(side_of(addr), []).append(addr)
        for ep in self.endpoints:
            for addr in dict.fromkeys([*ep.neighbours, *extra.get(ep.side, [])]):
                ip = ipaddress.ip_address(addr)
                if ip in own:
                    continue
                if not any(ip in net and dev == ep.fw_ifname for net, dev in nets):
                    batch.append(f"route replace {ip}/{ip.max_prefixlen} dev {ep.fw_ifname}")
                    routes.append((f"{ip}/{ip.max_prefixlen}", ep.fw_ifname))
                batch.append(f"neigh replace {ip} lladdr {ep.mac} dev {ep.fw_ifname} "
                             "nud permanent")
        if batch:
            self.run("fw", ["ip", "-batch", "-"], input="\n".join(batch) + "\n",
                     timeout=120.0)
        self.route_table = list(dict.fromkeys(routes))

    def route_iface(self, addr: str) -> str | None:
        """fw's output interface for ``addr`` by longest prefix match over ``route_table``
        (None: no route, or ``addr`` is fw's own)."""
        import ipaddress

        ip = ipaddress.ip_address(addr)
        for ep in self.endpoints:
            if any(ipaddress.ip_interface(a).ip == ip for a in ep.fw_addresses()):
                return None
        best: tuple[int, str] | None = None
        for prefix, dev in self.route_table:
            net = ipaddress.ip_network(prefix)
            if net.version == ip.version and ip in net and (
                    best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, dev)
        return best[1] if best else None

    def _peer_firewall(self, ep: Endpoint, live: bool) -> None:
        """What the peers' own stacks may send: only to the documentation ranges (a program
        that tries anything else, e.g. a resolver lookup, gets EPERM), never MLD/RS; silent
        peers neither process nor send anything at all."""
        if live:
            out4 = [f"-A OUTPUT -d {net} -j ACCEPT" for net in CLIENT_SIDE_V4 + SERVER_SIDE_V4]
            out6 = ["-A OUTPUT -d 2001:db8::/32 -j ACCEPT"]
        else:
            out4 = out6 = []
        v4 = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT DROP [0:0]",
              "-A OUTPUT -o lo -j ACCEPT", *out4, "COMMIT"]
        v6 = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT DROP [0:0]",
              "-A OUTPUT -o lo -j ACCEPT", *out6, "COMMIT"]
        if not live:
            raw = ["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                   "-A PREROUTING -j DROP", "COMMIT"]
            v4 = raw + v4
            v6 = raw + v6
        self.run(ep.side, ["iptables-restore"], input="\n".join(v4) + "\n")
        self.run(ep.side, ["ip6tables-restore"], input="\n".join(v6) + "\n")

    def _disable_offloads(self) -> None:
        for ep in self.endpoints:
            ends: tuple[tuple[Role, str], ...] = ((ep.side, ep.ifname), ("fw", ep.fw_ifname))
            for role, ifname in ends:
                with self.socket(role, socket.AF_INET, socket.SOCK_DGRAM) as s:
                    for cmd in _ETHTOOL_OFFLOAD_SETTERS:
                        _ethtool_set(s, ifname, cmd, 0)
        self.offloads_disabled = True

    def _wait_carrier(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = self.run("fw", ["ip", "-o", "link", "show", "up"])
            if r.stdout.count("LOWER_UP") >= 1 + len(self.endpoints):  # lo + veths
                return
            if time.monotonic() > deadline:
                raise LabError(f"veth links did not come up: {r.stdout}")
            time.sleep(0.02)

    def down(self) -> None:
        """Kill our processes and delete our namespaces.  Idempotent; never raises."""
        if not self._up:
            return
        for p in list(self._procs):
            try:
                self.stop(p, signal.SIGKILL, timeout=2.0)
            except Exception:
                pass
        self._procs.clear()
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self._up = False
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def leftover(self) -> list[str]:
        """Our namespaces that still exist (should be [] after ``down()``)."""
        existing = set(list_lab_namespaces(self.prefix))
        return [n for n in self.ns.values() if n in existing]


def side_of(addr: str) -> Side:
    """Which side of fw an address in the documentation ranges lives on."""
    import ipaddress

    ip = ipaddress.ip_address(addr)
    for nets, side in ((CLIENT_SIDE_V4 + CLIENT_SIDE_V6, "client"),
                       (SERVER_SIDE_V4 + SERVER_SIDE_V6, "server")):
        if any(ip in ipaddress.ip_network(n) for n in nets):
            return side
    raise ValueError(f"{addr} is outside the lab's documentation ranges")


def is_doc_address(addr: str) -> bool:
    """True for addresses the lab may use (the documentation ranges only)."""
    import ipaddress

    ip = ipaddress.ip_address(addr)
    return any(ip in ipaddress.ip_network(n) for n in DOC_PREFIXES)
