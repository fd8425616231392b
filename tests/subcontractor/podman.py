"""A real Docker-compatible engine for the docker module's tests: ``podman system service`` on
a unix socket in a temporary directory, with its own storage (``--root``, ``--runroot``) and
network configuration, run inside a network namespace made for it (so its bridge network and
published ports never touch the host's), and an image built offline by ``podman import`` of a
busybox rootfs (busybox-static); nothing is ever pulled. Everything is removed afterwards:
the containers, the service, the storage's mount and the namespace.

This machine needs runc (crun fails with hybrid cgroups), cgroupfs, file events and lower
ulimits (realparts.md §10). The service is started with ``nsenter --net`` rather than ``ip
netns exec``, which remounts /sys and hides the cgroup mounts from runc.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

IMAGE = "localhost/contractor-busybox:test"
ULIMITS = {"nofile": (1024, 4096), "nproc": (1024, 2048)}
BUSYBOX = "/bin/busybox"


@dataclass(frozen=True)
class Engine:
    endpoint: str  # unix:///.../d.sock
    socket: str
    netns: str
    directory: Path

    def podman(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """The podman CLI on the engine's storage."""
        return subprocess.run(
            [*_podman(self.directory), *arguments], capture_output=True, text=True, timeout=120
        )

    def in_netns(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """A command in the engine's network namespace (where published ports listen)."""
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def containers(self) -> list[str]:
        """The names of every container the engine holds."""
        answer = self.podman("ps", "-a", "--format", "{{.Names}}")
        assert answer.returncode == 0, answer.stderr
        return sorted(answer.stdout.split())


def require_podman() -> None:
    missing = [c for c in ("podman", "runc", "nsenter", "ip") if shutil.which(c) is None]
    if not os.path.exists(BUSYBOX):
        missing.append("busybox-static")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/test installs them)")
    if os.geteuid() != 0:
        pytest.skip("the podman service and its network namespace need root")


def _podman(directory: Path) -> list[str]:
    return [
        "podman",
        "--root",
        str(directory / "root"),
        "--runroot",
        str(directory / "runroot"),
        "--tmpdir",
        str(directory / "tmp"),
        "--network-config-dir",
        str(directory / "net"),
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
        "--runtime",
        "runc",
    ]


def _rootfs_tar(directory: Path) -> Path:
    """A busybox rootfs: the static binary and the applets the tests run."""
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "tmp").mkdir()
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "httpd", "echo", "cat", "wget", "true"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello from the container\n")
    tar = directory / "rootfs.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(rootfs, arcname=".")
    return tar


def _listening(path: str) -> bool:
    """Whether a server accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@contextmanager
def podman_service() -> Iterator[Engine]:
    require_podman()
    # a short path: a unix socket's path is at most 107 bytes
    directory = Path(tempfile.mkdtemp(prefix="ctr-podman-", dir="/tmp"))
    netns = f"ctr-{uuid.uuid4().hex[:10]}"
    for sub in ("root", "runroot", "tmp", "net"):
        (directory / sub).mkdir()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    process: subprocess.Popen[bytes] | None = None
    log = None
    engine = Engine(f"unix://{directory}/d.sock", str(directory / "d.sock"), netns, directory)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        imported = engine.podman("import", str(_rootfs_tar(directory)), IMAGE)
        assert imported.returncode == 0, imported.stderr
        log = (directory / "service.log").open("wb")
        process = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{netns}",
                *_podman(directory),
                "system",
                "service",
                "--time=0",
                engine.endpoint,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        transport = httpx.HTTPTransport(uds=engine.socket)
        with httpx.Client(transport=transport, base_url="http://d", timeout=2) as client:
            while True:
                # httpx leaves its socket unclosed when a unix connect is refused (a
                # ResourceWarning, an error here): ask only once something listens
                if _listening(engine.socket):
                    try:
                        if client.get("/_ping").text == "OK":
                            break
                    except httpx.HTTPError:
                        pass
                assert process.poll() is None, (directory / "service.log").read_text()
                assert time.monotonic() < deadline, "podman system service did not answer"
                time.sleep(0.1)
        yield engine
    finally:
        engine.podman("rm", "--all", "--force", "--time", "0")
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        subprocess.run(["umount", "-l", str(directory / "root" / "overlay")], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        if log is not None:
            log.close()
        shutil.rmtree(directory, ignore_errors=True)
