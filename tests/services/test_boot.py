"""Boot data (reservations, DHCP pools, versions, pages) and boot decisions, on PostgreSQL
and SQLite."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.db import create_engine, create_session_factory, transaction
from contractor.errors import Conflict, InUse, InvalidInput, Pruned
from contractor.models import (
    Address,
    AddressBlock,
    DhcpPool,
    Event,
    Foundation,
    Site,
    Structure,
    StructureBluePrint,
    utcnow,
)
from contractor.services import addresses, boot, building, directory, interfaces, jobs, network
from contractor.services import blueprint as bp_service
from contractor.services import site as site_service
from contractor.services.events import latest_cursor
from contractor.settings import Settings
from tests.factories import (
    make_block,
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
    unique,
)

SETTINGS = Settings()


@dataclass
class Machine:
    foundation: Foundation
    structure: Structure
    interface_id: int


@dataclass
class World:
    site: Site
    block: AddressBlock
    web: Machine
    db: Machine


async def _machine(
    session: AsyncSession, site: Site, block: AddressBlock, mac: str, offset: int
) -> Machine:
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    foundation = await make_foundation(session, site, fbp)
    interface = await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", mac=mac, is_provisioning=True
    )
    structure = await make_structure(session, site, foundation, sbp)
    await addresses.create_address(
        session,
        structure=structure,
        block=block,
        offset=offset,
        interface_name="eth0",
        is_primary=True,
    )
    return Machine(foundation, structure, interface.id)


@pytest.fixture
async def world(session: AsyncSession) -> World:
    site = await make_site(
        session, config_values={"dns_servers": ["10.9.0.53"], "dns_search": ["example.test"]}
    )
    block = await make_block(session, site, "10.9.0.0/24", gateway_offset=1)
    web = await _machine(session, site, block, "52:54:00:00:00:01", 10)
    db = await _machine(session, site, block, "52:54:00:00:00:02", 11)
    return World(site, block, web, db)


async def _refresh(session: AsyncSession, site: Site) -> int:
    return (await boot.refresh(session, site, settings=SETTINGS)).version


async def _snapshot(session: AsyncSession, site: Site, **kwargs: object) -> boot.BootPage:
    state = await boot.refresh(session, site, settings=SETTINGS)
    return await boot.snapshot_page(
        session, site, state, limit=kwargs.pop("limit", 100), version=state.version, **kwargs
    )  # type: ignore[arg-type]


async def _changes(session: AsyncSession, site: Site, since: int) -> boot.BootPage:
    state = await boot.refresh(session, site, settings=SETTINGS)
    return await boot.changes_page(session, site, state, since=since, limit=100)


async def _pool_count(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(DhcpPool))).scalar_one()


# -- reservations and pools in the boot data ----------------------------------------------


async def test_a_snapshot_holds_each_reservation_and_pool(
    session: AsyncSession, world: World
) -> None:
    pool = await boot.create_dhcp_pool(
        session, block=world.block, first_offset=100, last_offset=199, description="discovery"
    )
    page = await _snapshot(session, world.site)
    assert page.snapshot
    assert page.cursor is None
    assert page.removed == []
    by_mac = {r["mac"]: r for r in page.reservations}
    web = by_mac["52:54:00:00:00:01"]
    assert web == {
        "id": f"reservation:{world.web.structure.id}",
        "mac": "52:54:00:00:00:01",
        "address": "10.9.0.10",
        "block": world.block.name,
        "subnet": "10.9.0.0/24",
        "prefix": 24,
        "netmask": "255.255.255.0",
        "gateway": "10.9.0.1",
        "hostname": world.web.structure.hostname,
        "config_uuid": world.web.structure.config_uuid,
        "boot_file": None,
        "boot_script": f"/boot/{world.web.structure.config_uuid}",
        "domain": None,
        "dns_servers": ["10.9.0.53"],
        "dns_search": ["example.test"],
    }
    assert by_mac["52:54:00:00:00:02"]["address"] == "10.9.0.11"
    (served,) = page.pools
    assert served["id"] == f"pool:{pool.id}"
    assert (served["start"], served["end"], served["gateway"]) == (
        "10.9.0.100",
        "10.9.0.199",
        "10.9.0.1",
    )
    assert served["description"] == "discovery"


async def test_changes_since_a_version_name_what_changed_and_what_went(
    session: AsyncSession, world: World
) -> None:
    first = await _refresh(session, world.site)
    assert (await _changes(session, world.site, first)).reservations == []
    # a new MAC on web, db's address deleted: one upsert, one removal, one new version
    web_interface = await interfaces.foundation_interfaces(session, world.web.foundation)
    await interfaces.update_interface(session, web_interface[0], mac="52:54:00:00:00:aa")
    (db_address,) = (
        await session.execute(select(Address).where(Address.structure_id == world.db.structure.id))
    ).scalars()
    await addresses.delete_address(session, db_address)
    page = await _changes(session, world.site, first)
    assert page.version == first + 1
    assert page.cursor is None
    assert not page.snapshot
    assert [r["mac"] for r in page.reservations] == ["52:54:00:00:00:aa"]
    assert page.removed == [f"reservation:{world.db.structure.id}"]
    # nothing new since then; the snapshot no longer holds db
    assert (await _changes(session, world.site, page.version)).removed == []
    snapshot = await _snapshot(session, world.site)
    assert [r["mac"] for r in snapshot.reservations] == ["52:54:00:00:00:aa"]


async def test_a_machine_without_mac_or_address_on_its_provisioning_interface_is_not_reserved(
    session: AsyncSession, world: World
) -> None:
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    foundation = await make_foundation(session, world.site, fbp)
    await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", is_provisioning=True
    )
    await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth1", mac="52:54:00:00:00:03"
    )
    structure = await make_structure(session, world.site, foundation, sbp)
    await addresses.create_address(
        session, structure=structure, block=world.block, interface_name="eth1"
    )
    page = await _snapshot(session, world.site)
    assert structure.id not in {int(r["id"].split(":")[1]) for r in page.reservations}
    assert len(page.reservations) == 2


async def test_pages_are_bounded_and_go_on_by_cursor(session: AsyncSession, world: World) -> None:
    await boot.create_dhcp_pool(session, block=world.block, first_offset=50, last_offset=60)
    first = await _snapshot(session, world.site, limit=2)
    assert len(first.reservations) + len(first.pools) == 2
    assert first.cursor is not None
    _, version, after = first.cursor.split(".", 2)
    state = await boot.refresh(session, world.site, settings=SETTINGS)
    rest = await boot.snapshot_page(
        session, world.site, state, after=after, limit=2, version=int(version)
    )
    assert rest.cursor is None
    assert rest.version == first.version
    seen = [e["id"] for e in [*first.reservations, *first.pools, *rest.reservations, *rest.pools]]
    assert len(seen) == len(set(seen)) == 3
    with pytest.raises(InvalidInput, match="limit"):
        await boot.snapshot_page(session, world.site, state, limit=0, version=1)
    with pytest.raises(InvalidInput, match="limit"):
        await boot.changes_page(session, world.site, state, since=0, limit=boot.PAGE_LIMIT + 1)


async def test_changes_page_in_version_order(session: AsyncSession, world: World) -> None:
    start = await _refresh(session, world.site)
    await boot.create_dhcp_pool(session, block=world.block, first_offset=50, last_offset=60)
    await _refresh(session, world.site)
    await boot.create_dhcp_pool(session, block=world.block, first_offset=70, last_offset=80)
    state = await boot.refresh(session, world.site, settings=SETTINGS)
    page = await boot.changes_page(session, world.site, state, since=start, limit=1)
    assert page.cursor is not None
    assert page.version == start
    _, _, version, key = page.cursor.split(".", 3)
    assert int(version) == start + 1
    rest = await boot.changes_page(
        session, world.site, state, since=start, after=(int(version), key), limit=1
    )
    assert rest.cursor is None
    assert rest.version == start + 2
    assert [p["start"] for p in [*page.pools, *rest.pools]] == ["10.9.0.50", "10.9.0.70"]


async def test_a_version_whose_changes_are_not_kept_asks_for_a_snapshot(
    session: AsyncSession, world: World
) -> None:
    version = await _refresh(session, world.site)
    with pytest.raises(Pruned, match="take a snapshot") as refused:
        await _changes(session, world.site, version + 5)
    assert refused.value.field == "since"


async def test_each_site_has_its_own_data(session: AsyncSession, world: World) -> None:
    other = await make_site(session)
    assert (await _snapshot(session, other)).reservations == []
    await _refresh(session, world.site)
    block = await make_block(session, other, "10.10.0.0/24")
    await boot.create_dhcp_pool(session, block=block, first_offset=5, last_offset=6)
    assert (await _changes(session, world.site, await _refresh(session, world.site))).pools == []
    assert len((await _snapshot(session, other)).pools) == 1


async def test_domain_is_the_site_zone(session: AsyncSession, world: World) -> None:
    zone = await directory.create_zone(session, name=unique("zone"))
    await site_service.update_site(session, world.site, zone=zone)
    page = await _snapshot(session, world.site)
    assert {r["domain"] for r in page.reservations} == {zone.name}


# -- refusals: pools against addresses, gateways and pools; addresses against pools ---------


async def test_a_pool_over_an_allocated_address_is_refused_naming_it(
    session: AsyncSession, world: World
) -> None:
    with pytest.raises(Conflict) as refused:
        await boot.create_dhcp_pool(session, block=world.block, first_offset=5, last_offset=20)
    message = str(refused.value)
    assert "10.9.0.5-10.9.0.20" in message
    assert world.block.name in message
    assert f"10.9.0.10 (structure {world.web.structure.hostname!r} interface 'eth0')" in message
    assert world.db.structure.hostname in message
    assert await _pool_count(session) == 0


async def test_a_pool_over_a_reserved_address_or_the_gateway_is_refused(
    session: AsyncSession, world: World
) -> None:
    await addresses.create_reserved_address(session, block=world.block, offset=30, reason="printer")
    with pytest.raises(Conflict, match=r"10\.9\.0\.30 \(a reservation \(printer\)\)"):
        await boot.create_dhcp_pool(session, block=world.block, first_offset=25, last_offset=35)
    with pytest.raises(Conflict, match=r"would hold 10\.9\.0\.1, the block's gateway"):
        await boot.create_dhcp_pool(session, block=world.block, first_offset=1, last_offset=5)
    assert await _pool_count(session) == 0


async def test_overlapping_pools_are_refused_naming_both(
    session: AsyncSession, world: World
) -> None:
    pool = await boot.create_dhcp_pool(
        session, block=world.block, first_offset=100, last_offset=150
    )
    with pytest.raises(Conflict) as refused:
        await boot.create_dhcp_pool(session, block=world.block, first_offset=150, last_offset=160)
    assert f"the DHCP pool 10.9.0.150-10.9.0.160 of block {world.block.name!r} overlaps " in str(
        refused.value
    )
    assert f"DHCP pool {pool.id} (10.9.0.100-10.9.0.150" in str(refused.value)
    assert await _pool_count(session) == 1


@pytest.mark.parametrize(
    ("first", "last", "field", "words"),
    [
        (0, 10, "first_offset", "outside the usable offsets 1..254"),
        (200, 255, "last_offset", "outside the usable offsets 1..254"),
        (90, 80, "last_offset", "first_offset 90 is above last_offset 80"),
        ("90", 95, "first_offset", "must be a whole number"),
    ],
)
async def test_a_pool_outside_its_block_or_backwards_is_refused(
    session: AsyncSession, world: World, first: int, last: int, field: str, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words) as refused:
        await boot.create_dhcp_pool(
            session, block=world.block, first_offset=first, last_offset=last
        )
    assert refused.value.field == field
    assert await _pool_count(session) == 0


async def test_an_address_in_a_pool_is_refused_naming_both_and_allocation_skips_pools(
    session: AsyncSession, world: World
) -> None:
    pool = await boot.create_dhcp_pool(session, block=world.block, first_offset=2, last_offset=9)
    message = await _refused_address(session, world.block, world.web.structure, 5)
    assert f"10.9.0.5 (offset 5 of block {world.block.name!r}) is in DHCP pool {pool.id}" in message
    assert f"cannot go to structure {world.web.structure.hostname!r} interface 'eth1'" in message
    with pytest.raises(Conflict, match="is in DHCP pool"):
        await addresses.create_reserved_address(session, block=world.block, offset=9, reason="x")
    # the lowest free offset: 1 is the gateway, 2..9 the pool, 10 and 11 taken
    assert await addresses.lowest_free_offset(session, world.block) == 12


async def _refused_address(
    session: AsyncSession, block: AddressBlock, structure: Structure, offset: int
) -> str:
    """The refusal of an address at ``offset`` for ``structure``'s eth1."""
    with pytest.raises(Conflict) as refused:
        await addresses.create_address(
            session, structure=structure, block=block, offset=offset, interface_name="eth1"
        )
    return str(refused.value)


async def test_a_taken_address_names_both_sides(session: AsyncSession, world: World) -> None:
    message = await _refused_address(session, world.block, world.db.structure, 10)
    assert f"structure {world.web.structure.hostname!r} interface 'eth0'" in message
    assert f"cannot go to structure {world.db.structure.hostname!r} interface 'eth1'" in message


async def test_a_taken_mac_names_both_sides(session: AsyncSession, world: World) -> None:
    fbp = await make_foundation_blueprint(session)
    foundation = await make_foundation(session, world.site, fbp)
    with pytest.raises(Conflict) as refused:
        await interfaces.add_interface(
            session, foundation=foundation, physical_location="eno1", mac="52:54:00:00:00:01"
        )
    message = str(refused.value)
    assert f"already on interface 'eth0' of foundation {world.web.foundation.locator!r}" in message
    assert f"cannot go on interface 'eno1' of foundation {foundation.locator!r}" in message
    assert refused.value.field == "mac"


async def test_blocks_keep_their_pools(session: AsyncSession, world: World) -> None:
    pool = await boot.create_dhcp_pool(
        session, block=world.block, first_offset=200, last_offset=220
    )
    with pytest.raises(Conflict, match=r"1 DHCP pools of block .* would fall outside"):
        await network.update_address_block(session, world.block, subnet="10.9.0.0/25")
    with pytest.raises(Conflict, match=f"is in DHCP pool {pool.id}; a gateway cannot be leased"):
        await network.update_address_block(session, world.block, gateway_offset=210)
    empty = await make_block(session, world.site, "10.11.0.0/24")
    await boot.create_dhcp_pool(session, block=empty, first_offset=2, last_offset=3)
    with pytest.raises(InUse, match=r"1 DHCP pools \(2\)"):
        await network.delete_address_block(session, empty)
    await boot.delete_dhcp_pool(session, pool)
    assert await _pool_count(session) == 1


# -- boot decisions -------------------------------------------------------------------------


async def test_the_boot_decision_follows_state_and_job(session: AsyncSession, world: World) -> None:
    structure = world.web.structure
    decision = await boot.boot_decision(session, structure)
    assert decision.pxe is None
    assert "has no PXE target set" in decision.reason
    pxe = await bp_service.create_pxe(
        session, name=unique("installer"), boot_script="kernel x", template=""
    )
    (interface,) = await interfaces.foundation_interfaces(session, world.web.foundation)
    await interfaces.update_interface(session, interface, pxe=pxe)
    assert await boot.boot_target(session, structure) == pxe
    decision = await boot.boot_decision(session, structure)
    assert decision.pxe == pxe
    assert "is not built yet" in decision.reason
    structure.built_at = utcnow()
    world.web.foundation.located_at = world.web.foundation.built_at = utcnow()
    await session.flush()
    decision = await boot.boot_decision(session, structure)
    assert decision.pxe is None
    assert f"is built and no job of it runs (its PXE target {pxe.name!r} waits)" in decision.reason
    job = await _utility_job(session, structure)
    decision = await boot.boot_decision(session, structure)
    assert decision.pxe == pxe
    assert f"job {job} (" in decision.reason


async def _utility_job(session: AsyncSession, structure: Structure) -> int:
    """An unfinished job on ``structure`` (a utility script of its blueprint)."""
    script = await bp_service.create_script(session, name=unique("rescue"), source="pass\n")
    blueprint = await session.get_one(StructureBluePrint, structure.blueprint_id)
    await bp_service.link_script(session, blueprint=blueprint, role="rescue", script=script)
    job = await jobs.create_job(session, target=structure, script_name="rescue", creator="alice")
    return job.id


async def test_a_structures_boot_file_and_hostname_reach_its_reservation(
    session: AsyncSession, world: World
) -> None:
    version = await _refresh(session, world.site)
    await building.update_structure(
        session, world.web.structure, hostname="web-renamed", config_values={"boot_file": "x.efi"}
    )
    (changed,) = (await _changes(session, world.site, version)).reservations
    assert (changed["hostname"], changed["boot_file"]) == ("web-renamed", "x.efi")


async def test_an_empty_site_with_boot_data_can_be_deleted(session: AsyncSession) -> None:
    site = await make_site(session)
    await _refresh(session, site)
    await site_service.delete_site(session, site)
    assert await session.get(Site, site.id) is None


async def test_concurrent_refreshes_of_a_site_make_one_version(own_pg_url: str) -> None:
    engine = create_engine(Settings(database_url=own_pg_url))
    try:
        writers = create_session_factory(engine, writes=True)
        async with transaction(writers) as session:
            world_site = await make_site(session)
            block = await make_block(session, world_site, "10.12.0.0/24")
            for number in range(20):
                await _machine(
                    session, world_site, block, f"52:54:00:12:00:{number:02x}", 10 + number
                )

        async def refresh() -> int:
            async with transaction(writers) as session:
                site = await session.get_one(Site, world_site.id)
                return await _refresh(session, site)

        versions = await asyncio.gather(*(refresh() for _ in range(4)))
        assert versions == [1, 1, 1, 1]
        async with transaction(writers) as session:
            site = await session.get_one(Site, world_site.id)
            page = await _snapshot(session, site)
            assert len(page.reservations) == 20
            assert page.version == 1
    finally:
        await engine.dispose()


async def test_entries_stay_bounded(session: AsyncSession, world: World) -> None:
    servers = [f"10.9.0.{n}" for n in range(1, 40)]
    await site_service.update_site(
        session, world.site, config_values={"dns_servers": servers, "dns_search": ["a" * 300]}
    )
    (entry, *_) = (await _snapshot(session, world.site)).reservations
    assert entry["dns_servers"] == servers[: boot.LIST_LIMIT]
    assert entry["dns_search"] == ["a" * 253]


async def test_pool_changes_are_events_of_their_blocks_site(
    session: AsyncSession, world: World
) -> None:
    await session.commit()
    start = await latest_cursor(session)
    pool = await boot.create_dhcp_pool(session, block=world.block, first_offset=40, last_offset=49)
    await session.commit()
    await boot.delete_dhcp_pool(session, pool)
    await session.commit()
    rows = (
        await session.execute(select(Event).where(Event.id > start).order_by(Event.id))
    ).scalars()
    assert [(e.kind, e.object_type, e.object_id, e.site_id) for e in rows] == [
        ("created", "dhcp_pool", pool.id, world.site.id),
        ("deleted", "dhcp_pool", pool.id, world.site.id),
    ]
