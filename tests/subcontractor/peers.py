"""Real peers for the ``iputils`` SNMP functions and the ``ssh`` module: Net-SNMP's ``snmpd``
and OpenSSH's ``sshd``, each on a loopback port of its own with throwaway secrets, and the
Net-SNMP command-line tools to read back what a test changed."""

from __future__ import annotations

import getpass
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from contractor.child_process import free_port, stop_child
from tests.subcontractor.bmc import free_udp_port, require_tools

SNMPD = "/usr/sbin/snmpd"
SSHD = "/usr/sbin/sshd"


@dataclass
class Snmpd:
    port: int
    read_community: str
    write_community: str
    user: str
    auth_key: str
    priv_key: str

    def get(self, oid: str) -> str:
        """``oid``'s value as ``snmpget`` reads it (SNMPv2c, the read community)."""
        result = subprocess.run(
            ["snmpget", "-v2c", "-c", self.read_community, "-Oqv", "-m", "", *self._at(), oid],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"snmpget {oid}: {result.stderr}")
        return result.stdout.strip().strip('"')

    def _at(self) -> list[str]:
        return [f"127.0.0.1:{self.port}"]


@contextmanager
def snmpd(directory: Path) -> Iterator[Snmpd]:
    """One SNMP agent until the block ends: a read and a write community, and an SNMPv3 user
    with SHA authentication and AES privacy; ``sysDescr`` is fixed, ``sysContact`` writable."""
    require_tools(SNMPD, "snmpget")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    agent = Snmpd(
        port=port,
        read_community="ro-" + os.urandom(6).hex(),
        write_community="rw-" + os.urandom(6).hex(),
        user="tester",
        auth_key="auth-" + os.urandom(6).hex(),
        priv_key="priv-" + os.urandom(6).hex(),
    )
    config = directory / "snmpd.conf"
    config.write_text(
        f"""agentAddress udp:127.0.0.1:{port}
rocommunity {agent.read_community} 127.0.0.1
rwcommunity {agent.write_community} 127.0.0.1
sysDescr contractor test agent
createUser {agent.user} SHA "{agent.auth_key}" AES "{agent.priv_key}"
rwuser {agent.user} priv
"""
    )
    log = directory / "snmpd.log"
    process = subprocess.Popen(
        [
            SNMPD,
            "-f",
            "-C",
            "-c",
            str(config),
            "-Lf",
            str(log),
            "-p",
            str(directory / "pid"),
            f"--persistentDir={directory / 'state'}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, MIBS=""),
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                agent.get("1.3.6.1.2.1.1.1.0")
                break
            except AssertionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text() if log.exists() else "no log"
                    raise AssertionError(f"snmpd did not come up:\n{text}") from None
                time.sleep(0.1)
        yield agent
    finally:
        stop_child(process)


@dataclass
class Sshd:
    port: int
    username: str
    client_key: Path  # the private key authorized_keys lets in
    known_hosts: Path  # the server's throwaway host key, as a known_hosts file
    directory: Path

    def log(self) -> str:
        path = self.directory / "sshd.log"
        return path.read_text() if path.exists() else ""


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )


@contextmanager
def sshd(directory: Path) -> Iterator[Sshd]:
    """One OpenSSH server until the block ends, run as the test's own user (no privileges
    beyond it) on a loopback port, with a throwaway host key and one authorized client key;
    it lets in only that user. As root, sshd needs its privilege-separation directory, which
    a system normally makes at boot (made here if missing)."""
    require_tools(SSHD, "ssh-keygen")
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key")
    _keygen(directory / "client_key")
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    port = free_port()
    host_key = (directory / "host_key.pub").read_text().split()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    username = getpass.getuser()
    config = directory / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {directory / "host_key"}
PidFile {directory / "sshd.pid"}
AuthorizedKeysFile {directory / "authorized_keys"}
AllowUsers {username}
StrictModes no
UsePAM no
PasswordAuthentication yes
PermitRootLogin prohibit-password
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
"""
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (directory / "sshd.log").open("wb")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Sshd(port, username, directory / "client_key", known_hosts, directory)
    try:
        deadline = time.monotonic() + 15
        while "Server listening" not in server.log():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sshd did not come up:\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        stop_child(process)
        log.close()
