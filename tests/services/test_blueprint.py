"""BluePrints: parents, script lookup, fingerprints, PXE and deletion rules."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InUse, InvalidInput, NotFound
from contractor.services import blueprint as bps
from contractor.services import interfaces
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure_blueprint,
)


async def test_chain_is_post_order_depth_first_with_diamonds(session: AsyncSession) -> None:
    base = await make_structure_blueprint(session, "base")
    left = await make_structure_blueprint(session, "left", parents=[base])
    right = await make_structure_blueprint(session, "right", parents=[base])
    top = await make_structure_blueprint(session, "top", parents=[left, right])
    chain = await bps.blueprint_chain(session, top)
    assert [bp.name for bp in chain] == ["base", "left", "base", "right", "top"]


async def test_parent_order_is_kept(session: AsyncSession) -> None:
    a, b, c = [await make_structure_blueprint(session, n) for n in ("pa", "pb", "pc")]
    child = await make_structure_blueprint(session, "kid", parents=[c, a, b])
    assert [bp.name for bp in await bps.blueprint_chain(session, child)] == [
        "pc",
        "pa",
        "pb",
        "kid",
    ]
    await bps.update_blueprint(session, child, parents=[b])
    assert [bp.name for bp in await bps.blueprint_chain(session, child)] == ["pb", "kid"]


async def test_parent_rules(session: AsyncSession) -> None:
    fbp = await make_foundation_blueprint(session, "metal")
    sbp = await make_structure_blueprint(session, "os")
    child = await make_structure_blueprint(session, "os2", parents=[sbp])
    with pytest.raises(InvalidInput, match="cannot have the foundation blueprint 'metal'"):
        await bps.set_parents(session, sbp, [fbp])
    with pytest.raises(InvalidInput, match="cycle"):
        await bps.set_parents(session, sbp, [child])
    with pytest.raises(InvalidInput, match="cycle"):
        await bps.set_parents(session, sbp, [sbp])
    with pytest.raises(InvalidInput, match="listed twice"):
        await bps.set_parents(session, child, [sbp, sbp])


async def test_find_script_searches_depth_first(session: AsyncSession) -> None:
    grand = await make_structure_blueprint(session, "grand")
    first = await make_structure_blueprint(session, "first", parents=[grand])
    second = await make_structure_blueprint(session, "second")
    child = await make_structure_blueprint(session, "child", parents=[first, second])
    deep = await bps.create_script(session, name="deep", source="pass")
    near = await bps.create_script(session, name="near", source="pass")
    await bps.link_script(session, blueprint=grand, role="create", script=deep)
    await bps.link_script(session, blueprint=second, role="create", script=near)
    found = await bps.find_script(session, child, "create")
    assert found is not None
    assert found.name == "deep"  # the first parent's whole ancestry comes before the second
    assert await bps.find_script(session, child, "destroy") is None
    own = await bps.create_script(session, name="own", source="pass")
    await bps.link_script(session, blueprint=child, role="create", script=own)
    found = await bps.find_script(session, child, "create")
    assert found is not None
    assert found.name == "own"
    assert await bps.script_roles(session, child) == {"create": "own"}
    await bps.unlink_script(session, blueprint=child, role="create")
    with pytest.raises(NotFound, match="no 'create' script of its own"):
        await bps.unlink_script(session, blueprint=child, role="create")


async def test_foundation_types_in_any_case_are_stored_in_one(session: AsyncSession) -> None:
    fbp = await make_foundation_blueprint(session, foundation_types=["IPMI", "Simulated"])
    assert fbp.foundation_types == ["ipmi", "simulated"]
    await bps.update_blueprint(session, fbp, foundation_types=["mAnUaL"])
    assert fbp.foundation_types == ["manual"]
    with pytest.raises(InvalidInput, match="foundation_types lists an entry twice"):
        await bps.update_blueprint(session, fbp, foundation_types=["ipmi", "IPMI"])
    with pytest.raises(InvalidInput) as info:
        await bps.update_blueprint(session, fbp, foundation_types=["ipmi", "vcenter"])
    assert info.value.message == (
        "foundation_types names 'vcenter', which is not an installed foundation type "
        "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)"
    )
    assert fbp.foundation_types == ["manual"]


async def test_foundation_blueprint_fields(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput, match="not an installed foundation type"):
        await make_foundation_blueprint(session, foundation_types=["vcenter"])
    with pytest.raises(InvalidInput, match="'vendor:device'"):
        await make_foundation_blueprint(session, required_pci_devices=["nvidia"])
    with pytest.raises(InvalidInput, match="min_cpu_count"):
        await make_foundation_blueprint(session, min_cpu_count=0)
    with pytest.raises(InvalidInput, match="structure blueprints have no field"):
        await bps.update_blueprint(
            session, await make_structure_blueprint(session), min_cpu_count=3
        )
    fbp = await make_foundation_blueprint(session, required_disks_gb=[100, 500])
    assert fbp.required_disks_gb == [500, 100]
    await bps.update_blueprint(session, fbp, min_memory_mb=4096)
    assert (fbp.min_memory_mb, fbp.required_disks_gb) == (4096, [500, 100])


async def test_fingerprint_problems(session: AsyncSession) -> None:
    parent = await make_foundation_blueprint(
        session, min_cpu_count=8, required_pci_devices=["8086:1572"]
    )
    fbp = await make_foundation_blueprint(
        session, parents=[parent], min_memory_mb=65536, required_disks_gb=[400, 400]
    )
    good = {
        "cpu_count": 16,
        "memory_mb": 131072,
        "pci_devices": ["8086:1572", "10de:2204"],
        "disks_gb": [480, 480, 960],
    }
    assert await bps.fingerprint_problems(session, fbp, good) == []
    problems = await bps.fingerprint_problems(
        session, fbp, {"cpu_count": 4, "memory_mb": 1024, "disks_gb": [480]}
    )
    assert len(problems) == 4
    assert any("at least 8 CPUs" in p for p in problems)
    assert any("PCI device 8086:1572" in p for p in problems)
    assert len(await bps.fingerprint_problems(session, fbp, None)) == 4


async def test_delete_rules(session: AsyncSession) -> None:
    fbp = await make_foundation_blueprint(session, "hw")
    sbp = await make_structure_blueprint(session, "sw", foundation_blueprints=[fbp])
    await make_foundation(session, await make_site(session), fbp, locator="box1")
    with pytest.raises(InUse) as info:
        await bps.delete_blueprint(session, fbp)
    assert "foundations (box1)" in str(info.value)
    assert "structure blueprints (sw)" in str(info.value)
    kid = await make_structure_blueprint(session, "sw2", parents=[sbp])
    with pytest.raises(InUse, match=r"child blueprints \(sw2\)"):
        await bps.delete_blueprint(session, sbp)
    await bps.delete_blueprint(session, kid)
    await bps.delete_blueprint(session, sbp)
    with pytest.raises(NotFound):
        await bps.get_blueprint(session, "sw")


async def test_scripts_and_pxe(session: AsyncSession) -> None:
    script = await bps.create_script(session, name="linux-create", source="begin()\nend")
    with pytest.raises(Conflict):
        await bps.create_script(session, name="linux-create", source="")
    sbp = await make_structure_blueprint(session)
    await bps.link_script(session, blueprint=sbp, role="create", script=script)
    with pytest.raises(InUse, match="blueprints"):
        await bps.delete_script(session, script)
    with pytest.raises(InvalidInput, match="script role"):
        await bps.link_script(session, blueprint=sbp, role="bad role", script=script)
    pxe = await bps.create_pxe(session, name="normal-boot", boot_script="chain {{ x }}")
    site = await make_site(session)
    foundation = await make_foundation(session, site, await make_foundation_blueprint(session))
    await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", pxe=pxe
    )
    with pytest.raises(InUse, match=r"PXE 'normal-boot' is still used by 1 interfaces \(eth0\)"):
        await bps.delete_pxe(session, pxe)
