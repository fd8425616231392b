"""A real QEMU machine (SeaBIOS or OVMF) that Contractor does not know boots
through the boot services: a pool address from the subcontractor's dnsmasq, iPXE chained
to the boot endpoint, Contractor's discovery script, the discovery image from
``files_dir``, and its report forwarded to Contractor, which records it."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.bootimage import build_discovery_image
from contractor.child_process import stop_child as stop_process
from contractor.models import AddressBlock
from contractor.services import boot as boot_service
from subcontractor.boot.service import BootService
from tests.rigs.images import installed_kernel
from tests.rigs.netns import Netns, network_namespace
from tests.rigs.vm import Machine, Vm, qemu_vm
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.served import Served, boot_config, running_boot, serve_contractor

pytestmark = pytest.mark.timeout(240)

DISCOVERED = """query($mac: String) { discoveredHardware(mac: $mac) {
  nodes { mac facts matched } } }"""


async def discovered(service: BootService, vm: Vm, served: Served) -> dict[str, Any]:
    """Power ``vm`` on once the boot services follow Contractor, until it powers itself off
    after discovery; what Contractor recorded of it (its serial checked)."""
    await asyncio.wait_for(service.follower.ready.wait(), 15)
    vm.start()
    # (the service runs on this loop: wait for QEMU in a thread)
    off = await asyncio.to_thread(vm.wait_off, 150)
    assert off, "the machine did not power itself off\n" + vm.console()
    assert "discovery: answer: " in vm.console(), vm.console()
    data = await served.graphql(DISCOVERED, mac=vm.machine.mac)
    found: dict[str, Any]
    (found,) = data["discoveredHardware"]["nodes"]
    assert found["facts"]["serial"] == vm.machine.serial
    return found


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    build_discovery_image(root / "discovery", kernel=installed_kernel())
    return root


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_tools("dnsmasq", "qemu-system-x86_64")
    with network_namespace() as ns:
        yield ns


@pytest.fixture
async def contractor(tmp_path: Path, netns: Netns) -> AsyncIterator[Served]:
    async for served in serve_contractor(
        tmp_path, str(netns.network), boot_discovery_kernel_args="console=ttyS0"
    ):
        yield served


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
async def test_an_unknown_machine_boots_discovery_through_the_boot_services(
    contractor: Served, netns: Netns, files: Path, tmp_path: Path, firmware: str
) -> None:
    """SeaBIOS: the NIC's iPXE ROM asks for the chain URL at once; OVMF: its own PXE client
    gets ``snponly.efi`` over TFTP by its architecture (option 93), then that iPXE does."""

    async def pool(session: AsyncSession) -> None:
        block = await session.get_one(AddressBlock, contractor.block_id)
        await boot_service.create_dhcp_pool(
            session, block=block, first_offset=100, last_offset=150, description="discovery"
        )

    await contractor.write(pool)
    # the endpoint on server_address:8069, where the discovery image posts by default
    config = boot_config(contractor, netns, tmp_path, files_dir=files, lease_report_seconds=1)
    machine = Machine(name=f"boot-{firmware}", cpus=1, firmware=firmware)  # type: ignore[arg-type]
    async with running_boot(config) as service:
        with qemu_vm(machine, netns, tmp_path / "vm") as vm:
            found = await discovered(service, vm, contractor)
            assert found["facts"]["cpu_count"] == machine.cpus
            assert found["matched"] is None
            log = (tmp_path / "journal" / "boot" / "dnsmasq" / "dnsmasq.log").read_text()
            sent = [line for line in log.splitlines() if "dnsmasq-tftp" in line and "sent " in line]
            if firmware == "uefi":
                assert any("/snponly.efi to " in line for line in sent), log
            else:
                assert sent == []  # the NIC's iPXE ROM chains to HTTP at once
            leases = await service.backend.leases()
            (lease,) = [held for held in leases if held.mac == machine.mac]
            assert netns.address(100) <= ipaddress.IPv4Address(lease.address) <= netns.address(150)


@pytest.fixture
def other_dhcp(netns: Netns, tmp_path: Path) -> Iterator[Path]:
    """Another DHCP server on the network (in the namespace, on its bridge): addresses
    only, no boot options, as a site's own DHCP server would."""
    directory = tmp_path / "other-dhcp"
    directory.mkdir()
    conf = directory / "dnsmasq.conf"
    conf.write_text(
        "\n".join(
            [
                "port=0",
                "no-resolv",
                "no-hosts",
                f"interface={netns.bridge}",
                "bind-interfaces",
                "user=root",
                f"dhcp-leasefile={directory / 'leases'}",
                f"log-facility={directory / 'log'}",
                "log-dhcp",
                f"dhcp-range={netns.address(50)},{netns.address(90)},{netns.network.netmask},10m",
                f"dhcp-range=::,constructor:{netns.bridge},ra-only",
                "enable-ra",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        netns.command("dnsmasq", "--keep-in-foreground", f"--conf-file={conf}", "--pid-file="),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield directory
    finally:
        stop_process(process, wait=10)


@pytest.fixture
async def proxied(tmp_path: Path, netns: Netns) -> AsyncIterator[Served]:
    """Contractor whose discovery script names the endpoint: the lease the discovery image
    gets comes from the other server, whose next server is not the subcontractor."""
    args = f"console=ttyS0 contractor.endpoint={netns.host_address}:8069"
    async for served in serve_contractor(
        tmp_path, str(netns.network), boot_discovery_kernel_args=args
    ):
        yield served


async def test_proxy_dhcp_boots_a_machine_beside_another_dhcp_server(
    proxied: Served, netns: Netns, files: Path, tmp_path: Path, other_dhcp: Path
) -> None:
    """No pool, no reservation: the other server gives the address, the proxy the boot."""
    config = boot_config(proxied, netns, tmp_path, files_dir=files, proxy=True)
    machine = Machine(name="boot-proxy", cpus=1)
    async with running_boot(config) as service:
        with qemu_vm(machine, netns, tmp_path / "vm") as vm:
            await discovered(service, vm, proxied)
            other = (other_dhcp / "leases").read_text()
            assert machine.mac in other, other  # the address came from the other server
            assert await service.backend.leases() == []
            log = (tmp_path / "journal" / "boot" / "dnsmasq" / "dnsmasq.log").read_text()
            assert "proxy" in log, log
