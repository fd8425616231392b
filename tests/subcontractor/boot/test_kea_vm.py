"""Real firmware through the Kea backend: a QEMU machine (software emulation) on the bridge
of a namespace the test makes (198.18.0.0/16) DHCPs from kea-dhcp4, and iPXE chains to the
HTTP URL Kea gave it. Under SeaBIOS the NIC's iPXE ROM is the client from the start (the
``contractor-ipxe`` class, by its user class); under OVMF the firmware's own PXE client is
(architecture 7: ``contractor-uefi``), loads ``snponly.efi`` over TFTP from the dnsmasq
beside Kea, and that iPXE asks again. Each run ends at iPXE's first HTTP request. Skipped
only where the machine cannot make namespaces."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from subcontractor.boot.kea import KeaBackend
from tests.rigs.dhcp import TFTP_ROOT
from tests.rigs.http import boot_http, text
from tests.rigs.netns import Netns, network_namespace
from tests.rigs.vm import Machine, qemu_vm
from tests.subcontractor.bmc import require_tools
from tests.subcontractor.boot.kea_entries import (
    boot_data,
    network_in_198_18,
    pool,
    reservation,
    settings_for,
    short_directory,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def netns() -> Iterator[Netns]:
    require_tools("kea-dhcp4", "dnsmasq", "qemu-system-x86_64")
    network = network_in_198_18()
    with network_namespace(str(network)) as ns:
        yield ns


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
async def test_a_machine_gets_its_address_and_ipxe_chains_to_the_url_kea_gave(
    firmware: str, netns: Netns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = Machine(name=f"kea-{firmware}", firmware=firmware)  # type: ignore[arg-type]
    net = netns.network
    reserved = firmware == "bios"  # BIOS: a reservation; UEFI: an unknown machine, a pool
    entries = [reservation(net, 1, machine.mac, 42)] if reserved else []
    data = boot_data(entries, [pool(net, 7, 100, 150)])
    with (
        short_directory() as state,
        boot_http(str(netns.host_address), tmp_path / "files") as http,
        qemu_vm(machine, netns, tmp_path / "vm") as vm,
    ):
        http.routes["/ipxe"] = text("#!ipxe\necho Kea chained\n")
        settings = settings_for(
            state,
            interfaces=(netns.bridge,),
            server_address=str(netns.namespace_address),
            http_base=http.url,
            tftp_root=TFTP_ROOT,
        )
        backend = KeaBackend(settings, wrap=netns.command())
        await backend.start(data)
        try:
            await asyncio.to_thread(vm.start)
            first = await asyncio.to_thread(http.wait_for, "GET", "/ipxe", 90)
            powered_on = vm.power_on_times()[0]
            await asyncio.to_thread(vm.stop)

            assert parse_qs(urlsplit(first.path).query) == {"mac": [machine.mac]}
            if reserved:
                assert first.client == str(net.network_address + 42)
            else:
                start, end = net.network_address + 100, net.network_address + 150
                assert start <= ipaddress.IPv4Address(first.client) <= end
            tftp = (state / "kea" / "tftp.log").read_text(errors="replace")
            sent = [line for line in tftp.splitlines() if " sent " in line]
            if firmware == "uefi":
                assert any("snponly.efi" in line for line in sent), tftp
            else:
                assert sent == []  # the NIC's iPXE ROM asked for the chain URL at once
            log = backend.paths.log.read_text(errors="replace")
            assert "contractor-ipxe evaluated to 1" in log
            if firmware == "uefi":
                assert "contractor-uefi evaluated to 1" in log
            leases = {lease.mac: lease.address for lease in await backend.leases()}
            assert leases == {machine.mac: first.client}
        finally:
            await backend.stop()
    with capsys.disabled():
        sys.stdout.write(f"\n[kea {firmware}] power-on → iPXE's HTTP request "
                         f"{first.at - powered_on:.1f} s\n")  # fmt: skip
