"""The subcontractor's ``libvirt`` module against libvirt's in-process test driver
(``test:///default``, whose state every connection of this process shares): a domain defined
from the shape, a create sent again defining nothing more, power with ACPI shutdown, boot
order, the interface map, destroy leaving nothing, the host's capacity, and every refusal
naming the foundation and the member and leaving nothing defined."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from subcontractor.module import TaskFailed

libvirt = pytest.importorskip("libvirt", reason="the libvirt extra (libvirt-python) is needed")

from subcontractor.modules.libvirt import LibvirtModule, LibvirtOptions  # noqa: E402
from subcontractor.modules.libvirt_domain import Target  # noqa: E402

URI = "test:///default"
POOL = "default-pool"


@pytest.fixture
def host() -> Iterator[Any]:
    """A connection held open (the test driver's state lives while one is), and every
    domain and volume a test made removed afterwards."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    before = {d.UUIDString() for d in conn.listAllDomains()}
    volumes = {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes()}
    try:
        yield conn
    finally:
        for domain in conn.listAllDomains():
            if domain.UUIDString() not in before:
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        for volume in conn.storagePoolLookupByName(POOL).listAllVolumes():
            if volume.name() not in volumes:
                volume.delete(0)
        conn.close()


def module(**options: Any) -> LibvirtModule:
    settings = LibvirtOptions(confirm_interval=0.01, confirm_timeout=2, **options)
    return LibvirtModule("libvirt", settings, concurrency=2)


def connection(domain_uuid: str, **changes: Any) -> dict[str, Any]:
    found = {
        "foundation": "vm1",
        "member": "kvm1",
        "endpoint": URI,
        "username": "",
        "password": "",
        "uuid": domain_uuid,
    }
    found.update(changes)
    return found


def shape(name: str, /, **changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name,
        "cpu_count": 2,
        "memory_mb": 512,
        "disks": [5, 1],
        "pool": POOL,
        "network": "default",
        "interfaces": ["eth0", "eth1"],
        "boot_order": ["network", "disk"],
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def names(conn: Any) -> set[str]:
    return {d.name() for d in conn.listAllDomains()}


def volumes(conn: Any) -> set[str]:
    return {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes()}


async def create(
    subject: LibvirtModule, name: str, domain_uuid: str | None = None, /, **changes: Any
) -> dict[str, Any]:
    domain_uuid = domain_uuid or str(uuid.uuid4())
    return await subject.create(
        {"connection": connection(domain_uuid), "domain": shape(name, **changes)}
    )


async def test_create_defines_the_shape_once(host: Any) -> None:
    subject, domain_uuid, name = module(), str(uuid.uuid4()), f"vm-{uuid.uuid4().hex[:8]}"
    made = await create(subject, name, domain_uuid)
    assert made["uuid"] == domain_uuid
    assert made["state"] == "off"
    assert sorted(made["interface_map"]) == ["eth0", "eth1"]
    macs = list(made["interface_map"].values())
    assert len(set(macs)) == 2
    assert all(mac.startswith("52:54:00:") for mac in macs)

    domain = host.lookupByUUIDString(domain_uuid)
    tree = ET.fromstring(domain.XMLDesc(0))
    assert tree.findtext("name") == name
    assert tree.findtext("vcpu") == "2"
    assert int(tree.findtext("memory") or 0) == 512 * 1024  # KiB
    assert [b.get("dev") for b in tree.findall("os/boot")] == ["network", "hd"]
    assert [s.get("network") for s in tree.findall("devices/interface/source")] == [
        "default",
        "default",
    ]
    ours = {v for v in volumes(host) if domain_uuid in v}
    assert len(ours) == 2
    sizes = sorted(
        host.storageVolLookupByPath(s.get("file")).info()[1]
        for s in tree.findall("devices/disk/source")
    )
    assert sizes == [2**30, 5 * 2**30]

    again = await create(subject, name, domain_uuid)  # the task sent again
    assert again == made
    assert [d.name() for d in host.listAllDomains()].count(name) == 1
    assert {v for v in volumes(host) if domain_uuid in v} == ours


async def test_power_boot_device_and_interface_map(host: Any) -> None:
    subject, domain_uuid, name = module(), str(uuid.uuid4()), f"vm-{uuid.uuid4().hex[:8]}"
    made = await create(subject, name, domain_uuid, bridge="br0", network=None)
    where = {"connection": connection(domain_uuid)}
    assert await subject.power_state(where) == {"state": "off"}
    assert await subject.start(where) == {"state": "on"}
    assert host.lookupByUUIDString(domain_uuid).isActive()
    assert await subject.state(where) == {"state": "running", "defined": True}
    assert await subject.set_power({**where, "state": "on"}) == {"state": "on"}  # already on
    # the test driver's guests honour ACPI at once: no forced destroy needed
    assert await subject.stop({**where, "timeout": 5}) == {"state": "off"}
    assert not host.lookupByUUIDString(domain_uuid).isActive()
    assert await subject.set_power({**where, "state": "on"}) == {"state": "on"}
    assert await subject.set_power({**where, "state": "soft_off"}) == {"state": "off"}

    assert await subject.set_boot_device({**where, "device": "disk"}) == {"device": "disk"}
    tree = ET.fromstring(host.lookupByUUIDString(domain_uuid).XMLDesc(0))
    assert [b.get("dev") for b in tree.findall("os/boot")] == ["hd"]
    await subject.set_boot_device({**where, "device": "network"})
    tree = ET.fromstring(host.lookupByUUIDString(domain_uuid).XMLDesc(0))
    assert [b.get("dev") for b in tree.findall("os/boot")] == ["network", "hd"]
    assert [s.get("bridge") for s in tree.findall("devices/interface/source")] == ["br0", "br0"]

    mapped = await subject.get_interface_map({**where, "physical_locations": ["eth0", "eth1"]})
    assert mapped == {"interface_map": made["interface_map"]}
    with pytest.raises(TaskFailed, match="has 2 NICs, not 3"):
        await subject.get_interface_map({**where, "physical_locations": ["a", "b", "c"]})
    with pytest.raises(TaskFailed, match="'usb' is not network or disk"):
        await subject.set_boot_device({**where, "device": "usb"})


async def test_destroy_leaves_nothing(host: Any) -> None:
    subject, domain_uuid, name = module(), str(uuid.uuid4()), f"vm-{uuid.uuid4().hex[:8]}"
    await create(subject, name, domain_uuid)
    where = {"connection": connection(domain_uuid)}
    await subject.start(where)
    assert await subject.destroy(where) == {"uuid": domain_uuid, "state": "gone"}
    assert name not in names(host)
    assert not {v for v in volumes(host) if domain_uuid in v}
    assert await subject.state(where) == {"state": "undefined", "defined": False}
    # sent again: nothing to do, still gone
    assert await subject.destroy(where) == {"uuid": domain_uuid, "state": "gone"}
    with pytest.raises(
        TaskFailed,
        match=f"foundation 'vm1' on member 'kvm1' \\(uuid\\): the host has no domain {domain_uuid}",
    ):
        await subject.start(where)


async def test_host_capacity(host: Any) -> None:
    subject = module()
    info = host.getInfo()
    free = host.storagePoolLookupByName(POOL).info()[3] // 2**30
    answer = await subject.host_capacity(
        {"endpoint": URI, "username": "", "password": "", "pool": POOL}
    )
    assert answer == {"cpus": info[2], "memory_mb": info[1], "disk_gb": free}
    everything = await subject.host_capacity({"endpoint": URI, "username": "", "password": ""})
    assert everything["disk_gb"] >= free
    with pytest.raises(TaskFailed) as refused:
        await subject.host_capacity({"endpoint": URI, "pool": "nope"})
    assert refused.value.message == (
        f"libvirt host {URI} (pool): the host has no storage pool 'nope'"
    )
    with pytest.raises(TaskFailed) as refused:
        await subject.host_capacity({"endpoint": URI, "member": "kvm1", "pool": "nope"})
    assert refused.value.message.startswith("member 'kvm1' (pool): the host has no")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pool": "no-such-pool"}, "(pool): the host has no storage pool 'no-such-pool'"),
        ({"network": "no-such-net"}, "(network): the host has no network 'no-such-net'"),
        ({"bridge": "br0"}, "(network, bridge): give exactly one of them"),
        ({"cpu_count": 0}, "(cpu_count): must be 1 to 256, got 0"),
        ({"memory_mb": "lots"}, "parameter 'memory_mb' must be int"),
        ({"disks": [0]}, "(disks): each disk is 1 to 65536 GB"),
        ({"boot_order": ["floppy"]}, "(boot_order): a list of network and disk"),
        ({"name": "1bad name"}, "(name): '1bad name' is not a name"),
    ],
)
async def test_bad_shapes_leave_nothing(host: Any, changes: dict[str, Any], message: str) -> None:
    before, stored = names(host), volumes(host)
    with pytest.raises(TaskFailed) as refused:
        await create(module(), f"vm-{uuid.uuid4().hex[:8]}", **changes)
    assert message in refused.value.message
    assert not refused.value.retryable
    assert names(host) == before
    assert volumes(host) == stored


async def test_a_refused_definition_removes_its_volumes(host: Any) -> None:
    """libvirt refuses the domain (its name is taken by another domain): the volumes made
    for it are deleted again and the other domain is left alone."""
    taken = f"vm-{uuid.uuid4().hex[:8]}"
    first = await create(module(), taken)
    stored = volumes(host)
    with pytest.raises(TaskFailed) as refused:
        await create(module(), taken)
    assert (
        f"foundation 'vm1' on member 'kvm1' (name): the host already has a domain named {taken!r}"
        in (refused.value.message)
    )
    assert volumes(host) == stored
    assert host.lookupByUUIDString(first["uuid"]).name() == taken

    # a definition libvirt itself refuses (27 disks: no virtio target name is left for the
    # last one) after its volumes were made: they are deleted again
    before = names(host)
    with pytest.raises(
        TaskFailed, match="foundation 'vm1' on member 'kvm1' \\(define\\): libvirt refused"
    ):
        await create(module(), f"vm-{uuid.uuid4().hex[:8]}", disks=[1] * 27)
    assert names(host) == before
    assert volumes(host) == stored


async def test_a_host_that_does_not_answer(tmp_path: Any) -> None:
    where = {
        "connection": connection(
            str(uuid.uuid4()),
            endpoint=f"qemu+unix:///system?socket={tmp_path}/none.sock",
            password="hunter22",
        )
    }
    with pytest.raises(TaskFailed) as refused:
        await module().power_state(where)
    assert refused.value.retryable
    assert "foundation 'vm1' on member 'kvm1' (endpoint): the libvirt host" in refused.value.message
    assert "does not answer" in refused.value.message
    assert "hunter22" not in refused.value.message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint": "not a uri"}, "(endpoint): 'not a uri' is not a libvirt URI"),
        ({"uuid": "nope"}, "(uuid): 'nope' is not a uuid"),
        ({"foundation": 7}, "parameter 'foundation' must be str"),
    ],
)
async def test_bad_connections(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskFailed) as refused:
        await module().power_state({"connection": connection(str(uuid.uuid4()), **changes)})
    assert message in refused.value.message


async def test_set_power_refuses_other_states(host: Any) -> None:
    with pytest.raises(TaskFailed, match="'cycle' is not on, off or soft_off"):
        await module().set_power({"connection": connection(str(uuid.uuid4())), "state": "cycle"})


async def test_a_dead_connection_is_opened_again(host: Any) -> None:
    """The module keeps one connection per host; one that has died (the host restarted) is
    replaced at the next task, and aclose closes what it holds."""
    subject, domain_uuid = module(), str(uuid.uuid4())
    await create(subject, f"vm-{uuid.uuid4().hex[:8]}", domain_uuid)
    where = {"connection": connection(domain_uuid)}
    [held] = subject._connections.values()
    assert await subject.power_state(where) == {"state": "off"}
    assert list(subject._connections.values()) == [held]  # kept, not reopened
    held.close()  # gone under the module's feet
    assert await subject.power_state(where) == {"state": "off"}
    [fresh] = subject._connections.values()
    assert fresh is not held
    await subject.aclose()
    assert subject._connections == {}


def test_a_target_never_shows_its_password() -> None:
    target = Target("vm1", "kvm1", URI, "ops", "hunter22")
    assert "hunter22" not in repr(target)
    assert target.where("pool") == "foundation 'vm1' on member 'kvm1' (pool)"
