"""The ``libvirt`` module against a real ``libvirtd`` with ``qemu:///system`` (QEMU by software
emulation), private to the test (tests/subcontractor/libvirtd.py): a VM is defined from its
shape (its disk a volume in a directory pool, its NIC on a bridge), boots from the network,
is stopped (its firmware ignores the ACPI request, so it is destroyed after the timeout,
confirmed by its state) and destroyed with its volume; nothing is left on the host."""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from subcontractor.module import TaskFailed
from tests.subcontractor.libvirtd import BRIDGE, POOL, Libvirtd, libvirtd

libvirt = pytest.importorskip("libvirt", reason="the libvirt extra (libvirt-python) is needed")

from subcontractor.modules.libvirt import LibvirtModule, LibvirtOptions  # noqa: E402

SHUTDOWN = 3.0


@pytest.fixture
def daemon() -> Iterator[Libvirtd]:
    with libvirtd() as running:
        yield running


async def test_define_boot_stop_destroy_on_qemu(daemon: Libvirtd) -> None:
    module = LibvirtModule(
        "libvirt",
        LibvirtOptions(shutdown_timeout=SHUTDOWN, confirm_interval=0.2, confirm_timeout=60),
        concurrency=2,
    )
    domain_uuid, name = str(uuid.uuid4()), f"vm-{uuid.uuid4().hex[:6]}"
    where: dict[str, Any] = {
        "connection": {
            "foundation": name,
            "member": "kvm1",
            "endpoint": daemon.uri,
            "uuid": domain_uuid,
        }
    }
    shape = {
        "name": name,
        "cpu_count": 1,
        "memory_mb": 128,
        "disks": [1],
        "pool": POOL,
        "bridge": BRIDGE,
        "interfaces": ["eth0"],
        "boot_order": ["network", "disk"],
    }
    conn = libvirt.open(daemon.uri)
    try:
        capacity = await module.host_capacity({"endpoint": daemon.uri, "pool": POOL})
        assert capacity["cpus"] == conn.getInfo()[2]
        assert capacity["disk_gb"] >= 1

        made = await module.create({**where, "domain": shape})
        assert made["state"] == "off"
        again = await module.create({**where, "domain": shape})  # sent again: no second one
        assert again == made
        assert [d.name() for d in conn.listAllDomains()] == [name]
        domain = conn.lookupByUUIDString(domain_uuid)
        tree = ET.fromstring(domain.XMLDesc(0))
        assert tree.get("type") == "qemu"  # software emulation
        assert tree.find("features/acpi") is not None
        assert [m.get("address") for m in tree.findall("devices/interface/mac")] == [
            made["interface_map"]["eth0"]
        ]
        [volume] = conn.storagePoolLookupByName(POOL).listAllVolumes()
        assert volume.info()[1] == 2**30

        assert await module.start(where) == {"state": "on"}
        assert domain.isActive()
        assert await module.state(where) == {"state": "running", "defined": True}
        # the guest's firmware (iPXE, then no disk to boot) ignores ACPI: forced off
        began = time.monotonic()
        assert await module.stop(where) == {"state": "off"}
        assert time.monotonic() - began >= SHUTDOWN
        assert not domain.isActive()
        assert "reason=destroyed" in daemon.qemu_log(name)
        assert await module.set_boot_device({**where, "device": "disk"}) == {"device": "disk"}

        assert await module.destroy(where) == {"uuid": domain_uuid, "state": "gone"}
        assert conn.listAllDomains() == []
        assert conn.storagePoolLookupByName(POOL).listAllVolumes() == []
        with pytest.raises(TaskFailed, match=f"the host has no domain {domain_uuid}"):
            await module.start(where)
    finally:
        conn.close()
        await module.aclose()
