"""Every tracker setting by its kernel sysctl name, and the two behaviour profiles.

Owns: the defaults of ``net.netfilter.nf_conntrack_*`` (and the defrag sysctls), the
``linux`` (current kernel) and ``linux-2.4`` (the 2001 seed) profiles, parsing of
``K=V`` settings and sysctl.conf-style files. Must not know: what the settings do.
Numbers follow net/netfilter/nf_conntrack_proto_*.c, nf_conntrack_core.c (sizing),
net/ipv4/ip_fragment.c; the 2.4 ones net/ipv4/netfilter/ip_conntrack_*.c of Linux 2.4.0.

``Settings`` has one attribute per sysctl, named by the sysctl's last component
(``nf_conntrack_tcp_timeout_established``), so the hot path reads plain attributes. The
helpers' module parameters (``nf_conntrack_ftp.ports``, ``nf_conntrack_ftp.loose``,
``nf_conntrack_tftp.ports``, see ``MODULE_PARAMS``) are set the same way and kept as
``ftp_ports``, ``ftp_loose``, ``tftp_ports``.
Timeouts are seconds (the kernel keeps jiffies but shows seconds).
"""

from __future__ import annotations

from typing import Final, Iterable

# full sysctl name -> default in the current kernel
DEFAULTS: Final[dict[str, int]] = {
    "net.netfilter.nf_conntrack_max": 262144,
    "net.netfilter.nf_conntrack_buckets": 262144,
    "net.netfilter.nf_conntrack_expect_max": 4096,
    "net.netfilter.nf_conntrack_acct": 0,
    "net.netfilter.nf_conntrack_checksum": 1,
    "net.netfilter.nf_conntrack_events": 1,
    "net.netfilter.nf_conntrack_timestamp": 0,
    "net.netfilter.nf_conntrack_log_invalid": 0,
    "net.netfilter.nf_conntrack_generic_timeout": 600,
    "net.netfilter.nf_conntrack_icmp_timeout": 30,
    "net.netfilter.nf_conntrack_icmpv6_timeout": 30,
    "net.netfilter.nf_conntrack_udp_timeout": 30,
    "net.netfilter.nf_conntrack_udp_timeout_stream": 120,
    "net.netfilter.nf_conntrack_gre_timeout": 30,
    "net.netfilter.nf_conntrack_gre_timeout_stream": 180,
    "net.netfilter.nf_conntrack_tcp_loose": 1,
    "net.netfilter.nf_conntrack_tcp_be_liberal": 0,
    "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst": 0,
    "net.netfilter.nf_conntrack_tcp_max_retrans": 3,
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent": 120,
    "net.netfilter.nf_conntrack_tcp_timeout_syn_recv": 60,
    "net.netfilter.nf_conntrack_tcp_timeout_established": 432000,
    "net.netfilter.nf_conntrack_tcp_timeout_fin_wait": 120,
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait": 60,
    "net.netfilter.nf_conntrack_tcp_timeout_last_ack": 30,
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait": 120,
    "net.netfilter.nf_conntrack_tcp_timeout_close": 10,
    "net.netfilter.nf_conntrack_tcp_timeout_max_retrans": 300,
    "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged": 300,
    "net.netfilter.nf_conntrack_frag6_timeout": 60,
    "net.netfilter.nf_conntrack_frag6_high_thresh": 4194304,
    "net.netfilter.nf_conntrack_frag6_low_thresh": 3145728,
    "net.ipv4.ipfrag_time": 30,
    "net.ipv4.ipfrag_high_thresh": 4194304,
    "net.ipv4.ipfrag_low_thresh": 3145728,
    "net.ipv4.ipfrag_max_dist": 64,
}

# The 2001 seed: Linux 2.4.0 ip_conntrack (128 MB machine: ip_conntrack_max = 8184).
LINUX_24: Final[dict[str, int]] = {
    "net.netfilter.nf_conntrack_max": 8184,
    "net.netfilter.nf_conntrack_buckets": 1023,
    "net.netfilter.nf_conntrack_checksum": 0,
    "net.netfilter.nf_conntrack_udp_timeout": 30,
    "net.netfilter.nf_conntrack_udp_timeout_stream": 180,
    "net.netfilter.nf_conntrack_icmp_timeout": 30,
    "net.netfilter.nf_conntrack_generic_timeout": 600,
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent": 120,
    "net.netfilter.nf_conntrack_tcp_timeout_syn_recv": 60,
    "net.netfilter.nf_conntrack_tcp_timeout_established": 432000,
    "net.netfilter.nf_conntrack_tcp_timeout_fin_wait": 120,
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait": 60,
    "net.netfilter.nf_conntrack_tcp_timeout_last_ack": 30,
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait": 120,
    "net.netfilter.nf_conntrack_tcp_timeout_close": 10,
}

PROFILES: Final = ("linux", "linux-2.4")

# Module parameters of the conntrack helpers (``/sys/module/<module>/parameters/<param>``),
# named ``<module>.<param>`` as on the kernel command line, with their defaults as text.
# ``ports``: up to 8 ports (``module_param_array(ports, ushort)``); FTP's ``loose`` is a bool.
# These are global in the kernel (not per network namespace).
MODULE_PARAMS: Final[dict[str, str]] = {
    "nf_conntrack_ftp.ports": "21",
    "nf_conntrack_ftp.loose": "0",
    "nf_conntrack_tftp.ports": "69",
}
_MODULE_ATTRS: Final = {"nf_conntrack_ftp.ports": "ftp_ports",
                        "nf_conntrack_ftp.loose": "ftp_loose",
                        "nf_conntrack_tftp.ports": "tftp_ports"}
# MODULE_ALIAS("ip_conntrack_ftp") / ("ip_conntrack_tftp"): the 2.4-era module names
_MODULE_ALIASES: Final = {"ip_conntrack_ftp": "nf_conntrack_ftp",
                          "ip_conntrack_tftp": "nf_conntrack_tftp"}
MAX_HELPER_PORTS: Final = 8

# short aliases users type: "nf_conntrack_udp_timeout", "netfilter.nf_conntrack_max", ...
_BY_LEAF: Final = {name.rsplit(".", 1)[1]: name for name in DEFAULTS}


class SettingError(ValueError):
    """A bad ``K=V`` setting; the message names the setting (and the file:line)."""


class Settings:
    """Resolved settings. Attribute names are the sysctl leaf names."""

    __slots__ = tuple(["profile", "ftp_ports", "ftp_loose", "tftp_ports"] + sorted(_BY_LEAF))

    profile: str
    ftp_ports: tuple[int, ...]      # nf_conntrack_ftp.ports
    ftp_loose: int                  # nf_conntrack_ftp.loose
    tftp_ports: tuple[int, ...]     # nf_conntrack_tftp.ports
    nf_conntrack_max: int
    nf_conntrack_buckets: int
    nf_conntrack_expect_max: int
    nf_conntrack_acct: int
    nf_conntrack_checksum: int
    nf_conntrack_events: int
    nf_conntrack_timestamp: int
    nf_conntrack_log_invalid: int
    nf_conntrack_generic_timeout: int
    nf_conntrack_icmp_timeout: int
    nf_conntrack_icmpv6_timeout: int
    nf_conntrack_udp_timeout: int
    nf_conntrack_udp_timeout_stream: int
    nf_conntrack_gre_timeout: int
    nf_conntrack_gre_timeout_stream: int
    nf_conntrack_tcp_loose: int
    nf_conntrack_tcp_be_liberal: int
    nf_conntrack_tcp_ignore_invalid_rst: int
    nf_conntrack_tcp_max_retrans: int
    nf_conntrack_tcp_timeout_syn_sent: int
    nf_conntrack_tcp_timeout_syn_recv: int
    nf_conntrack_tcp_timeout_established: int
    nf_conntrack_tcp_timeout_fin_wait: int
    nf_conntrack_tcp_timeout_close_wait: int
    nf_conntrack_tcp_timeout_last_ack: int
    nf_conntrack_tcp_timeout_time_wait: int
    nf_conntrack_tcp_timeout_close: int
    nf_conntrack_tcp_timeout_max_retrans: int
    nf_conntrack_tcp_timeout_unacknowledged: int
    nf_conntrack_frag6_timeout: int
    nf_conntrack_frag6_high_thresh: int
    nf_conntrack_frag6_low_thresh: int
    ipfrag_time: int
    ipfrag_high_thresh: int
    ipfrag_low_thresh: int
    ipfrag_max_dist: int

    def __init__(self, profile: str = "linux", overrides: Iterable[tuple[str, str]] = (),
                 source: str = "--sysctl") -> None:
        if profile not in PROFILES:
            raise SettingError(f"{source}: unknown profile {profile!r} "
                               f"(known: {', '.join(PROFILES)})")
        self.profile = profile
        values = dict(DEFAULTS)
        if profile == "linux-2.4":
            values.update(LINUX_24)
        for name, value in values.items():
            setattr(self, name.rsplit(".", 1)[1], value)
        for name, text in MODULE_PARAMS.items():
            setattr(self, _MODULE_ATTRS[name], _module_param(name, text, source))
        for key, raw in overrides:
            self.set(key, raw, source)

    def set(self, key: str, raw: str, source: str = "--sysctl") -> None:
        full = resolve_name(key)
        if full is None:
            raise SettingError(f"{source}: unknown sysctl {key!r}")
        if full in MODULE_PARAMS:
            setattr(self, _MODULE_ATTRS[full], _module_param(full, raw, source))
            return
        try:
            value = int(raw.strip(), 0)
        except ValueError:
            raise SettingError(f"{source}: {full}: not an integer: {raw.strip()!r}") from None
        if value < 0:
            raise SettingError(f"{source}: {full}: must not be negative: {value}")
        if full.endswith("nf_conntrack_max") and value == 0:
            value = 1 << 31   # 0 means unlimited in the kernel
        setattr(self, full.rsplit(".", 1)[1], value)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name.rsplit(".", 1)[1]) for name in DEFAULTS}


def resolve_name(key: str) -> str | None:
    """Full sysctl name for ``key`` (full name, ``/proc/sys`` path, or leaf name), or the
    ``module.param`` name of a helper module parameter (also as its ``/sys/module`` path)."""
    key = key.strip()
    if key.startswith("/proc/sys/"):
        key = key[len("/proc/sys/"):].replace("/", ".")
    if key in DEFAULTS:
        return key
    if key.startswith("/sys/module/"):
        parts = key[len("/sys/module/"):].split("/")
        if len(parts) == 3 and parts[1] == "parameters":
            key = f"{parts[0]}.{parts[2]}"
    module, _, param = key.partition(".")
    module = _MODULE_ALIASES.get(module, module)
    if f"{module}.{param}" in MODULE_PARAMS:
        return f"{module}.{param}"
    return _BY_LEAF.get(key.rsplit(".", 1)[-1])


def _kstrtoul(text: str) -> int:
    """``kstrtoul(s, 0)``: decimal, ``0x`` hex or leading-``0`` octal; ValueError else."""
    t = text.strip()
    if t.lower().startswith("0x"):
        return int(t[2:], 16)
    if len(t) > 1 and t.startswith("0"):
        return int(t[1:], 8)
    if not t.isdigit():
        raise ValueError(t)
    return int(t, 10)


def _module_param(name: str, raw: str, source: str) -> tuple[int, ...] | int:
    """Parse a helper module parameter the way the kernel's param setters do."""
    text = raw.strip()
    if name.endswith(".loose"):
        # param_set_bool -> kstrtobool: y/Y/1/on true, n/N/0/off false
        low = text.lower()
        if low[:1] in ("y", "1") or low == "on":
            return 1
        if low[:1] in ("n", "0") or low in ("off", "of"):
            return 0
        raise SettingError(f"{source}: {name}: not a boolean: {text!r}")
    parts = text.split(",")
    if len(parts) > MAX_HELPER_PORTS:
        raise SettingError(f"{source}: {name}: can only take {MAX_HELPER_PORTS} arguments")
    ports: list[int] = []
    for part in parts:
        try:
            port = _kstrtoul(part)
        except ValueError:
            raise SettingError(f"{source}: {name}: not a port number: {part.strip()!r}") from None
        if port > 0xFFFF:
            raise SettingError(f"{source}: {name}: port out of range: {port}")
        ports.append(port)
    return tuple(ports)


def parse_assignment(text: str, source: str = "--sysctl") -> tuple[str, str]:
    if "=" not in text:
        raise SettingError(f"{source}: expected NAME=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def parse_sysctl_file(text: str, filename: str) -> list[tuple[str, str]]:
    """sysctl.conf syntax: ``name = value`` lines, ``#``/``;`` comments, blank lines."""
    out: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("-"):
            stripped = stripped[1:]   # "-name = value": ignore errors in sysctl; we don't
        key, value = parse_assignment(stripped, f"{filename}:{lineno}")
        if resolve_name(key) is None:
            raise SettingError(f"{filename}:{lineno}: unknown sysctl {key!r}")
        out.append((key, value))
    return out
