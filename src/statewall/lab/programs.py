"""Real programs the corpus runs between the lab's peers, as argv lists.

Owns: the shell command that starts an anonymous, read-only vsftpd serving one file.
Must not know: scenarios, namespaces (the caller runs the argv in a peer).
"""

from __future__ import annotations


def vsftpd_server(workdir: str, greeting: str, pasv: tuple[int, int] = (30000, 30009),
                  listen: str = "203.0.113.2") -> list[str]:
    """vsftpd in the foreground, anonymous read-only, serving ``hello.txt`` containing
    ``greeting`` from ``workdir``/root, active data from port 20, passive in ``pasv``."""
    d = workdir
    return ["sh", "-c", f"""set -e
mkdir -p {d}/root {d}/empty; chmod 755 {d} {d}/root {d}/empty
echo '{greeting}' > {d}/root/hello.txt; chmod 644 {d}/root/hello.txt
printf '%s\\n' listen=YES listen_ipv6=NO listen_address={listen} background=NO \
  anonymous_enable=YES no_anon_password=YES anon_root={d}/root local_enable=NO \
  write_enable=NO connect_from_port_20=YES pasv_min_port={pasv[0]} pasv_max_port={pasv[1]} \
  secure_chroot_dir={d}/empty seccomp_sandbox=NO dirmessage_enable=NO xferlog_enable=NO \
  > {d}/vsftpd.conf
exec vsftpd {d}/vsftpd.conf"""]
