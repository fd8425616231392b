"""A real dnsmasq in a network namespace, a real DHCP client (busybox udhcpc) in another,
joined by a veth pair: a reservation written to the hostsfile after dnsmasq started reaches
it with SIGHUP, the client gets the reserved address, and the lease file dnsmasq writes is
read as the report to Contractor names it."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from subcontractor.boot.leases import read_dnsmasq_leases

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

MAC = "52:54:00:12:34:56"
_names = itertools.count()


@dataclass
class Rig:
    client_ns: str
    client_link: str
    dnsmasq: subprocess.Popen[bytes]
    leases: Path
    hosts: Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    name = f"hb{os.getpid() % 10000}{next(_names)}"
    server, client = f"{name}s", f"{name}c"
    made: list[str] = []
    process: subprocess.Popen[bytes] | None = None
    try:
        for namespace in (server, client):
            _ip("netns", "add", namespace)
            made.append(namespace)
        _ip("link", "add", f"{name}a", "type", "veth", "peer", "name", f"{name}b")
        _ip("link", "set", f"{name}a", "netns", server)
        _ip("link", "set", f"{name}b", "netns", client)
        _ip("-n", server, "addr", "add", "192.0.2.1/24", "dev", f"{name}a")
        _ip("-n", server, "link", "set", f"{name}a", "up")
        _ip("-n", client, "link", "set", f"{name}b", "address", MAC)
        _ip("-n", client, "link", "set", f"{name}b", "up")
        leases, hosts = tmp_path / "leases", tmp_path / "hosts"
        hosts.write_text("")
        process = subprocess.Popen(
            ["ip", "netns", "exec", server, "dnsmasq", "--keep-in-foreground", "--port=0",
             "--user=root",
             f"--interface={name}a", "--bind-interfaces", "--dhcp-authoritative",
             "--dhcp-range=192.0.2.100,192.0.2.150,1h", f"--dhcp-leasefile={leases}",
             f"--dhcp-hostsfile={hosts}", f"--pid-file={tmp_path / 'pid'}", "--log-dhcp",
             f"--log-facility={tmp_path / 'log'}"],
        )  # fmt: skip
        yield Rig(client, f"{name}b", process, leases, hosts)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        for namespace in made:
            _ip("netns", "del", namespace)


def _lease(rig: Rig) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", rig.client_ns, "busybox", "udhcpc", "-i", rig.client_link,
         "-n", "-q", "-f", "-t", "5", "-s", "/bin/true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr + done.stdout


def _reload(rig: Rig) -> None:
    """SIGHUP once dnsmasq is up (before, it would end ``ip netns exec``); answers when it
    logs that it read the hostsfile again."""
    log = rig.hosts.parent / "log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "DHCP, IP range" in text:
            rig.dnsmasq.send_signal(signal.SIGHUP)  # (ip netns exec execs dnsmasq)
            while time.monotonic() < deadline:
                time.sleep(0.05)
                if log.read_text().count(f"read {rig.hosts}") > text.count(f"read {rig.hosts}"):
                    return
        time.sleep(0.1)
    raise AssertionError(f"dnsmasq did not reload {rig.hosts}")


def test_a_reservation_reloaded_by_sighup_is_leased_and_read_back(rig: Rig) -> None:
    rig.hosts.write_text(f"{MAC},192.0.2.42,m42\n")
    _reload(rig)
    output = _lease(rig)
    assert "lease of 192.0.2.42 obtained" in output
    now = dt.datetime.now(dt.UTC)
    (lease,) = read_dnsmasq_leases(rig.leases, now=now)
    assert (lease["mac"], lease["address"], lease["hostname"]) == (MAC, "192.0.2.42", "m42")
    assert lease["state"] == "active"
    ends = dt.datetime.fromisoformat(lease["ends"])
    assert now + dt.timedelta(minutes=55) < ends <= now + dt.timedelta(hours=1, minutes=1)
