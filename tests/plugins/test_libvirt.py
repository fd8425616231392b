"""The ``libvirt`` foundation type's own rules: its fields, its demand on the member, the
tasks its job functions send (the member's endpoint and credentials, the domain's uuid made
of the foundation and the job) and the answers they take; every refusal names the foundation
or the field."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import Foundation, FoundationPlacement
from contractor.plugins import JobAccess, find_foundation_type
from contractor.plugins.hosted import HostedFoundationType
from contractor.plugins.libvirt import (
    LibvirtFoundation,
    LibvirtFoundationType,
    domain_shape,
    domain_uuid,
)
from contractor.services import building, complexes
from contractor.services.placement import Demand, MemberAccess
from tests.factories import make_foundation_blueprint, make_stack, unique

PLUGIN = LibvirtFoundationType()
MEMBER = MemberAccess(
    complex="rack1",
    complex_type="libvirt",
    structure="kvm1",
    endpoint="qemu+tcp://10.0.0.5/system",
    username="ops",
    password="hunter22",
)
UUID = "4b1e1c3e-8a57-4f0e-9a9e-2d0d5c1b7a10"


def test_the_original_spelling_finds_the_type() -> None:
    assert find_foundation_type("LibVirt") is find_foundation_type("libvirt")
    assert isinstance(PLUGIN, HostedFoundationType)
    assert PLUGIN.complex_type == "libvirt"
    assert PLUGIN.class_list == ("VM", "LibVirt")
    assert PLUGIN.uses_job


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cpu_count": 0}, "cpu_count", "cpu_count must be a whole number from 1 to 256, got 0"),
        ({"cpu_count": True}, "cpu_count", "cpu_count must be a whole number"),
        ({"memory_mb": 32}, "memory_mb", "memory_mb must be a whole number from 64"),
        ({"disk_gb": "10"}, "disk_gb", "disk_gb must be a whole number from 1 to 65536"),
        ({"pool": "my pool"}, "pool", "pool must be a storage pool name, got 'my pool'"),
        ({"network": "a b"}, "network", "network must be a network name"),
        ({"bridge": 7}, "bridge", "bridge must be a bridge name, got 7"),
        (
            {"network": "default", "bridge": "br0"},
            "bridge",
            "give a network or a bridge for the NICs, not both",
        ),
        ({"domain_uuid": "nope"}, "domain_uuid", "domain_uuid must be a uuid, got 'nope'"),
        ({"complex": ""}, "complex", "complex must be a name"),
        ({"vcpus": 2}, "vcpus", "foundation type 'libvirt' has no field 'vcpus'"),
    ],
)
def test_bad_fields_name_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        PLUGIN.validate_fields(fields)
    assert refused.value.field == field
    assert message in refused.value.message


def test_good_fields_and_the_demand() -> None:
    values = {
        "cpu_count": 4,
        "memory_mb": 4096,
        "disk_gb": 40,
        "pool": "vms",
        "bridge": "br0",
        "domain_uuid": UUID.upper(),
        "complex": "rack1",
        "member": "kvm1",
    }
    checked = PLUGIN.validate_fields(values)
    assert checked == {**values, "domain_uuid": UUID}
    foundation = LibvirtFoundation(locator="vm1", type="libvirt")
    assert PLUGIN.demand(foundation, checked) == Demand(cpus=4, memory_mb=4096, disk_gb=40)
    # what is not given: the row's, then the defaults
    assert PLUGIN.demand(foundation, {"cpu_count": 2}) == Demand(2, 1024, 10)
    assert PLUGIN.demand(LibvirtFoundation(locator="vm1", memory_mb=512), {}) == Demand(1, 512, 10)


def _foundation(**fields: Any) -> LibvirtFoundation:
    defaults = {"locator": "vm1", "cpu_count": 2, "memory_mb": 2048, "disk_gb": 20}
    return LibvirtFoundation(id=7, type="libvirt", pool="default", **{**defaults, **fields})


def _access(recorded: dict[str, Any], member: MemberAccess | None = MEMBER) -> JobAccess:
    return JobAccess(
        job_id=12,
        interface_names=["eth0", "eth1"],
        interface_locations=["nic0", "nic1"],
        record=recorded.update,
        member=member,
    )


def _call(foundation: LibvirtFoundation, name: str, member: MemberAccess | None = MEMBER) -> Any:
    recorded: dict[str, Any] = {}
    module, call = PLUGIN.job_functions(foundation, _access(recorded, member))[name]()
    assert module == "libvirt"
    return call, recorded


CONNECTION = {
    "foundation": "vm1",
    "member": "kvm1",
    "endpoint": "qemu+tcp://10.0.0.5/system",
    "username": "ops",
    "password": "hunter22",
}


def test_create_sends_the_shape_and_a_uuid_of_the_foundation_and_the_job() -> None:
    call, recorded = _call(_foundation(network="default"), "create")
    call.setup({})
    function, parameters = call.to_subcontractor()
    wanted = domain_uuid("vm1", 7, 12)
    assert wanted == domain_uuid("vm1", 7, 12) != domain_uuid("vm1", 7, 13)
    assert function == "create"
    assert parameters == {
        "connection": {**CONNECTION, "uuid": wanted},
        "domain": {
            "name": "vm1",
            "cpu_count": 2,
            "memory_mb": 2048,
            "disks": [20],
            "pool": "default",
            "network": "default",
            "interfaces": ["eth0", "eth1"],
            "boot_order": ["network", "disk"],
        },
    }
    # the task sent again carries the same uuid (the module then finds the domain)
    assert call.to_subcontractor()[1]["connection"]["uuid"] == wanted
    answer = {
        "uuid": wanted,
        "state": "off",
        "interface_map": {"eth0": "52:54:00:00:00:01", "eth1": "52:54:00:00:00:02"},
    }
    call.from_subcontractor(answer)
    assert call.value == {
        "uuid": wanted,
        "state": "off",
        "interface_list": [
            {"name": "eth0", "mac": "52:54:00:00:00:01"},
            {"name": "eth1", "mac": "52:54:00:00:00:02"},
        ],
    }
    assert recorded == {"domain_uuid": wanted}
    # a foundation that already has its domain keeps its uuid
    again, _ = _call(_foundation(network="default", domain_uuid=UUID), "create")
    again.setup({})
    assert again.to_subcontractor()[1]["connection"]["uuid"] == UUID


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"uuid": UUID, "interface_map": {}}, "the create answer is malformed"),
        ({"interface_map": "eth0"}, "the create answer is malformed"),
        ("mac-only", "the create answer is malformed"),
    ],
)
def test_a_nonsense_create_answer_is_refused(answer: Any, message: str) -> None:
    call, recorded = _call(_foundation(bridge="br0"), "create")
    call.setup({})
    call.to_subcontractor()
    if isinstance(answer, dict) and "uuid" not in answer:
        answer = {**answer, "uuid": domain_uuid("vm1", 7, 12)}
    with pytest.raises(ValueError, match=message if isinstance(answer, dict) else "JSON object"):
        call.from_subcontractor(answer)
    assert recorded == {}


def test_a_missing_mac_is_refused() -> None:
    call, recorded = _call(_foundation(bridge="br0"), "create")
    call.setup({})
    call.to_subcontractor()
    with pytest.raises(ValueError, match="foundation 'vm1': the answer has no MAC for eth1"):
        call.from_subcontractor(
            {"uuid": domain_uuid("vm1", 7, 12), "interface_map": {"eth0": "52:54:00:00:00:01"}}
        )
    assert recorded == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "foundation 'vm1': set exactly one of network and bridge"),
        ({"locator": "1vm", "bridge": "br0"}, "the locator is the domain's name and must start"),
    ],
)
def test_a_bad_shape_is_refused_before_any_task(fields: dict[str, Any], message: str) -> None:
    call, _ = _call(_foundation(**fields), "create")
    with pytest.raises(ValueError, match=message):
        call.setup({})


def test_no_interfaces_is_refused() -> None:
    with pytest.raises(ValueError, match="foundation 'vm1' has no interfaces"):
        domain_shape(_foundation(bridge="br0"), [])


def test_an_unplaced_foundation_sends_nothing() -> None:
    call, _ = _call(_foundation(bridge="br0"), "create", member=None)
    with pytest.raises(ValueError, match="'vm1' is not placed on a member of a libvirt complex"):
        call.setup({})


def test_the_power_functions_need_the_domain() -> None:
    call, _ = _call(_foundation(bridge="br0"), "power_on")
    with pytest.raises(ValueError, match="foundation 'vm1' has no domain_uuid: create its"):
        call.setup({})
    functions = PLUGIN.job_functions(_foundation(), _access({}))
    assert {
        "create",
        "destroy",
        "power_on",
        "power_off",
        "power_state",
        "wait_for_poweroff",
        "set_power",
        "set_boot_device",
        "get_interface_map",
    } == set(functions)


def test_power_boot_and_interface_map_tasks() -> None:
    foundation = _foundation(bridge="br0", domain_uuid=UUID)
    where = {"connection": {**CONNECTION, "uuid": UUID}}

    call, _ = _call(foundation, "power_off")
    call.setup({})
    assert call.to_subcontractor() == ("set_power", {**where, "state": "soft_off"})
    call.from_subcontractor({"state": "on"})  # the guest did not go: asked again
    assert not call.done

    call, _ = _call(foundation, "set_power")
    call.setup({"state": "soft_off"})
    assert call.to_subcontractor() == ("set_power", {**where, "state": "soft_off"})
    call.from_subcontractor({"state": "off"})
    assert call.done
    call, _ = _call(foundation, "set_power")
    with pytest.raises(Exception, match="must be on, off or soft_off, got 'cycle'"):
        call.setup({"state": "cycle"})

    call, _ = _call(foundation, "set_boot_device")
    call.setup({"device": "PXE"})
    assert call.to_subcontractor() == ("set_boot_device", {**where, "device": "pxe"})
    call, _ = _call(foundation, "set_boot_device")
    with pytest.raises(Exception, match="must be network or disk, got 'usb'"):
        call.setup({"device": "usb"})

    call, _ = _call(foundation, "get_interface_map")
    call.setup({})
    assert call.to_subcontractor() == (
        "get_interface_map",
        {**where, "physical_locations": ["nic0", "nic1"]},
    )
    macs = {"nic0": "52:54:00:00:00:01", "nic1": "52:54:00:00:00:02"}
    call.from_subcontractor({"interface_map": macs})
    assert call.value == macs


def test_destroy_forgets_the_uuid() -> None:
    call, recorded = _call(_foundation(bridge="br0", domain_uuid=UUID), "destroy")
    call.setup({})
    assert call.to_subcontractor() == ("destroy", {"connection": {**CONNECTION, "uuid": UUID}})
    with pytest.raises(ValueError, match="foundation 'vm1': the domain is not gone"):
        call.from_subcontractor({"state": "running"})
    assert recorded == {}
    call.from_subcontractor({"uuid": UUID, "state": "gone"})
    assert call.value is True
    assert recorded == {"domain_uuid": None}


def test_values_and_config_attributes_hold_no_secret() -> None:
    foundation = _foundation(bridge="br0", domain_uuid=UUID)
    assert PLUGIN.config_attributes(foundation) == {"_libvirt_uuid": UUID}
    assert PLUGIN.tscript_values(foundation) == {
        "domain_uuid": UUID,
        "cpu_count": 2,
        "memory_mb": 2048,
        "disk_gb": 20,
    }
    assert "hunter22" not in repr(MEMBER)


async def _placed(session: AsyncSession, **fields: Any) -> tuple[Foundation, Any]:
    site, _, structure = await make_stack(session)
    complex_ = await complexes.create_complex(
        session, name=unique("kvm"), site=site, type="LibVirt"
    )
    member = await complexes.add_complex_member(
        session, complex_, structure, endpoint="qemu:///system"
    )
    await complexes.set_member_capacity(session, member, cpus=8, memory_mb=8192, disk_gb=100)
    blueprint = await make_foundation_blueprint(session, foundation_types=["LibVirt"])
    foundation = await building.create_foundation(
        session,
        locator=unique("vm"),
        site=site,
        blueprint=blueprint,
        type="LibVirt",
        fields={"complex": complex_.name, "bridge": "br0", **fields},
    )
    return foundation, member


async def test_creating_places_the_shape_on_a_member(session: AsyncSession) -> None:
    foundation, member = await _placed(session, cpu_count=4, memory_mb=4096, disk_gb=40)
    placed = await session.get_one(FoundationPlacement, foundation.id)
    assert (placed.member_id, placed.cpus, placed.memory_mb, placed.disk_gb) == (
        member.id,
        4,
        4096,
        40,
    )
    assert isinstance(foundation, LibvirtFoundation)
    assert (foundation.cpu_count, foundation.bridge, foundation.pool) == (4, "br0", "default")
    # the shape the placement counted is fixed; the rest may change
    with pytest.raises(InvalidInput) as refused:
        await building.update_foundation(session, foundation, fields={"memory_mb": 8192})
    assert refused.value.field == "memory_mb"
    assert "memory_mb is given when a foundation is created and cannot be changed" in (
        refused.value.message
    )
    assert foundation.memory_mb == 4096
    await building.update_foundation(session, foundation, fields={"pool": "fast"})
    assert foundation.pool == "fast"


async def test_a_shape_past_the_members_room_is_refused(session: AsyncSession) -> None:
    """(The caller's transaction is then rolled back: nothing of the foundation stays.)"""
    with pytest.raises(Conflict) as refused:
        await _placed(session, cpu_count=64)
    assert refused.value.field == "complex"
    # the defaults count too: 1024 MB and 10 GB
    assert "no member with 64 CPUs, 1024 MB memory, 10 GB disk free" in refused.value.message
