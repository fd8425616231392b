"""The boot services with ``backend = "kea"``, end to end on a real network: Contractor (a
real app on loopback) → the follower → kea-dhcp4 on the namespace's bridge → busybox
udhcpc on ports of that bridge (198.18.0.0/16 only), and the leases back to Contractor,
seen in GraphQL. Skipped only where network namespaces cannot be made.

Kea runs inside the namespace (the service's backend made again with ``wrap``), not on the
host end of the veth as a subcontractor would run it: on this shared host, its port 67
socket and another test's dnsmasq on the host would keep each other from binding."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from subcontractor.boot.kea import KeaBackend
from subcontractor.boot.service import BootService
from subcontractor.client import Client
from subcontractor.config import AgentConfig, BootConfig, Config
from tests.rigs.netns import Netns, network_namespace
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.kea_entries import network_in_198_18, short_directory
from tests.subcontractor.boot.served import Served, serve_contractor

INTERFACE_LEASES = """query($locator: String!) { foundation(locator: $locator) {
  interfaces { mac leases { address state } } } }"""


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_tools("kea-dhcp4", "dnsmasq", "busybox")
    network = network_in_198_18()
    with network_namespace(str(network)) as ns:
        yield ns


@pytest.fixture
async def contractor(tmp_path: Path, netns: Netns) -> AsyncIterator[Served]:
    async for served in serve_contractor(tmp_path, str(netns.network), gateway_offset=1):
        yield served


def _client_link(netns: Netns, mac: str) -> str:
    """A veth inside the namespace, a port of its bridge, with ``mac``: a client's NIC."""
    name = f"k{secrets.token_hex(3)}"
    netns.run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    netns.run("ip", "link", "set", f"{name}p", "master", netns.bridge, "up")
    netns.run("ip", "link", "set", name, "address", mac, "up")
    return name


async def _udhcpc(netns: Netns, link: str, backend: KeaBackend) -> str:
    process = await asyncio.create_subprocess_exec(
        *netns.command("busybox", "udhcpc", "-i", link, "-n", "-q", "-f", "-t", "8",
                       "-T", "1", "-s", "/bin/true"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode(errors="replace")
    log = backend.paths.log.read_text(errors="replace") if backend.paths.log.exists() else ""
    assert process.returncode == 0, f"{text}\nkea-dhcp4's log:\n{log[-4000:]}"
    return text


async def _until(what: str, check: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds}s")


async def test_the_boot_services_on_kea_lease_live_reservations_and_report_them(
    contractor: Served, netns: Netns, tmp_path: Path
) -> None:
    first = await contractor.add_machine(offset=10)
    with short_directory() as state:
        config = Config(
            contractor=contractor.contractor(),
            agent=AgentConfig(journal_dir=tmp_path / "journal"),
            modules={},
            module_options={},
            boot=BootConfig(
                enabled=True,
                backend="kea",
                interfaces=[netns.bridge],
                server_address=str(netns.host_address),
                http_listen=f"{netns.host_address}:0",
                state_dir=state,
                lease_report_seconds=0.5,
                wait=5,
            ),
        )
        client = Client(config.contractor)
        service = BootService(config, client)
        assert isinstance(service.backend, KeaBackend)  # made by make_backend("kea", ...)
        backend = KeaBackend(service.settings, wrap=netns.command())
        service.backend = backend
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        try:
            await _until("kea-dhcp4 answering", backend.kea.ready.is_set)
            link = _client_link(netns, first.mac)
            output = await _udhcpc(netns, link, backend)
            assert f"lease of {first.address} obtained" in output, output

            # a reservation added in Contractor: live in the same kea-dhcp4, no lease dropped
            assert backend.kea.process is not None
            pid = backend.kea.process.pid
            second = await contractor.add_machine(offset=11)

            async def served_by_kea() -> bool:
                answer = await backend.control.command("config-get")
                hosts = answer["Dhcp4"]["subnet4"][0]["reservations"]
                return second.mac in {host["hw-address"] for host in hosts}

            await _until("the new reservation in kea-dhcp4", served_by_kea)
            output = await _udhcpc(netns, _client_link(netns, second.mac), backend)
            assert f"lease of {second.address} obtained" in output, output
            assert backend.kea.process.pid == pid
            assert backend.restarts == 0
            held = {(lease.mac, lease.address) for lease in await backend.leases()}
            assert {(first.mac, first.address), (second.mac, second.address)} <= held

            # reported to Contractor: NetworkInterface.leases
            async def reported() -> bool:
                data = await contractor.graphql(INTERFACE_LEASES, locator=second.locator)
                (interface,) = data["foundation"]["interfaces"]
                return bool(interface["leases"] == [{"address": second.address, "state": "ACTIVE"}])

            await _until("the lease reported", reported)

            # kea-dhcp4 killed: started again, the leases and reservations still held
            os.kill(pid, signal.SIGKILL)
            await _until(
                "kea-dhcp4 started again",
                lambda: backend.kea.ready.is_set() and backend.restarts == 1,
            )
            output = await _udhcpc(netns, link, backend)
            assert f"lease of {first.address} obtained" in output, output
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
            await client.aclose()
        assert not backend.alive()
