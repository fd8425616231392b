"""Concurrent allocations on PostgreSQL: committed data, separate connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.models import Address, AddressBlock, Structure
from contractor.services import addresses
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import make_block, make_stack


@pytest.fixture
async def pg_engine() -> AsyncIterator[AsyncEngine]:
    """A database of its own: these tests commit."""
    settings = Settings(database_url=make_pg_database("contractor_concurrency"))
    migrate.upgrade(settings)
    engine = create_engine(settings, pool_size=20, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_concurrent_next_address_never_duplicates(pg_engine: AsyncEngine) -> None:
    sessions = create_session_factory(pg_engine)
    structures = 16
    async with sessions() as session, session.begin():
        site, _, first = await make_stack(session)
        block = await make_block(session, site, "10.20.0.0/24", gateway_offset=1)
        hosts = [first] + [(await make_stack(session))[2] for _ in range(structures - 1)]
        block_id = block.id
        host_ids = [h.id for h in hosts]

    ready = asyncio.Event()

    async def allocate(structure_id: int, rounds: int) -> list[int]:
        got = []
        await ready.wait()
        for index in range(rounds):
            async with sessions() as session, session.begin():
                block = await session.get_one(AddressBlock, block_id)
                structure = await session.get_one(Structure, structure_id)
                address = await addresses.create_address(
                    session,
                    block=block,
                    structure=structure,
                    interface_name="eth0",
                    alias_index=index,
                )
                got.append(address.offset)
        return got

    tasks = [asyncio.create_task(allocate(sid, 5)) for sid in host_ids]
    ready.set()
    results = await asyncio.gather(*tasks)
    offsets = sorted(o for result in results for o in result)
    assert offsets == list(range(2, 2 + structures * 5))  # dense from the lowest, no repeats
    async with sessions() as session:
        stored = (await session.execute(select(Address.offset))).scalars().all()
    assert sorted(stored) == offsets


async def test_allocation_rolls_back_with_its_transaction(pg_engine: AsyncEngine) -> None:
    sessions = create_session_factory(pg_engine)
    async with sessions() as session, session.begin():
        site, _, structure = await make_stack(session)
        block = await make_block(session, site, "10.30.0.0/29")

    async def allocate_then_fail() -> None:
        async with sessions() as session, session.begin():
            await addresses.create_address(
                session, block=block, structure=structure, interface_name="eth0"
            )
            raise RuntimeError("the caller failed after allocating")

    with pytest.raises(RuntimeError):
        await allocate_then_fail()
    async with sessions() as session, session.begin():
        address = await addresses.create_address(
            session, block=block, structure=structure, interface_name="eth0"
        )
    assert address.offset == 1


async def test_concurrent_first_publishes_agree_on_serials(pg_engine: AsyncEngine) -> None:
    """Several processes publishing zones nobody published yet: no unique-name error, one
    serial per zone that every publisher reports."""
    from sqlalchemy import func

    from contractor.models.directory import PublishedZone
    from contractor.services import dns
    from tests.bindgen.inventory import build_lab

    sessions = create_session_factory(pg_engine)
    async with sessions() as session, session.begin():
        await build_lab(session)
    ready = asyncio.Event()

    async def publish() -> dict[str, int | None]:
        await ready.wait()
        async with sessions() as session, session.begin():
            return {zone.name: zone.serial for zone in await dns.publish_zones(session)}

    tasks = [asyncio.create_task(publish()) for _ in range(6)]
    ready.set()
    results = await asyncio.gather(*tasks)
    assert all(result == results[0] for result in results)
    async with sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(PublishedZone))
    assert rows == len(results[0])
