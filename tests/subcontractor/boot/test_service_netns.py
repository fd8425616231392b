"""The boot services end to end on a real network: Contractor (a real app on loopback) →
the follower → a real dnsmasq on the host end of a veth pair → busybox udhcpc inside the
network namespace the test makes (198.18.x only), and the leases back to Contractor, seen
in GraphQL. Skipped only where network namespaces cannot be made."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Foundation
from contractor.services import interfaces
from subcontractor.boot.dnsmasq import DnsmasqBackend
from tests.rigs.netns import Netns, network_namespace
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.served import (
    Served,
    boot_config,
    client_link,
    new_mac,
    running_boot,
    udhcpc,
    until,
)
from tests.subcontractor.processes import subcontractor, write_config

INTERFACE_LEASES = """query($locator: String!) { foundation(locator: $locator) {
  interfaces { mac leases { address state } } } }"""


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_tools("dnsmasq", "busybox")
    with network_namespace() as ns:
        yield ns


async def test_reservations_leased_live_dnsmasq_supervised_and_leases_reported(
    contractor: Served, netns: Netns, tmp_path: Path
) -> None:
    first = await contractor.add_machine(offset=10)
    config = boot_config(
        contractor,
        netns,
        tmp_path,
        http_listen=f"{netns.host_address}:0",
        lease_report_seconds=0.5,
        wait=5,
    )
    async with running_boot(config) as service:
        backend = service.backend
        assert isinstance(backend, DnsmasqBackend)
        await until("dnsmasq up", lambda: backend.alive() and "started" in _log(backend))
        link = client_link(netns, first.mac)
        output = await udhcpc(netns, link)
        assert f"lease of {first.address} obtained" in output, output

        # a reservation added in Contractor: live in the same dnsmasq, the first lease kept
        assert backend.process is not None
        pid = backend.process.pid
        second = await contractor.add_machine(offset=11)
        await until(
            "the new reservation in dnsmasq's hosts directory",
            lambda: any(second.mac in p.read_text() for p in backend.hosts.iterdir()),
        )
        (path,) = [p for p in backend.hosts.iterdir() if second.mac in p.read_text()]
        await until("dnsmasq read it", lambda: f"read {path}" in _log(backend))
        output = await udhcpc(netns, client_link(netns, second.mac))
        assert f"lease of {second.address} obtained" in output, output
        assert backend.process.pid == pid
        assert backend.restarts == 0
        held = {(lease.mac, lease.address) for lease in await backend.leases()}
        assert {(first.mac, first.address), (second.mac, second.address)} <= held

        # reported to Contractor: NetworkInterface.leases
        async def reported() -> bool:
            data = await contractor.graphql(INTERFACE_LEASES, locator=second.locator)
            (interface,) = data["foundation"]["interfaces"]
            return bool(interface["leases"] == [{"address": second.address, "state": "ACTIVE"}])

        await until("the lease reported", reported)

        # a reservation changed (the first machine's MAC): dnsmasq started again on purpose
        # (it never forgets a host record), the leases kept in its lease file
        moved = new_mac()

        async def change_mac(session: AsyncSession) -> None:
            foundation = (
                await session.execute(select(Foundation).where(Foundation.locator == first.locator))
            ).scalar_one()
            (interface,) = await interfaces.foundation_interfaces(session, foundation)
            await interfaces.update_interface(session, interface, mac=moved)

        await contractor.write(change_mac)
        await until(
            "dnsmasq started again for the changed reservation",
            lambda: backend.alive() and backend.process is not None and backend.process.pid != pid,
        )
        assert backend.restarts == 0  # not counted as a failure
        held = {(lease.mac, lease.address) for lease in await backend.leases()}
        assert (second.mac, second.address) in held
        link = client_link(netns, moved)
        output = await udhcpc(netns, link)
        assert f"lease of {first.address} obtained" in output, output

        # dnsmasq killed: started again, the leases still held
        pid = backend.process.pid
        os.kill(pid, signal.SIGKILL)
        await until(
            "dnsmasq started again",
            lambda: backend.alive() and backend.process is not None and backend.process.pid != pid,
        )
        assert backend.restarts == 1
        output = await udhcpc(netns, link)
        assert f"lease of {first.address} obtained" in output, output
    assert not backend.alive()


def _log(backend: DnsmasqBackend) -> str:
    try:
        return backend.log_file.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _processes_with(text: str) -> list[int]:
    """The processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_subcontractor_run_serves_boot_and_stops_its_dnsmasq(
    contractor: Served, netns: Netns, tmp_path: Path
) -> None:
    machine = await contractor.add_machine(offset=20)
    port = _free_port(str(netns.host_address))
    config = write_config(
        tmp_path,
        url=contractor.base,
        token=contractor.token,
        site=contractor.site,
        modules={},
        journal=tmp_path / "journal",
    )
    with config.open("a") as out:
        out.write(
            f'\n[boot]\nenabled = true\ninterfaces = ["{netns.host_if}"]\n'
            f'server_address = "{netns.host_address}"\n'
            f'http_listen = "{netns.host_address}:{port}"\nlease_report_seconds = 1\n'
        )
    conf = tmp_path / "journal" / "boot" / "dnsmasq" / "dnsmasq.conf"
    with subcontractor(config, tmp_path) as agent:
        base = f"http://{netns.host_address}:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:

            async def answers() -> bool:
                try:
                    return (await http.get("/ipxe", params={"mac": machine.mac})).status_code == 200
                except httpx.TransportError:
                    return False

            await until("the boot endpoint answers", answers, 30)
            script = (await http.get("/ipxe", params={"mac": machine.mac})).text
            assert f"structure '{machine.hostname}'" in script, script
        await until("dnsmasq runs", lambda: _processes_with(str(conf)), 30)
        output = await udhcpc(netns, client_link(netns, machine.mac))
        assert f"lease of {machine.address} obtained" in output, output
        assert agent.stop() == 0, agent.output()
    assert not _processes_with(str(conf)), "dnsmasq outlived the subcontractor"
    assert "boot services for site" in agent.output()
