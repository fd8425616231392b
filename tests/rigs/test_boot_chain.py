"""The rig proven by booting, without Contractor or the subcontractor: a QEMU machine powered
on over IPMI (ipmitool → ipmi_sim → QEMU) DHCPs from dnsmasq in a network namespace, gets
iPXE, chains over HTTP to the test's server, boots the Debian kernel with the shipped
discovery initrd, posts its discovery report and powers itself off.

Two firmwares: SeaBIOS, whose NIC option ROM already is iPXE (it goes straight to the chain
URL, as QEMU and most hypervisors do), and OVMF (UEFI) without an option ROM, whose own PXE
client loads iPXE (``snponly.efi``) over TFTP first, as most servers do. QEMU cannot show a
BIOS machine loading ``undionly.kpxe`` over TFTP: its BIOS NICs all carry iPXE ROMs, whose
DHCP requests are byte for byte those of a chained ``undionly.kpxe``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from contractor.bootimage import build_discovery_image
from tests.rigs.dhcp import dnsmasq
from tests.rigs.http import BootHttp, Request, boot_http, text
from tests.rigs.images import installed_kernel
from tests.rigs.netns import network_namespace
from tests.rigs.vm import Machine, qemu_bmc, qemu_vm

pytestmark = pytest.mark.timeout(240)

ANSWER: dict[str, object] = {"discovered": 1, "matched": None, "located": False, "problems": []}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The boot endpoint's files_dir: the discovery image under ``discovery/``."""
    root = tmp_path_factory.mktemp("files")
    build_discovery_image(root / "discovery", kernel=installed_kernel())
    return root


def discovery_script(http: BootHttp) -> str:
    """What Contractor's discovery boot script says (docs/boot.md), with the endpoint."""
    endpoint = urlsplit(http.url).netloc
    return (
        "#!ipxe\n"
        # initrd=initrd: a UEFI kernel's EFI stub loads the initrd iPXE names so
        "kernel /files/discovery/vmlinuz initrd=initrd console=ttyS0 "
        f"contractor.discovery=1 contractor.mac=${{net0/mac}} contractor.endpoint={endpoint}\n"
        "initrd /files/discovery/initrd\n"
        "boot\n"
    )


def answer(request: Request) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(ANSWER).encode()


def check_report(report: dict[str, object], machine: Machine) -> None:
    """Every field of the report (the contract in docs/boot.md) says what the VM is."""
    assert set(report) == {
        "mac", "macs", "manufacturer", "product", "serial", "uuid",
        "cpu_count", "memory_mib", "disks", "pci",
    }  # fmt: skip
    assert report["mac"] == machine.mac
    assert report["macs"] == [machine.mac]
    assert report["manufacturer"] == "QEMU"
    assert str(report["product"]).startswith("Standard PC (i440FX + PIIX")
    assert report["serial"] == machine.serial
    assert report["uuid"] == machine.uuid
    assert report["cpu_count"] == machine.cpus
    assert report["memory_mib"] == machine.memory_mib
    assert report["disks"] == [{"name": "vda", "size_bytes": machine.disk_mib * MIB}]
    pci = report["pci"]
    assert isinstance(pci, list)
    assert {"vendor": "1af4", "device": "1000", "class": "0200"} in pci  # virtio-net
    assert {"vendor": "1af4", "device": "1001", "class": "0100"} in pci  # virtio-blk
    assert {"vendor": "8086", "device": "1237", "class": "0600"} in pci  # i440FX host bridge
    for device in pci:
        assert set(device) == {"vendor", "device", "class"}
        assert all(len(value) == 4 for value in device.values()), device


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_a_machine_powered_on_over_ipmi_boots_the_discovery_image_and_reports_itself(
    firmware: str, files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = Machine(name=f"rig-{firmware}", cpus=2, firmware=firmware)  # type: ignore[arg-type]
    with network_namespace() as ns, boot_http(str(ns.host_address), files) as http:
        http.routes["/ipxe"] = text(discovery_script(http))
        http.routes["/discovery"] = answer
        chain = f"{http.url}/ipxe?mac=${{net0/mac}}"
        with (
            dnsmasq(ns, tmp_path / "dhcp", chain_url=chain) as dhcp,
            qemu_vm(machine, ns, tmp_path / "vm") as vm,
            qemu_bmc(vm, tmp_path / "bmc") as bmc,
        ):
            assert bmc.power() == "off"
            bmc.ipmitool("chassis", "bootdev", "pxe")
            bmc.ipmitool("chassis", "power", "on")
            assert bmc.power() == "on"
            assert vm.running()

            first = http.wait_for("GET", "/ipxe", timeout=90)
            posted = http.wait_for("POST", "/discovery", timeout=90)
            assert vm.wait_off(timeout=30), "the machine did not power itself off"
            assert bmc.power() == "off"

            # the chain: DHCP → (TFTP) → iPXE asks for its script by MAC → kernel, initrd
            assert parse_qs(urlsplit(first.path).query) == {"mac": [machine.mac]}
            paths = [request.path for request in http.requests]
            assert paths.index("/files/discovery/vmlinuz") < paths.index("/discovery")
            assert "/files/discovery/initrd" in paths
            assert first.client in {str(ns.address(i)) for i in range(100, 200)}
            sent = dhcp.tftp_sent()
            if firmware == "uefi":
                assert any(path.endswith("/snponly.efi") for path in sent), dhcp.log_text()
            else:
                assert sent == []  # the NIC's iPXE ROM chains to HTTP at once
            assert f"DHCPACK(br0) {posted.client} {machine.mac}" in dhcp.log_text()

            check_report(posted.json(), machine)
            assert "discovery: answer: " in vm.console()

            powered_on = vm.power_on_times()[0]
            with capsys.disabled():
                sys.stdout.write(
                    f"\n[{firmware}] power-on → first HTTP request {first.at - powered_on:.1f} s,"
                    f" → report {posted.at - powered_on:.1f} s,"
                    f" → off {time.time() - powered_on:.1f} s\n"
                )
