"""A real kea-dhcp4 (the Kea backend) in a network namespace the test makes
(``tests.rigs.netns``: a bridge and a veth to the host, a /24 of 198.18.0.0/16), leasing to
busybox udhcpc clients in a second namespace whose veths are ports of that bridge: a
reserved address with its options and boot file, a pool address, the boot file by client
class, TFTP, a reservation added live with ``config-set`` (same process, the earlier lease
kept), kea-dhcp4 killed and started again, and the errors Kea answers. Skipped only where
the machine cannot make namespaces."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from subcontractor.boot.backend import BootData
from subcontractor.boot.kea import KeaBackend
from subcontractor.boot.kea_control import KeaCommandError, KeaControlError, read_memfile
from tests.rigs.netns import Netns, network_namespace
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.kea_entries import (
    MAC1,
    MAC2,
    MAC3,
    boot_data,
    network_in_198_18,
    pool,
    reservation,
    settings_for,
    short_directory,
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with short_directory() as path:
        yield path


# -- a real kea-dhcp4 in a namespace -------------------------------------------------


@dataclass
class KeaRig:
    ns: Netns
    clients: str  # the clients' namespace
    backend: KeaBackend
    tftp_root: Path
    dump: Path

    def addr(self, offset: int) -> str:
        return str(self.ns.network.network_address + offset)

    def data(self, *extra: dict[str, Any], version: int = 1) -> BootData:
        return boot_data(
            [reservation(self.ns.network, 1, MAC1, 42), *extra],
            [pool(self.ns.network, 7, 100, 110)],
            version=version,
        )

    def lease(self, link: str, *options: str) -> dict[str, str]:
        """busybox udhcpc on ``link``: what it was offered and bound (the DHCP fields
        as its script sees them)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.clients, "busybox", "udhcpc", "-i", link, "-n", "-q",
             "-f", "-t", "6", "-T", "1", "-O", "search", "-s", str(self.dump), *options],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"udhcpc on {link}: {done.stderr}\nkea: {self.backend.paths.log.read_text()[-3000:]}"
        )
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"ip {' '.join(argv)}: {done.stderr}"


@pytest.fixture
async def rig(request: pytest.FixtureRequest, short_dir: Path) -> AsyncIterator[KeaRig]:
    """kea-dhcp4 (and its TFTP dnsmasq) on the bridge of a namespace; three client links
    (``c0``..``c2``, MACs 1..3) in another namespace, each a veth whose peer is a port
    of the bridge. ``@pytest.mark.parametrize("rig", ["bridge down"], indirect=True)``:
    the bridge is down when Kea starts."""
    bridge_down = getattr(request, "param", None) == "bridge down"
    require_tools("kea-dhcp4", "dnsmasq", "busybox")
    tftp_root = short_dir / "tftp"
    tftp_root.mkdir()
    (tftp_root / "undionly.kpxe").write_bytes(secrets.token_bytes(5000))
    dump = short_dir / "dump.sh"
    dump.write_text(
        "#!/bin/sh\n"
        '[ "$1" = bound ] && for name in ip subnet router dns domain search hostname '
        'boot_file siaddr lease; do eval "echo $name=\\$$name"; done\nexit 0\n'
    )
    dump.chmod(0o755)
    with network_namespace(str(network_in_198_18())) as ns:
        clients = f"{ns.name}-c"
        _ip("netns", "add", clients)
        try:
            for index, mac in enumerate((MAC1, MAC2, MAC3)):
                port = f"cp{index}"
                _ip("-n", ns.name, "link", "add", port, "type", "veth", "peer", "name",
                    f"c{index}", "netns", clients)  # fmt: skip
                _ip("-n", ns.name, "link", "set", port, "master", ns.bridge, "up")
                _ip("-n", clients, "link", "set", f"c{index}", "address", mac, "up")
            _ip("-n", clients, "link", "set", "lo", "up")
            settings = settings_for(
                short_dir / "state",
                server_address=str(ns.namespace_address),
                http_base=f"http://{ns.host_address}:8067",
                tftp_root=tftp_root,
            )
            if bridge_down:
                _ip("-n", ns.name, "link", "set", ns.bridge, "down")
            backend = KeaBackend(settings, wrap=ns.command())
            server = KeaRig(ns, clients, backend, tftp_root, dump)
            try:
                await backend.start(server.data())
                yield server
            finally:
                await backend.stop()
        finally:
            _ip("netns", "del", clients)


async def _kea_pid(backend: KeaBackend) -> int:
    status = await backend.control.command("status-get")
    return int(status["pid"])


async def test_kea_leases_the_reserved_and_a_pool_address_with_options_by_class(
    rig: KeaRig,
) -> None:
    web1 = await asyncio.to_thread(rig.lease, "c0")
    assert web1["ip"] == rig.addr(42)
    assert web1["hostname"] == "web1"
    assert web1["router"] == rig.addr(1)
    assert web1["dns"].split() == ["198.18.0.53", "198.18.0.54"]
    assert web1["domain"] == "dc1.example.com"
    assert web1["search"].split() == ["example.com", "dc1.example.com"]
    assert web1["lease"] == "600"
    # BIOS firmware (no option 93): iPXE over TFTP from the server's address
    assert (web1["boot_file"], web1["siaddr"]) == (
        "undionly.kpxe",
        str(rig.ns.namespace_address),
    )

    # an unknown machine gets a pool address; UEFI firmware the UEFI iPXE; iPXE the chain URL
    uefi = await asyncio.to_thread(rig.lease, "c1", "-x", "93:0007")
    start, end = ipaddress.IPv4Address(rig.addr(100)), ipaddress.IPv4Address(rig.addr(110))
    assert start <= ipaddress.IPv4Address(uefi["ip"]) <= end
    assert uefi["boot_file"] == "snponly.efi"
    assert uefi["hostname"] == ""
    ipxe = await asyncio.to_thread(rig.lease, "c1", "-x", "77:69505845")  # "iPXE"
    assert ipxe["ip"] == uefi["ip"]
    assert ipxe["boot_file"] == f"http://{rig.ns.host_address}:8067/ipxe?mac=${{net0/mac}}"

    leases = {lease.mac: lease for lease in await rig.backend.leases()}
    assert set(leases) == {MAC1, MAC2}
    assert (leases[MAC1].address, leases[MAC1].hostname) == (rig.addr(42), "web1")
    assert leases[MAC2].address == uefi["ip"]
    now = dt.datetime.now(dt.UTC)
    expires = leases[MAC1].expires
    assert expires is not None
    assert now + dt.timedelta(seconds=500) < expires <= now + dt.timedelta(seconds=610)
    # the memfile says the same as lease4-get-all
    on_disk = {(x.mac, x.address) for x in read_memfile(rig.backend.paths.leases)}
    assert on_disk == {(x.mac, x.address) for x in leases.values()}


async def test_the_tftp_server_beside_kea_serves_the_ipxe_binaries(rig: KeaRig) -> None:
    web1 = await asyncio.to_thread(rig.lease, "c0")
    _ip("-n", rig.clients, "addr", "add", f"{web1['ip']}/24", "dev", "c0")
    got = rig.tftp_root.parent / "got.kpxe"
    done = await asyncio.to_thread(
        subprocess.run,
        ["ip", "netns", "exec", rig.clients, "busybox", "tftp", "-g", "-r",
         web1["boot_file"], "-l", str(got), web1["siaddr"]],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert got.read_bytes() == (rig.tftp_root / "undionly.kpxe").read_bytes()


async def test_a_reservation_applied_live_reaches_a_client_and_no_lease_is_dropped(
    rig: KeaRig,
) -> None:
    backend = rig.backend
    assert backend.hook is not None  # Debian's kea-common: lease4-get-all answers
    web1 = await asyncio.to_thread(rig.lease, "c0")
    assert web1["ip"] == rig.addr(42)
    unknown = await asyncio.to_thread(rig.lease, "c2")
    assert unknown["hostname"] == ""
    pid = await _kea_pid(backend)
    assert backend.kea.process is not None
    assert pid == backend.kea.process.pid

    web3 = reservation(rig.ns.network, 3, MAC3, 60, boot_file="own.efi")
    await backend.apply(rig.data(web3, version=2))

    got = await asyncio.to_thread(rig.lease, "c2")
    assert (got["ip"], got["hostname"]) == (rig.addr(60), "web3")
    assert got["boot_file"] == "own.efi"  # a reservation's own boot file beats the class
    assert await _kea_pid(backend) == pid  # the same process
    assert backend.restarts == 0
    held = {lease.mac: lease.address for lease in await backend.control.leases()}
    assert held[MAC1] == rig.addr(42)  # the lease from before the change
    assert held[MAC3] == rig.addr(60)
    assert {lease.mac: lease.address for lease in read_memfile(backend.paths.leases)} == held
    # config-write saved what is served
    written = json.loads(backend.paths.config.read_text())
    hosts = written["Dhcp4"]["subnet4"][0]["reservations"]
    assert sorted(host["hw-address"] for host in hosts) == [MAC1, MAC3]

    # refused data changes nothing, in Kea or on disk
    clash = reservation(rig.ns.network, 2, MAC2, 60)
    with pytest.raises(ValueError, match=r"^reservations\[2\]\.address: .* also reserved"):
        await backend.apply(rig.data(web3, clash, version=3))
    served_now = await backend.control.command("config-get")
    hosts = served_now["Dhcp4"]["subnet4"][0]["reservations"]
    assert sorted(host["hw-address"] for host in hosts) == [MAC1, MAC3]
    assert json.loads(backend.paths.config.read_text()) == written

    # a reservation removed is removed live too
    await backend.apply(rig.data(version=4))
    served_now = await backend.control.command("config-get")
    hosts = served_now["Dhcp4"]["subnet4"][0]["reservations"]
    assert [host["hw-address"] for host in hosts] == [MAC1]
    assert await _kea_pid(backend) == pid


async def test_kea_killed_is_started_again_with_its_leases_and_live_reservations(
    rig: KeaRig,
) -> None:
    backend = rig.backend
    await asyncio.to_thread(rig.lease, "c0")
    await backend.apply(rig.data(reservation(rig.ns.network, 3, MAC3, 60), version=2))
    assert backend.kea.process is not None
    old = backend.kea.process.pid
    os.kill(old, signal.SIGKILL)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while backend.restarts == 0 or not backend.kea.ready.is_set():
        assert loop.time() < deadline, f"kea-dhcp4 was not started again: {backend.paths.log}"
        await asyncio.sleep(0.05)
    assert backend.alive()
    assert backend.restarts == 1
    new = await _kea_pid(backend)
    assert new != old
    assert new == backend.kea.process.pid
    held = {lease.mac: lease.address for lease in await backend.leases()}
    assert held == {MAC1: rig.addr(42)}
    # the restart read what apply wrote: the live reservation is still served
    got = await asyncio.to_thread(rig.lease, "c2")
    assert (got["ip"], got["hostname"]) == (rig.addr(60), "web3")

    # stopped: the leases are read from the memfile, and the socket is gone
    await backend.stop()
    assert not backend.alive()
    held = {lease.mac: lease.address for lease in await backend.leases()}
    assert held == {MAC1: rig.addr(42), MAC3: rig.addr(60)}
    with pytest.raises(KeaControlError, match=r"kea-dhcp4's control socket .*kea4\.sock"):
        await backend.control.command("status-get")


async def test_kea_refusing_a_command_is_surfaced_with_its_reason(rig: KeaRig) -> None:
    backend = rig.backend
    with pytest.raises(KeaCommandError) as raised:
        await backend.control.command("no-such-command")
    assert raised.value.result == 2
    assert str(raised.value) == (
        "kea-dhcp4 refused 'no-such-command' (result 2): 'no-such-command' command not supported."
    )


async def test_a_configuration_kea_refuses_leaves_the_last_good_one_served(
    rig: KeaRig,
) -> None:
    """Two overlapping pools of one subnet (Contractor never sends them; Kea refuses
    them): the error carries Kea's reason, and Kea, which serves nothing after a refused
    config-set, is back on the last good configuration, in the same process."""
    backend = rig.backend
    pid = await _kea_pid(backend)
    before = backend.paths.config.read_text()
    net = rig.ns.network
    bad = boot_data(
        [reservation(net, 1, MAC1, 42), reservation(net, 3, MAC3, 60)],
        [pool(net, 7, 100, 110), pool(net, 8, 105, 120)],
        version=2,
    )
    with pytest.raises(KeaCommandError, match=r"refused 'config-set' \(result 1\): .*overlap"):
        await backend.apply(bad)
    assert backend.paths.config.read_text() == before
    web1 = await asyncio.to_thread(rig.lease, "c0")
    assert web1["ip"] == rig.addr(42)
    unknown = await asyncio.to_thread(rig.lease, "c2")  # web3 was never served
    assert unknown["hostname"] == ""
    assert await _kea_pid(backend) == pid
    assert backend.restarts == 0
    # and the next good data goes through
    await backend.apply(rig.data(reservation(net, 3, MAC3, 60), version=3))
    got = await asyncio.to_thread(rig.lease, "c2")
    assert got["ip"] == rig.addr(60)


async def test_without_the_lease_hook_the_leases_are_read_from_the_memfile(rig: KeaRig) -> None:
    """A Kea without the lease commands (another build): the same leases, from the file;
    and a Kea started anew on the same directory keeps the leases of the one before."""
    await asyncio.to_thread(rig.lease, "c0")
    await rig.backend.stop()
    plain = KeaBackend(rig.backend.settings, wrap=rig.ns.command(), hook_directories=())
    assert plain.hook is None
    await plain.start(rig.data())
    try:
        rig.backend = plain  # the rig's lease() reports with this one's log
        with pytest.raises(KeaCommandError, match=r"'lease4-get-all' \(result 2\)"):
            await plain.control.command("lease4-get-all")
        assert {lease.mac: lease.address for lease in await plain.leases()} == {MAC1: rig.addr(42)}
        got = await asyncio.to_thread(rig.lease, "c1")
        held = {lease.mac: lease.address for lease in await plain.leases()}
        assert held == {MAC1: rig.addr(42), MAC2: got["ip"]}
    finally:
        await plain.stop()


@pytest.mark.parametrize("rig", ["bridge down"], indirect=True)
async def test_an_interface_down_when_kea_starts_is_served_once_it_is_up(rig: KeaRig) -> None:
    log = rig.backend.paths.log
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while "the interface br0 is down" not in log.read_text(errors="replace"):
        assert loop.time() < deadline, log.read_text()
        await asyncio.sleep(0.05)
    _ip("-n", rig.ns.name, "link", "set", rig.ns.bridge, "up")
    web1 = await asyncio.to_thread(rig.lease, "c0")  # Kea tries every 2 s
    assert web1["ip"] == rig.addr(42)
    assert rig.backend.restarts == 0


async def test_a_reservation_whose_mac_changed_gives_its_address_to_the_new_mac(
    rig: KeaRig,
) -> None:
    """A machine's NIC replaced: the same reservation (id, address) with another MAC. The
    lease of the address to the old MAC is dropped (Kea would otherwise keep the address
    from the new MAC until that lease expired), live, in the same process."""
    backend = rig.backend
    web1 = await asyncio.to_thread(rig.lease, "c0")
    assert web1["ip"] == rig.addr(42)
    pid = await _kea_pid(backend)
    moved = boot_data(
        [reservation(rig.ns.network, 1, MAC3, 42)], [pool(rig.ns.network, 7, 100, 110)], version=2
    )
    await backend.apply(moved)
    got = await asyncio.to_thread(rig.lease, "c2")
    assert (got["ip"], got["hostname"]) == (rig.addr(42), "web1")
    held = {lease.mac: lease.address for lease in await backend.leases()}
    assert held == {MAC3: rig.addr(42)}
    assert await _kea_pid(backend) == pid
