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
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from contractor.bootimage import build_discovery_image
from tests.rigs.dhcp import dnsmasq
from tests.rigs.http import BootHttp, Request, boot_http, text
from tests.rigs.images import initrd_image, installed_kernel, script_init
from tests.rigs.netns import network_namespace
from tests.rigs.vm import DISK_BOOTED, Machine, Vm, process_alive, qemu_bmc, qemu_vm

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


@pytest.mark.parametrize(
    ("firmware", "dhcp_on_host"),
    [("bios", False), ("uefi", True)],
    ids=["bios-dhcp-in-namespace", "uefi-dhcp-on-host"],
)
def test_a_machine_powered_on_over_ipmi_boots_the_discovery_image_and_reports_itself(
    firmware: str,
    dhcp_on_host: bool,
    files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """dnsmasq in the namespace on the bridge, or on the host on the veth's end (where the
    subcontractor runs its own): the machine on the bridge boots either way."""
    machine = Machine(name=f"rig-{firmware}", cpus=2, firmware=firmware)  # type: ignore[arg-type]
    with network_namespace() as ns, boot_http(str(ns.host_address), files) as http:
        http.routes["/ipxe"] = text(discovery_script(http))
        http.routes["/discovery"] = answer
        chain = f"{http.url}/ipxe?mac=${{net0/mac}}"
        with (
            dnsmasq(ns, tmp_path / "dhcp", chain_url=chain, on_host=dhcp_on_host) as dhcp,
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
            assert f"DHCPACK({dhcp.interface}) {posted.client} {machine.mac}" in dhcp.log_text()

            check_report(posted.json(), machine)
            assert "discovery: answer: " in vm.console()

            powered_on = vm.power_on_times()[0]
            with capsys.disabled():
                sys.stdout.write(
                    f"\n[{firmware}] power-on → first HTTP request {first.at - powered_on:.1f} s,"
                    f" → report {posted.at - powered_on:.1f} s,"
                    f" → off {time.time() - powered_on:.1f} s\n"
                )


LOCAL_DISK = "#!ipxe\nsanboot --no-describe --drive 0x80 || exit 1\n"


def test_a_machine_fetches_its_config_signals_and_then_boots_its_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the end-to-end test does with Contractor in the middle: the first boot runs a
    provisioning initrd (config fetched, completion signalled), the next boots the disk."""
    image = initrd_image(
        tmp_path / "files" / "provision",
        script_init(
            """
            uuid=$(arg contractor.uuid)
            timeout 20 wget -q -O /tmp/config "http://$(endpoint)/config/$uuid"
            say "config: $(cat /tmp/config)"
            timeout 20 wget -q -O - --post-data '{"done": true}' "http://$(endpoint)/signal/$uuid"
            """
        ),
    )
    machine = Machine(name="rig-provision")
    signalled: list[Request] = []

    def ipxe(request: Request) -> tuple[int, str, bytes]:
        if signalled:
            return 200, "text/plain", LOCAL_DISK.encode()
        endpoint = urlsplit(http.url).netloc
        script = (
            "#!ipxe\n"
            f"kernel /files/provision/vmlinuz console=ttyS0 contractor.uuid=c0ffee"
            f" contractor.endpoint={endpoint}\n"
            f"initrd /files/provision/{image.initrd.name}\n"
            "boot\n"
        )
        return 200, "text/plain", script.encode()

    def signal(request: Request) -> tuple[int, str, bytes]:
        signalled.append(request)
        return 200, "application/json", b'{"status": "ok"}'

    with network_namespace() as ns, boot_http(str(ns.host_address), tmp_path / "files") as http:
        http.routes["/ipxe"] = ipxe
        http.routes["/config/c0ffee"] = text("hostname: web1\n")
        http.routes["/signal/c0ffee"] = signal
        chain = f"{http.url}/ipxe?mac=${{net0/mac}}"
        with (
            dnsmasq(ns, tmp_path / "dhcp", chain_url=chain),
            qemu_vm(machine, ns, tmp_path / "vm") as vm,
            qemu_bmc(vm, tmp_path / "bmc") as bmc,
        ):
            bmc.ipmitool("chassis", "power", "on")
            http.wait_for("POST", "/signal/c0ffee", timeout=90)
            assert vm.wait_off(timeout=30), "the machine did not power off after signalling"
            assert signalled[0].json() == {"done": True}
            assert "discovery: config: hostname: web1" in vm.console()
            assert DISK_BOOTED not in vm.console()

            bmc.ipmitool("chassis", "power", "on")
            assert vm.wait_off(timeout=60), "the second boot did not end"
            asked = [r.path for r in http.requests if r.path.startswith("/ipxe")]
            assert len(asked) == 2  # the boot script was asked again, and said: the disk
            kernels = [r for r in http.requests if r.path == "/files/provision/vmlinuz"]
            assert len(kernels) == 1
            assert vm.console().index("discovery: config:") < vm.console().index(DISK_BOOTED)
            assert bmc.power() == "off"
            first, second = vm.power_on_times()
            with capsys.disabled():
                sys.stdout.write(
                    f"\n[provision] power-on → signal {signalled[0].at - first:.1f} s;"
                    f" second power-on → disk booted and off {time.time() - second:.1f} s\n"
                )


def fail_inside_the_rig(tmp_path: Path, seen: dict[str, object]) -> None:
    """Power a machine on in the rig, then fail (as a test's assertion would)."""
    with network_namespace() as ns:
        seen["namespace"], seen["host_if"] = ns.name, ns.host_if
        chain = f"http://{ns.host_address}:9/ipxe"
        with (
            dnsmasq(ns, tmp_path / "dhcp", chain_url=chain),
            qemu_vm(Machine(name="rig-failing"), ns, tmp_path / "vm") as vm,
            qemu_bmc(vm, tmp_path / "bmc") as bmc,
        ):
            seen["vm"] = vm
            bmc.ipmitool("chassis", "power", "on")
            seen["pid"] = vm.pid()
            assert vm.running()
            raise RuntimeError("the test failed")


def test_everything_is_stopped_and_the_console_printed_when_a_test_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="the test failed"):
        fail_inside_the_rig(tmp_path, seen)
    vm, pid = seen["vm"], seen["pid"]
    assert isinstance(vm, Vm)
    assert isinstance(pid, int)
    assert not vm.running()
    assert not process_alive(pid)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert str(seen["namespace"]) not in namespaces
    links = subprocess.run(["ip", "link", "show"], capture_output=True, text=True).stdout
    assert str(seen["host_if"]) not in links
    printed = capsys.readouterr().out
    assert "----- rig-failing: serial console -----" in printed
    assert "----- rig-failing: QEMU errors -----" in printed
