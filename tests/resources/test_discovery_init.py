"""The shipped discovery ``/init`` (contractor/resources/discovery/init.sh) gathering its
report from a made-up /sys and /proc, run by busybox's shell as in the initrd: every field
of the report, JSON escaping of odd SMBIOS strings, and what it leaves out. (Booting it in
a VM is tests/rigs/test_boot_chain.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contractor.bootimage import discovery_init

BUSYBOX = Path("/bin/busybox")


def put(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    put(
        tmp_path,
        {
            "sys/class/net/lo/address": "00:00:00:00:00:00\n",
            "sys/class/net/lo/type": "772\n",
            "sys/class/net/eth0/address": "52:54:00:AA:BB:01\n",
            "sys/class/net/eth0/type": "1\n",
            "sys/class/net/eth1/address": "52:54:00:aa:bb:02\n",
            "sys/class/net/eth1/type": "1\n",
            "sys/class/net/wg0/type": "65534\n",
            "sys/class/dmi/id/sys_vendor": 'Acme "Big" Iron\\Works\t\x01 \n',
            "sys/class/dmi/id/product_name": "X" * 250 + "\n",
            "sys/class/dmi/id/product_serial": "\n",
            "sys/class/dmi/id/product_uuid": "8C2F0000-AAAA-BBBB-CCCC-0123456789AB\n",
            "sys/devices/system/memory/block_size_bytes": "8000000\n",
            "sys/devices/system/memory/memory0/online": "1\n",
            "sys/devices/system/memory/memory1/online": "1\n",
            "sys/devices/system/memory/memory2/online": "0\n",
            "sys/block/vda/size": "2097152\n",
            "sys/block/nvme0n1/size": "20\n",
            "sys/block/loop0/size": "100\n",
            "sys/block/sr0/size": "100\n",
            "sys/bus/pci/devices/0000:00:02.0/vendor": "0x8086\n",
            "sys/bus/pci/devices/0000:00:02.0/device": "0x100e\n",
            "sys/bus/pci/devices/0000:00:02.0/class": "0x020000\n",
            "proc/cpuinfo": "processor\t: 0\nflags: x\n\nprocessor\t: 1\n\nprocessor\t: 2\n",
            "proc/meminfo": "MemTotal:         230000 kB\nMemFree: 1 kB\n",
            "cmdline": "console=ttyS0 contractor.discovery=1 contractor.mac=52:54:00:AA:BB:02\n",
        },
    )
    return tmp_path


def report(root: Path) -> Any:
    if not BUSYBOX.is_file():
        pytest.skip("busybox-static not installed (scripts/test installs it)")
    script = root / "init.sh"
    script.write_text(discovery_init())
    env = {
        "PATH": "/nonexistent",  # only busybox's own applets, as in the initrd
        "SYSFS": str(root / "sys"),
        "PROCFS": str(root / "proc"),
        "CMDLINE": str(root / "cmdline"),
    }
    done = subprocess.run(
        [str(BUSYBOX), "sh", str(script), "report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_report_names_every_fact_of_the_machine(machine: Path) -> None:
    assert report(machine) == {
        "mac": "52:54:00:aa:bb:02",
        "macs": ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"],
        "manufacturer": 'Acme "Big" Iron\\Works',
        "product": "X" * 200,
        "serial": None,
        "uuid": "8c2f0000-aaaa-bbbb-cccc-0123456789ab",
        "cpu_count": 3,
        "memory_mib": 256,
        "disks": [
            {"name": "nvme0n1", "size_bytes": 20 * 512},
            {"name": "vda", "size_bytes": 1024 * 1024 * 1024},
        ],
        "pci": [{"vendor": "8086", "device": "100e", "class": "0200"}],
    }


def test_without_memory_blocks_or_a_mac_argument_it_falls_back(machine: Path) -> None:
    for block in (machine / "sys/devices/system/memory").rglob("*"):
        if block.is_file():
            block.unlink()
    (machine / "cmdline").write_text("console=ttyS0\n")
    facts = report(machine)
    assert facts["memory_mib"] == 225  # MemTotal, rounded up
    assert facts["mac"] == "52:54:00:aa:bb:01"  # the first Ethernet NIC


def test_a_machine_with_no_dmi_reports_nulls(machine: Path) -> None:
    for name in ("sys_vendor", "product_name", "product_serial", "product_uuid"):
        (machine / "sys/class/dmi/id" / name).unlink()
    facts = report(machine)
    assert [facts[key] for key in ("manufacturer", "product", "serial", "uuid")] == [None] * 4
