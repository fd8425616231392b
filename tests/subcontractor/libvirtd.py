"""A real, private ``libvirtd`` with its QEMU driver (software emulation) for the libvirt
module's integration test, started as the recipe for this machine says (no systemd here):

* in a network namespace the test makes, with a bridge ``br0`` for the VMs' NICs (never a
  libvirt ``<network>``, which would put 192.168.122.x on the host), or in one the caller
  made (``libvirtd(netns=...)``: the boot tests' ``tests/rigs/netns.py``, whose bridge is
  joined to the host, where the subcontractor's boot services serve);
* in a private mount namespace where a copy of ``/etc/libvirt`` (its ``qemu.conf`` saying
  ``user``/``group`` ``root``, so defines do not re-probe the capabilities for 40 s, and
  ``stdio_handler = "file"``, so no ``virtlogd`` is needed) and fresh ``/run/libvirt``,
  ``/var/lib/libvirt``, ``/var/cache/libvirt`` and ``/var/log/libvirt`` are bind-mounted, so
  it shares nothing with a libvirtd someone else runs on this machine;
* with a directory storage pool ``vms``.

It yields the URI that reaches it (``qemu+unix:///system?socket=...``); libvirtd, every QEMU it
started, the namespace and the directory are gone afterwards, whatever happened.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

POOL = "vms"
BRIDGE = "br0"
MOUNTS = (
    "/run/libvirt",
    "/etc/libvirt",
    "/var/lib/libvirt",
    "/var/cache/libvirt",
    "/var/log/libvirt",
)
QEMU_CONF = """
user = "root"
group = "root"
stdio_handler = "file"
security_driver = "none"
"""


@dataclass(frozen=True)
class Libvirtd:
    uri: str
    directory: Path
    pid: int

    def qemu_log(self, name: str) -> str:
        path = self.directory / "var/log/libvirt/qemu" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def running_qemus(self) -> list[int]:
        """The QEMU processes this daemon started that still run."""
        return [pid for pid in _qemu_pids(self.directory) if _alive(pid)]


def require_libvirtd() -> None:
    """Skip, saying why, where this machine cannot run the test: not root, or libvirtd or
    QEMU not installed (scripts/test installs them)."""
    if os.geteuid() != 0:
        pytest.skip("a private libvirtd needs root (namespaces, bind mounts)")
    for tool in ("libvirtd", "qemu-system-x86_64", "unshare", "ip"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"{tool} is not installed (libvirt-daemon-system, qemu-system-x86)")


def _run(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    try:
        return status.read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def _stop(pid: int, wait: float = 20.0) -> None:
    """SIGTERM, then SIGKILL once ``wait`` has passed; returns once the process is gone."""
    for sig, limit in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _qemu_pids(directory: Path) -> list[int]:
    """The QEMU processes this libvirtd started (their pid files live in its /run, next to
    the QEMU driver's own, ``driver.pid``: libvirtd's)."""
    found = []
    for pidfile in (directory / "run/libvirt/qemu").glob("*.pid"):
        if pidfile.name == "driver.pid":
            continue
        try:
            found.append(int(pidfile.read_text().strip()))
        except (OSError, ValueError):
            continue
    return found


@contextmanager
def libvirtd(netns: str | None = None) -> Iterator[Libvirtd]:
    """The daemon until the block ends. ``netns``: an existing network namespace with a
    bridge ``br0`` to run it in (left as it is afterwards); by default one of its own."""
    require_libvirtd()
    # a short path: the socket's must fit a sockaddr_un (108 bytes)
    directory = Path(tempfile.mkdtemp(prefix="lvd-", dir="/tmp"))
    own_netns = netns is None
    netns = netns or f"lvd-{secrets.token_hex(3)}"
    pidfile = directory / "libvirtd.pid"
    pid = 0
    try:
        for mount in MOUNTS:
            (directory / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/libvirt", directory / "etc/libvirt", dirs_exist_ok=True)
        autostart = directory / "etc/libvirt/qemu/networks/autostart"
        if autostart.exists():
            shutil.rmtree(autostart)
        with (directory / "etc/libvirt/qemu.conf").open("a") as conf:
            conf.write(QEMU_CONF)
        (directory / "pool").mkdir()
        if own_netns:
            _run("ip", "netns", "add", netns)
            _run("ip", "-n", netns, "link", "set", "lo", "up")
            _run("ip", "-n", netns, "link", "add", BRIDGE, "type", "bridge")
            _run("ip", "-n", netns, "link", "set", BRIDGE, "up")
        binds = " && ".join(
            f"mkdir -p {mount} && mount --bind {directory}{mount} {mount}" for mount in MOUNTS
        )
        script = f"set -e; {binds}; exec libvirtd -d -p {pidfile}"
        _run("ip", "netns", "exec", netns, "unshare", "-m", "--propagation", "private",
             "sh", "-c", script)  # fmt: skip
        socket = directory / "run/libvirt/libvirt-sock"
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and socket.exists()):
            assert time.monotonic() < deadline, "libvirtd did not start"
            time.sleep(0.1)
        pid = int(pidfile.read_text().strip())
        uri = f"qemu+unix:///system?socket={socket}"
        pool = (
            f"<pool type='dir'><name>{POOL}</name>"
            f"<target><path>{directory / 'pool'}</path></target></pool>"
        )
        libvirt = pytest.importorskip("libvirt", reason="the libvirt extra is needed")
        conn = libvirt.open(uri)
        try:
            conn.storagePoolCreateXML(pool, 0)
        finally:
            conn.close()
        yield Libvirtd(uri=uri, directory=directory, pid=pid)
    finally:
        qemus = _qemu_pids(directory)
        if pid:
            _stop(pid)
        for qemu in qemus:  # libvirtd leaves running guests running
            _stop(qemu, wait=5)
        if own_netns:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        shutil.rmtree(directory, ignore_errors=True)
