"""Foundations, Structures, Complexes and Dependencies: rules and state transitions."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InUse, InvalidInput, InvalidState, NotFound
from contractor.services import addresses, building, complexes, directory, interfaces
from tests.factories import (
    make_block,
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_stack,
    make_structure,
    make_structure_blueprint,
)


async def test_foundation_types_come_from_plugins(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session, foundation_types=["simulated"])
    sim = await make_foundation(
        session, site, fbp, type="simulated", fields={"delay_seconds": 5, "fail_likelihood": 10}
    )
    assert type(sim).__name__ == "SimulatedFoundation"
    session.expunge_all()
    again = await building.get_foundation(session, sim.locator)
    assert (again.type, getattr(again, "delay_seconds", None)) == ("simulated", 5)
    with pytest.raises(InvalidInput, match="does not accept foundation type 'manual'"):
        await make_foundation(session, site, fbp, type="manual")
    with pytest.raises(NotFound, match="unknown foundation type 'ipmi2'"):
        await make_foundation(session, site, fbp, type="ipmi2")
    with pytest.raises(InvalidInput, match="fail_likelihood must be a whole number from 0 to 100"):
        await make_foundation(session, site, fbp, type="simulated", fields={"fail_likelihood": 101})
    with pytest.raises(InvalidInput, match="has no field 'colour'"):
        await make_foundation(session, site, fbp, type="simulated", fields={"colour": "red"})


async def test_foundation_type_in_any_case_is_stored_as_the_plugin_names_it(
    session: AsyncSession,
) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session, foundation_types=["Simulated"])
    assert fbp.foundation_types == ["simulated"]
    sim = await make_foundation(session, site, fbp, type="SIMULATED")
    assert (type(sim).__name__, sim.type) == ("SimulatedFoundation", "simulated")
    session.expunge_all()
    assert (await building.get_foundation(session, sim.locator)).type == "simulated"
    with pytest.raises(InvalidInput, match="does not accept foundation type 'manual'"):
        await make_foundation(session, site, fbp, type="Manual")
    with pytest.raises(NotFound) as info:
        await make_foundation(session, site, fbp, type="Simulatd")
    assert info.value.message == (
        "unknown foundation type 'Simulatd' "
        "(installed: aws, docker, ipmi, libvirt, manual, redfish, simulated, simulated-vm)"
    )
    assert info.value.field == "type"


async def test_types_accepted_through_parent_blueprint(session: AsyncSession) -> None:
    parent = await make_foundation_blueprint(session, foundation_types=["simulated"])
    child = await make_foundation_blueprint(session, foundation_types=[], parents=[parent])
    await make_foundation(session, await make_site(session), child, type="simulated")


@pytest.mark.parametrize("locator", ["", "a b", "-lead", "x" * 101])
async def test_bad_locators(session: AsyncSession, locator: str) -> None:
    site = await make_site(session)
    with pytest.raises(InvalidInput, match="locator"):
        await make_foundation(
            session, site, await make_foundation_blueprint(session), locator=locator
        )


async def test_duplicate_locator(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    await make_foundation(session, site, fbp, locator="rack1-u1")
    with pytest.raises(Conflict, match="foundation 'rack1-u1' already exists"):
        await make_foundation(session, site, fbp, locator="rack1-u1")


async def test_interfaces(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    one = await make_foundation(session, site, fbp, locator="one")
    two = await make_foundation(session, site, fbp, locator="two")
    eth0 = await interfaces.add_interface(
        session,
        foundation=one,
        physical_location="eth0",
        mac="AABB.CCDD.EEFF",
        is_provisioning=True,
    )
    assert eth0.mac == "aa:bb:cc:dd:ee:ff"
    assert eth0.name == "eth0"
    with pytest.raises(Conflict, match="already provisions through 'eth0'"):
        await interfaces.add_interface(
            session, foundation=one, physical_location="eth1", is_provisioning=True
        )
    with pytest.raises(Conflict, match="already has an interface at 'eth0'"):
        await interfaces.add_interface(session, foundation=one, physical_location="eth0")
    with pytest.raises(
        Conflict, match="MAC aa:bb:cc:dd:ee:ff is already on interface 'eth0' of foundation 'one'"
    ):
        await interfaces.add_interface(
            session, foundation=two, physical_location="eth0", mac="aa-bb-cc-dd-ee-ff"
        )
    with pytest.raises(InvalidInput, match="not in a known form"):
        await interfaces.add_interface(
            session, foundation=two, physical_location="eth0", mac="aa:bb:cc:dd:ee:ff:00"
        )
    eth1 = await interfaces.add_interface(session, foundation=one, physical_location="eth1")
    with pytest.raises(Conflict, match="one provisioning interface"):
        await interfaces.update_interface(session, eth1, is_provisioning=True)
    await interfaces.update_interface(session, eth0, is_provisioning=False)
    await interfaces.update_interface(session, eth1, is_provisioning=True, mac="001122334455")
    assert eth1.mac == "00:11:22:33:44:55"
    names = [i.physical_location for i in await interfaces.foundation_interfaces(session, one)]
    assert names == ["eth0", "eth1"]


async def test_foundation_states(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    foundation = await make_foundation(session, site, fbp)
    await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", mac="00:00:00:00:00:01"
    )
    assert foundation.state == "planned"
    await building.set_located(session, foundation)
    assert foundation.state == "located"
    await building.set_built(session, foundation)
    assert foundation.state == "built"
    with pytest.raises(InvalidState, match="already built"):
        await building.set_built(session, foundation)
    with pytest.raises(InvalidState, match="destroy it before locating"):
        await building.set_located(session, foundation)
    with pytest.raises(InvalidState, match="is built; destroy it first"):
        await building.delete_foundation(session, foundation)
    await building.set_destroyed(session, foundation)
    assert foundation.state == "planned"
    (eth0,) = await interfaces.foundation_interfaces(session, foundation)
    assert eth0.mac is None
    await building.set_built(session, foundation)  # planned -> built locates on the way
    assert foundation.located_at is not None


async def test_fingerprint_gates_location(session: AsyncSession) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session, min_cpu_count=4)
    foundation = await make_foundation(session, site, fbp)
    with pytest.raises(InvalidState, match="needs at least 4 CPUs"):
        await building.set_located(session, foundation)
    with pytest.raises(InvalidState, match="needs at least 4 CPUs"):
        await building.set_built(session, foundation)
    assert foundation.state == "planned"
    await interfaces.add_interface(session, foundation=foundation, physical_location="eth0")
    await building.set_id_map(
        session, foundation, {"cpu_count": 8, "network": {"eth0": {"mac": "0a:00:00:00:00:01"}}}
    )
    await building.set_located(session, foundation)
    (eth0,) = await interfaces.foundation_interfaces(session, foundation)
    assert eth0.mac == "0a:00:00:00:00:01"
    with pytest.raises(InvalidInput, match=r"id_map.network must be a map"):
        await building.set_id_map(session, foundation, {"network": []})


async def test_structure_rules(session: AsyncSession) -> None:
    site, foundation, structure = await make_stack(session)
    sbp = await make_structure_blueprint(session)
    with pytest.raises(Conflict, match=f"already carries structure '{structure.hostname}'"):
        await make_structure(session, site, foundation, sbp)
    other = await make_foundation(session, site, await make_foundation_blueprint(session))
    with pytest.raises(InvalidInput, match="cannot be built on foundation blueprint"):
        await make_structure(session, site, other, sbp)
    fitting = await make_structure_blueprint(session, foundation_blueprints=[])
    with pytest.raises(Conflict, match="is already used in site"):
        await make_structure(session, site, other, fitting, hostname=structure.hostname)


@pytest.mark.parametrize("hostname", ["a", "Web1", "web_1", "web.example", "-web", "web-", ""])
async def test_bad_hostnames(session: AsyncSession, hostname: str) -> None:
    site = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    with pytest.raises(InvalidInput, match="hostname"):
        await make_structure(
            session, site, await make_foundation(session, site, fbp), sbp, hostname=hostname
        )


async def test_hostname_unique_per_zone(session: AsyncSession) -> None:
    zone = await directory.create_zone(session, name="example")
    one = await make_site(session, zone=zone)
    two = await make_site(session, zone=zone)
    three = await make_site(session)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    await make_structure(
        session, one, await make_foundation(session, one, fbp), sbp, hostname="web"
    )
    with pytest.raises(Conflict, match="shares the DNS zone"):
        await make_structure(
            session, two, await make_foundation(session, two, fbp), sbp, hostname="web"
        )
    await make_structure(
        session, three, await make_foundation(session, three, fbp), sbp, hostname="web"
    )
    renamed = await make_structure(
        session, two, await make_foundation(session, two, fbp), sbp, hostname="db"
    )
    with pytest.raises(Conflict, match="shares the DNS zone"):
        await building.update_structure(session, renamed, hostname="web")
    assert renamed.hostname == "db"


async def test_structure_states(session: AsyncSession) -> None:
    _, foundation, structure = await make_stack(session)
    with pytest.raises(InvalidState, match=r"needs its foundation .* built first"):
        await building.set_structure_built(session, structure)
    await building.set_built(session, foundation)
    await building.set_structure_built(session, structure)
    assert structure.state == "built"
    with pytest.raises(InvalidState, match="carries built structure"):
        await building.set_destroyed(session, foundation)
    with pytest.raises(InvalidState, match="is built; destroy it first"):
        await building.delete_structure(session, structure)
    uuid_before = structure.config_uuid
    await building.set_structure_destroyed(session, structure)
    assert structure.state == "planned"
    assert structure.config_uuid != uuid_before
    with pytest.raises(InvalidState, match="is not built"):
        await building.set_structure_destroyed(session, structure)
    await building.set_destroyed(session, foundation)
    with pytest.raises(InUse, match=f"structures \\({structure.hostname}\\)"):
        await building.delete_foundation(session, foundation)
    await building.delete_structure(session, structure)
    await building.delete_foundation(session, foundation)


async def test_complex_state_follows_members(session: AsyncSession) -> None:
    site = await make_site(session)
    complex_ = await complexes.create_complex(
        session, name="cluster", site=site, built_percentage=50
    )
    assert (await complexes.complex_states(session, [complex_]))[complex_.id] == "planned"
    members = [await make_stack(session) for _ in range(4)]
    for _, _, structure in members:
        await complexes.add_complex_member(session, complex_, structure)
    with pytest.raises(Conflict, match="already a member of complex 'cluster'"):
        await complexes.add_complex_member(session, complex_, members[0][2])
    for _, foundation, structure in members[:1]:
        await building.set_built(session, foundation)
        await building.set_structure_built(session, structure)
    assert (await complexes.complex_states(session, [complex_]))[complex_.id] == "planned"
    _, foundation, structure = members[1]
    await building.set_built(session, foundation)
    await building.set_structure_built(session, structure)
    assert (await complexes.complex_states(session, [complex_]))[complex_.id] == "built"
    with pytest.raises(InUse, match="complexes \\(cluster\\)"):
        await building.delete_structure(session, members[3][2])
    await complexes.remove_complex_member(session, complex_, members[3][2])
    await building.delete_structure(session, members[3][2])
    with pytest.raises(InvalidInput, match="built_percentage"):
        await complexes.create_complex(session, name="bad", site=site, built_percentage=0)


async def test_dependencies(session: AsyncSession) -> None:
    _, db_foundation, db = await make_stack(session)
    _, app_foundation, _ = await make_stack(session)
    dependency = await building.create_dependency(
        session, structure=db, foundation=app_foundation, link="hard"
    )
    with pytest.raises(Conflict, match="already has a dependency"):
        await building.create_dependency(session, structure=db, foundation=app_foundation)
    with pytest.raises(InvalidInput, match="exactly one structure or one other dependency"):
        await building.create_dependency(session)
    with pytest.raises(InvalidInput, match="must differ"):
        await building.create_dependency(
            session, structure=db, create_script_name="go", destroy_script_name="go"
        )
    with pytest.raises(InvalidInput, match="needs a structure to run on"):
        await building.create_dependency(session, dependency=dependency, create_script_name="go")
    chained = await building.create_dependency(session, dependency=dependency)
    with pytest.raises(InvalidState, match=r"needs structure .* built first"):
        await building.set_dependency_built(session, dependency)
    with pytest.raises(InvalidState, match=f"needs dependency {dependency.id} built first"):
        await building.set_dependency_built(session, chained)
    await building.set_built(session, db_foundation)
    await building.set_structure_built(session, db)
    await building.set_dependency_built(session, dependency)
    await building.set_dependency_built(session, chained)
    await building.set_built(session, app_foundation)
    # destroying the structure destroys the dependency, its child, and (hard link) the
    # dependent foundation
    await building.set_structure_destroyed(session, db)
    assert (dependency.state, chained.state, app_foundation.state) == ("planned",) * 3
    with pytest.raises(InUse, match="dependencies"):
        await building.delete_structure(session, db)
    with pytest.raises(InUse, match="dependencies"):
        await building.delete_dependency(session, dependency)
    await building.delete_dependency(session, chained)
    await building.delete_dependency(session, dependency)


async def test_addresses_go_with_their_structure(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site)
    await addresses.create_address(session, block=block, structure=structure, interface_name="eth0")
    await interfaces.add_abstract_interface(session, structure=structure, name="bond0")
    with pytest.raises(Conflict, match="already has an interface 'bond0'"):
        await interfaces.add_abstract_interface(session, structure=structure, name="bond0")
    await building.delete_structure(session, structure)
    assert (await addresses.block_usage(session, block)).static == 0


async def test_hostname_may_not_shadow_a_child_zone(session: AsyncSession) -> None:
    parent = await directory.create_zone(session, name="example")
    await directory.create_zone(session, name="lab", parent=parent)
    site = await make_site(session, zone=parent)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    foundation = await make_foundation(session, site, fbp)
    with pytest.raises(Conflict, match=r"hostname 'lab' is the name of child zone 'lab.example'"):
        await make_structure(session, site, foundation, sbp, hostname="lab")
    web = await make_structure(session, site, foundation, sbp, hostname="web")
    with pytest.raises(Conflict, match="child zone"):
        await building.update_structure(session, web, hostname="lab")
