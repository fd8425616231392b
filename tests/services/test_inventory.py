"""A realistic inventory built through the services, on PostgreSQL and SQLite: a three-level
site tree, blueprints with parents, 50 foundations with interfaces, structures and addresses;
and the API's reads of it (services/inventory.py): rows by id, lookups, grouped counts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import NotFound
from contractor.models import Address, Foundation, RealNetworkInterface, Structure
from contractor.services import addresses, building, directory, interfaces, inventory, network
from contractor.services import blueprint as bps
from contractor.services import site as sites
from tests.factories import make_foundation, make_foundation_blueprint, make_site, make_stack


async def test_realistic_inventory(session: AsyncSession) -> None:
    zone = await directory.create_zone(session, name="example")
    dc_zone = await directory.create_zone(session, name="dc1", parent=zone)
    assert await directory.zone_fqdn(session, dc_zone) == "dc1.example"
    world = await sites.create_site(
        session, name="world", config_values={"dns_servers": ["10.0.0.53"], "ntp": "pool"}
    )
    region = await sites.create_site(
        session, name="eu", parent=world, config_values={"<dns_search": "eu.example"}
    )
    rows = [
        await sites.create_site(session, name=f"dc1-row{r}", parent=region, zone=dc_zone)
        for r in range(2)
    ]
    metal = await bps.create_foundation_blueprint(
        session, name="generic-metal", foundation_types=["manual", "simulated"]
    )
    big = await bps.create_foundation_blueprint(
        session, name="big-metal", parents=[metal], min_cpu_count=32
    )
    linux = await bps.create_structure_blueprint(
        session, name="linux-base", foundation_blueprints=[metal, big]
    )
    web = await bps.create_structure_blueprint(session, name="web", parents=[linux])
    create = await bps.create_script(session, name="linux-create", source="begin()\nend")
    await bps.link_script(session, blueprint=linux, role="create", script=create)
    provisioning = {}
    for row in rows:
        net = await network.create_network(session, site=row, name="prov")
        block = await network.create_address_block(
            session,
            site=row,
            name="prov",
            subnet=f"10.{10 + row.id % 200}.0.0/24",
            gateway_offset=1,
        )
        await network.link_address_block(session, network=net, block=block)
        provisioning[row.id] = (net, block)
    for index in range(50):
        row = rows[index % 2]
        net, block = provisioning[row.id]
        foundation = await building.create_foundation(
            session,
            locator=f"r{index % 2}-u{index:02d}",
            site=row,
            blueprint=big if index % 10 == 0 else metal,
            type="manual" if index % 3 else "simulated",
        )
        for port in range(2):
            await interfaces.add_interface(
                session,
                foundation=foundation,
                physical_location=f"eth{port}",
                mac=f"52:54:00:00:{index:02x}:{port:02x}",
                is_provisioning=port == 0,
                network=net,
            )
        if index < 40:
            structure = await building.create_structure(
                session,
                hostname=f"web{index:02d}",
                site=row,
                blueprint=web,
                foundation=foundation,
            )
            await addresses.create_address(
                session, block=block, structure=structure, interface_name="eth0", is_primary=True
            )

    async def count(model: type) -> int:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()

    assert await count(Foundation) == 50
    assert await count(RealNetworkInterface) == 100
    assert await count(Structure) == 40
    assert await count(Address) == 40
    chain = await sites.site_chain(session, rows[1])
    assert [s.name for s in chain] == ["world", "eu", "dc1-row1"]
    script = await bps.find_script(session, web, "create")
    assert script is not None
    assert script.name == "linux-create"
    by_type = dict(
        (
            await session.execute(select(Foundation.type, func.count()).group_by(Foundation.type))
        ).all()
    )
    assert by_type == {"manual": 33, "simulated": 17}
    usage = await addresses.block_usage(session, provisioning[rows[0].id][1])
    assert (usage.static, usage.reserved, usage.free) == (20, 1, 233)


async def test_rows_by_id_name_the_field(session: AsyncSession) -> None:
    for lookup, field in (
        (inventory.get_network_by_id, "network"),
        (inventory.get_address_block_by_id, "address_block"),
        (inventory.get_address_by_id, "id"),
        (inventory.get_user_by_id, "id"),
    ):
        with pytest.raises(NotFound) as info:
            await lookup(session, 999999)
        assert info.value.field == field
        assert "999999 does not exist" in info.value.message


async def test_find_structure_matches_every_part_given(session: AsyncSession) -> None:
    site, _foundation, structure = await make_stack(session)
    assert await inventory.find_structure(session, id=structure.id, site=None, hostname=None)
    found = await inventory.find_structure(
        session, id=None, site=site.name, hostname=structure.hostname
    )
    assert found is structure
    wrong = await inventory.find_structure(
        session, id=structure.id, site=None, hostname="somebody-else"
    )
    assert wrong is None


async def test_counts_are_grouped_in_sql(session: AsyncSession) -> None:
    site = await make_site(session, "counted")
    blueprint = await make_foundation_blueprint(session)
    for locator, type_ in (("c-1", "manual"), ("c-2", "manual"), ("c-3", "simulated")):
        await make_foundation(session, site, blueprint, locator=locator, type=type_)
    groups = await inventory.count_foundations(session, ["type", "state"], None)
    assert [(g.values, g.count) for g in groups] == [
        ({"type": "manual", "state": "planned"}, 2),
        ({"type": "simulated", "state": "planned"}, 1),
    ]
    by_site = await inventory.count_foundations(session, ["site", "site"], None)
    assert [(g.values, g.count) for g in by_site] == [({"site": "counted"}, 3)]
