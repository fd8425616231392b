"""A publish after some changes builds only the zones the events since the last publish
touched (``services.dns_touched``), and its answer is the one a build of every zone gives:
zone by zone the same content, problems and text, serials that move exactly when the
content does."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import ContractorError
from contractor.models import Address, EventHorizon, Site, Structure, utcnow
from contractor.models.directory import Entry, PublishedZoneList
from contractor.services import addresses, building, directory, dns, network
from contractor.services import site as site_service
from contractor.services.dns import DnsZone
from contractor.services.dns_touched import touched_since
from contractor.services.dns_zones import build_zones
from contractor.services.events import latest_cursor
from tests.bindgen.inventory import Lab, build_lab
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_structure,
    make_structure_blueprint,
)


def by_name(zones: list[DnsZone]) -> dict[str, DnsZone]:
    return {zone.name: zone for zone in zones}


async def publish(session: AsyncSession) -> dict[str, DnsZone]:
    zones = by_name(await dns.publish_zones(session))
    await session.commit()
    return zones


async def check_parity(
    session: AsyncSession, before: dict[str, DnsZone], after: dict[str, DnsZone]
) -> None:
    """``after`` (a publish following ``before``) is what a build of every zone makes:
    same zones, contents, problems and texts; a serial moved only for a changed content."""
    full = by_name(await build_zones(session))
    assert list(after) == list(full)
    for name, zone in after.items():
        want = full[name]
        assert (zone.kind, zone.content_hash, zone.details) == (
            want.kind,
            want.content_hash,
            want.details,
        ), name
        last = before.get(name)
        if zone.valid:
            assert zone.serial is not None
            if last is not None and last.serial is not None:
                same = last.published_hash == zone.content_hash or (
                    last.published_hash is None and last.content_hash == zone.content_hash
                )
                assert (zone.serial == last.serial) is same, name
                assert zone.serial >= last.serial, name
                assert zone.changed is not same, name
            text = dns.zone_text(
                replace(want, serial=zone.serial, published_hash=zone.content_hash)
            )
            assert dns.served_text(zone) == text, name
        elif last is not None:  # an invalid zone keeps its last good version
            assert zone.serial == last.serial, name
            assert dns.served_text(zone) == dns.served_text(last), name


class Changes:
    """Random changes of every kind, through the services (as users make them)."""

    def __init__(self, session: AsyncSession, lab: Lab, seed: int) -> None:
        self.session = session
        self.lab = lab
        self.random = random.Random(seed)
        self.count = 0
        self.sites: list[Site] = []  # empty sites made here (to delete again)

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    async def structures(self) -> list[Structure]:
        query = select(Structure).order_by(Structure.id)
        return list((await self.session.execute(query)).scalars())

    async def held(self) -> list[Address]:
        query = select(Address).where(Address.address_block_id.is_not(None)).order_by(Address.id)
        return list((await self.session.execute(query)).scalars())

    def blocks_of(self, structure: Structure) -> list[str]:
        return ["v4", "v6"] if structure.site_id == self.lab.dc1.id else ["wide", "small"]

    async def add_address(self) -> None:
        structure = self.random.choice(await self.structures())
        block = self.lab.blocks[self.random.choice(self.blocks_of(structure))]
        await addresses.create_address(
            self.session,
            structure=structure,
            block=block,
            interface_name=self.name("e"),
            offset=self.random.randrange(30, 60),
            is_primary=False,
        )

    async def move_address(self) -> None:
        held = await self.held()
        address = self.random.choice(held)
        taken = {a.offset for a in held if a.address_block_id == address.address_block_id}
        address.offset = self.random.choice([o for o in range(30, 60) if o not in taken])
        await self.session.flush()

    async def delete_address(self) -> None:
        await addresses.delete_address(self.session, self.random.choice(await self.held()))

    async def rename_host(self) -> None:
        structure = self.random.choice(await self.structures())
        await building.update_structure(self.session, structure, hostname=self.name("h"))

    async def add_host(self) -> None:
        site = self.random.choice([self.lab.dc1, self.lab.dc2])
        fbp = await make_foundation_blueprint(self.session)
        sbp = await make_structure_blueprint(self.session, foundation_blueprints=[fbp])
        structure = await make_structure(
            self.session,
            site,
            await make_foundation(self.session, site, fbp),
            sbp,
            hostname=self.name("n"),
        )
        block = self.lab.blocks[self.random.choice(self.blocks_of(structure))]
        await addresses.create_address(
            self.session, structure=structure, block=block, interface_name="eth0", is_primary=True
        )

    async def delete_host(self) -> None:
        structure = self.random.choice(await self.structures())
        await building.delete_structure(self.session, structure)

    async def entry(self) -> None:
        zone = self.random.choice([self.lab.example, self.lab.lab])
        entries = list((await self.session.execute(select(Entry).order_by(Entry.id))).scalars())
        if entries and self.random.random() < 0.4:
            await directory.delete_entry(self.session, self.random.choice(entries))
        else:
            name = self.name("t")
            await directory.create_entry(self.session, zone=zone, type="TXT", name=name, text=name)

    async def zone_setting(self) -> None:
        zone = self.random.choice([self.lab.example, self.lab.lab])
        await directory.update_zone(self.session, zone, ttl=self.random.randrange(300, 9000))

    async def site(self) -> None:
        if self.sites and self.random.random() < 0.5:
            await site_service.delete_site(self.session, self.sites.pop())
        else:
            made = await site_service.create_site(
                self.session, name=self.name("s"), zone=self.lab.example
            )
            self.sites.append(made)

    async def block(self) -> None:
        await network.update_address_block(
            self.session, self.lab.blocks["small"], subnet=f"192.0.2.{self.random.choice((0, 64))}"
        )

    def kinds(self) -> list[tuple[Callable[[], Awaitable[None]], int]]:
        """The changes ``apply`` draws from, with their weights."""
        return [
            (self.add_address, 4),
            (self.move_address, 4),
            (self.delete_address, 2),
            (self.rename_host, 3),
            (self.add_host, 2),
            (self.delete_host, 1),
            (self.entry, 2),
            (self.zone_setting, 1),
            (self.site, 1),
            (self.block, 1),
        ]

    async def apply(self) -> str:
        """One random change, committed (refused ones change nothing: another is tried)."""
        kinds = self.kinds()
        while True:
            (change,) = self.random.choices([k for k, _ in kinds], [w for _, w in kinds])
            try:
                async with self.session.begin_nested():
                    await change()
            except ContractorError:
                continue
            await self.session.commit()
            return change.__name__


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_a_publish_after_random_changes_equals_a_build_of_every_zone(
    session: AsyncSession, seed: int
) -> None:
    lab = await build_lab(session)
    await session.commit()
    changes = Changes(session, lab, seed)
    before = await publish(session)
    incremental = 0
    done: list[str] = []
    for _ in range(24):
        for _ in range(changes.random.choice((1, 1, 2, 3))):
            done.append(await changes.apply())
        after = await publish(session)
        await check_parity(session, before, after)
        incremental += any(zone.data is None for zone in after.values())
        before = after
    assert incremental >= 3, done  # most changes are published without a full build
    again = await publish(session)
    assert all(zone.data is None for zone in again.values())  # and then nothing changed
    await check_parity(session, after, again)


async def test_only_the_touched_zones_are_built(session: AsyncSession) -> None:
    lab = await build_lab(session)
    await session.commit()
    first = await publish(session)
    nopri = lab.structures["nopri.dc1"]
    (address,) = (
        await session.execute(select(Address).where(Address.structure_id == nopri.id))
    ).scalars()
    address.offset = 40
    await session.flush()  # (as the services do: the outbox notes changes at a flush)
    await session.commit()
    after = await publish(session)
    built = sorted(name for name, zone in after.items() if zone.data is not None)
    # its forward zone, the zone that takes glue from it (lab's name server is in lab and
    # example delegates to it, and the reverse zone of its block
    assert built == ["0.0.10.in-addr.arpa", "example", "lab.example"]
    assert after["example"].changed
    assert after["0.0.10.in-addr.arpa"].changed
    assert not after["lab.example"].changed
    assert after["lab.example"].serial == first["lab.example"].serial
    await check_parity(session, first, after)


async def test_glue_from_another_zone_follows_its_host(session: AsyncSession) -> None:
    """lab's name server is a host in lab; example delegates to lab and holds its glue. Its
    address moved: example changes with lab, though no host of example did."""
    lab = await build_lab(session)
    await session.commit()
    first = await publish(session)
    ns1 = lab.structures["ns1.dc2"]
    (address,) = (
        await session.execute(select(Address).where(Address.structure_id == ns1.id))
    ).scalars()
    address.offset = 9  # 192.0.2.73
    await session.flush()
    await session.commit()
    after = await publish(session)
    example = after["example"].data
    assert example is not None
    assert ("ns1.lab.example.", "A", "192.0.2.73") in {
        (r.name, r.type, r.data) for r in example.records
    }
    assert after["example"].changed
    assert after["example"].serial != first["example"].serial
    assert after["lab.example"].changed
    assert after["64-26.2.0.192.in-addr.arpa"].changed
    await check_parity(session, first, after)


async def _cursor(session: AsyncSession) -> int:
    return int((await session.execute(select(PublishedZoneList.cursor))).scalar_one())


async def test_changes_the_events_cannot_follow_build_every_zone(session: AsyncSession) -> None:
    lab = await build_lab(session)
    await session.commit()
    await publish(session)

    async def touched() -> object:
        return await touched_since(session, await _cursor(session), await latest_cursor(session))

    web1 = lab.structures["web1.dc1"]
    eth0 = (
        await session.execute(
            select(Address).where(Address.structure_id == web1.id, Address.offset == 10)
        )
    ).scalar_one()
    eth0.offset = 12  # the target of db1's pointer address: its name follows
    await session.flush()
    await session.commit()
    assert await touched() is None
    after = await publish(session)
    assert all(zone.data is not None for zone in after.values())
    assert ("vip.db1", "A", "10.0.0.12") in {
        (r.name, r.type, r.data)
        for r in (after["lab.example"].data.records if after["lab.example"].data else ())
    }

    cases = {
        "zone setting": directory.update_zone(session, lab.example, ttl=99),
        "structure deleted": building.delete_structure(session, lab.structures["nopri.dc1"]),
    }
    for label, change in cases.items():
        await change
        await session.commit()
        assert await touched() is None, label
        zones = await publish(session)
        assert all(zone.data is not None for zone in zones.values()), label

    # a precise change
    db1 = lab.structures["db1.dc2"]
    await building.update_structure(session, db1, hostname="db9")
    await session.commit()
    found = await touched()
    assert found is not None
    assert found.zones == frozenset({lab.lab.id})  # type: ignore[attr-defined]
    assert found.blocks == frozenset(  # type: ignore[attr-defined]
        {lab.blocks["wide"].id, lab.blocks["small"].id}
    )
    await publish(session)

    # events pruned before this publish saw them
    await building.update_structure(session, db1, hostname="db8")
    await session.commit()
    session.add(EventHorizon(cursor=await latest_cursor(session), pruned_at=utcnow()))
    await session.commit()
    assert await touched() is None
