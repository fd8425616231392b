"""The guard around every change that makes a DNS name (``services.dns_guard``): the paths
GraphQL tests do not reach (zone name servers changed, structures renamed, blocks moved),
what it lets through (older problems, incomplete new zones), and that a refusal leaves
nothing behind."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import Address, AddressBlock, Site, Structure, Zone
from contractor.services import addresses, building, directory, dns, network
from contractor.services.dns_guard import zone_problems
from tests import factories


class _World:
    """Zone ``example`` (name server ns1.example, with its address) used by site dc1."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(self) -> _World:
        self.zone = await directory.create_zone(
            self.session, name="example", nameservers=["ns1.example"]
        )
        self.site = await factories.make_site(self.session, zone=self.zone)
        self.block = await factories.make_block(self.session, self.site, "10.9.0.0/24")
        self.fbp = await factories.make_foundation_blueprint(self.session)
        self.sbp = await factories.make_structure_blueprint(
            self.session, foundation_blueprints=[self.fbp]
        )
        await self.host("ns1", 2)
        return self

    async def host(self, hostname: str, offset: int | None, site: Site | None = None) -> Structure:
        site = site or self.site
        foundation = await factories.make_foundation(self.session, site, self.fbp)
        structure = await factories.make_structure(
            self.session, site, foundation, self.sbp, hostname
        )
        if offset is not None:
            block = self.block if site is self.site else await _first_block(self.session, site)
            await addresses.create_address(
                self.session,
                structure=structure,
                block=block,
                offset=offset,
                interface_name="eth0",
                is_primary=True,
            )
        return structure


async def _first_block(session: AsyncSession, site: Site) -> AddressBlock:
    query = select(AddressBlock).where(AddressBlock.site_id == site.id).limit(1)
    return (await session.execute(query)).scalar_one()


async def _problems(session: AsyncSession) -> dict[str, tuple[str, ...]]:
    """Why the export would refuse each zone (the guard's and the renderer's checks)."""
    return {zone.name: tuple(zone_problems(zone)) for zone in await dns.build_zones(session)}


async def test_name_servers_without_glue_are_refused(session: AsyncSession) -> None:
    world = await _World(session).start()
    lab = await directory.create_zone(session, name="lab", parent=world.zone)
    lab_site = await factories.make_site(session, zone=lab)
    await factories.make_block(session, lab_site, "10.8.0.0/24")
    with pytest.raises(
        Conflict, match=r"ns1\.lab\.example\. \(NS of lab\.example\.\) .* glue"
    ) as e:
        await directory.update_zone(session, lab, nameservers=["ns1.lab.example"])
    assert e.value.field == "nameservers"
    await session.refresh(lab)
    assert lab.nameservers == []
    # With the name server's address in place first, the delegation gets its glue.
    await world.host("ns1", 3, site=lab_site)
    await directory.update_zone(session, lab, nameservers=["ns1.lab.example"])
    zones = {zone.name: zone for zone in await dns.build_zones(session)}
    assert zones["example"].data is not None
    assert ("ns1.lab.example.", "A", "10.8.0.3") in {
        (r.name, r.type, r.data) for r in zones["example"].data.records
    }


async def test_renaming_a_cname_target_is_refused(session: AsyncSession) -> None:
    world = await _World(session).start()
    web = await world.host("web1", 10)
    await directory.create_entry(session, zone=world.zone, type="CNAME", name="www", target="web1")
    with pytest.raises(Conflict, match=r"www\.example\. CNAME web1\.example\.: no such") as e:
        await building.update_structure(session, web, hostname="web9")
    assert e.value.field == "hostname"
    await session.refresh(web)
    assert web.hostname == "web1"
    await building.update_structure(session, await world.host("db1", 11), hostname="db2")


async def test_moving_a_block_onto_another_sites_address_is_refused(
    session: AsyncSession,
) -> None:
    world = await _World(session).start()
    other = await factories.make_site(session, zone=world.zone)
    moved = await factories.make_block(session, other, "10.7.0.0/24")
    await world.host("app1", 5)  # 10.9.0.5
    await world.host("app2", 5, site=other)  # 10.7.0.5
    with pytest.raises(Conflict, match=r"5\.0\.9\.10\.in-addr\.arpa\. would name two hosts") as e:
        await network.update_address_block(session, moved, subnet="10.9.0.0/24")
    assert e.value.field == "subnet"
    assert "PTR app1.example. and PTR app2.example." in str(e.value)
    await session.refresh(moved)
    assert moved.cidr == "10.7.0.0/24"
    await network.update_address_block(session, moved, subnet="10.6.0.0/24")


async def test_older_problems_do_not_block_other_changes(session: AsyncSession) -> None:
    """A clash stored before these checks keeps the zone invalid, but changes that do not
    add to it still go through (and the clash is still reported)."""
    world = await _World(session).start()
    web = await world.host("web1", 10)
    for offset, interface in [(11, "eth_1"), (12, "eth-1")]:
        session.add(
            Address(
                structure_id=web.id,
                address_block_id=world.block.id,
                offset=offset,
                interface_name=interface,
                alias_index=0,
                ip_version=4,
            )
        )
    await session.flush()
    (clash,) = (await _problems(session))["example"]
    await world.host("web2", 20)
    assert (await _problems(session))["example"] == (clash,)
    # ... a new problem elsewhere is still refused ...
    other = await directory.create_zone(session, name="other", nameservers=["ns1.example"])
    with pytest.raises(Conflict, match="no such name in zone 'other'"):
        await directory.create_entry(session, zone=other, type="CNAME", name="www", target="no")
    # ... and removing one of the clashing addresses makes the zone valid again.
    stored = select(Address).where(Address.structure_id == web.id, Address.offset == 12)
    await addresses.delete_address(session, (await session.execute(stored)).scalar_one())
    assert (await _problems(session))["example"] == ()


async def test_a_new_zone_may_be_incomplete_but_not_wrong(session: AsyncSession) -> None:
    """A new zone whose name server has no address yet is accepted (and reported until the
    host exists); what it would answer wrongly is refused all the same."""
    zone = await directory.create_zone(session, name="fresh", nameservers=["ns1.fresh"])
    (problem,) = (await _problems(session))["fresh"]
    assert "name server ns1.fresh. (NS of fresh.) is inside the zone but has no A" in problem
    with pytest.raises(Conflict, match=r"www\.fresh\. CNAME web\.fresh\.: no such name"):
        await directory.create_entry(session, zone=zone, type="CNAME", name="www", target="web")
    assert await directory.list_entries(session, zone) == []


async def test_a_refused_change_is_undone_for_a_caller_that_goes_on(
    session: AsyncSession,
) -> None:
    """The guard's savepoint: after a refusal the session holds none of the change."""
    world = await _World(session).start()
    web = await world.host("web1", None)
    await addresses.create_address(
        session, structure=web, block=world.block, offset=10, interface_name="eth0"
    )
    await directory.create_entry(session, zone=world.zone, type="CNAME", name="www", target="web1")
    with pytest.raises(Conflict):
        await directory.create_zone(session, name="www", parent=world.zone)
    with pytest.raises(Conflict, match="no such name"):
        await building.delete_structure(session, web)
    assert (await session.execute(select(Structure.id).where(Structure.id == web.id))).first()
    held = select(Address.offset).where(Address.structure_id == web.id)
    assert list((await session.execute(held)).scalars()) == [10]
    assert (await session.execute(select(Zone.name).where(Zone.name == "www"))).first() is None


async def test_a_batch_of_entries_is_checked_once_and_kept_whole(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``create_entries``: every record checked as ``create_entry`` checks it, the zones
    built twice for the whole batch (not twice per entry)."""
    world = await _World(session).start()
    from contractor.services import dns_guard

    builds = 0
    build = dns_guard.build_zones  # type: ignore[attr-defined]

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal builds
        builds += 1
        return await build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dns_guard, "build_zones", counted)
    records: list[directory.Record] = [
        {"type": "TXT", "name": f"t{index}", "text": f"value {index}"} for index in range(30)
    ]
    made = await directory.create_entries(session, zone=world.zone, records=records)
    assert [entry.name for entry in made] == [f"t{index}" for index in range(30)]
    assert builds == 2
    [zone] = [z for z in await dns.publish_zones(session) if z.name == "example"]
    assert 't29 3600 IN TXT "value 29"' in (dns.served_text(zone) or "")


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ({"type": "TXT", "name": "a", "text": "again"}, "records[2].name", "already exists"),
        ({"type": "BOGUS", "name": "x"}, "records[2].type", "is not one of"),
        ({"type": "CNAME", "name": "c", "target": "nowhere"}, "records", "no such name"),
    ],
)
async def test_a_refused_record_names_its_place_and_nothing_of_the_batch_is_kept(
    session: AsyncSession, bad: directory.Record, field: str, message: str
) -> None:
    world = await _World(session).start()
    records: list[directory.Record] = [
        {"type": "TXT", "name": "a", "text": "again"},
        {"type": "TXT", "name": "b", "text": "two"},
        bad,
    ]
    with pytest.raises(Conflict if "BOGUS" not in str(bad) else InvalidInput) as error:
        await directory.create_entries(session, zone=world.zone, records=records)
    assert error.value.field == field
    assert message in error.value.message
    if field != "records":
        assert error.value.message.startswith("records[2]: ")
    assert await directory.list_entries(session, world.zone) == []
