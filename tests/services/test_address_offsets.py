"""Offsets of any size: IPv6 blocks hold offsets past 64 bits, stored exactly and searched
for the lowest free one in SQL, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import AddressBlock, BaseAddress, Event, Structure
from contractor.models.offsets import next_offset, offset_literal
from contractor.services import addresses, network
from contractor.services.events import latest_cursor
from tests.factories import make_block, make_site, make_stack

TOP_64 = 2**64 - 2  # the last usable offset of a /64 (its last address is left out)
TOP_48 = 2**80 - 2


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        9,
        10**18 - 1,  # the carry out of the last 18 digits (SQLite works in 18-digit pieces)
        10**18,
        2**62 - 2,
        2**62 - 1,  # SQLite keeps offsets below 2**62 as integers, the others as digits
        2**62,
        2**63 - 1,  # SQLite's largest integer
        2**63,
        10**36 - 1,  # the carry out of the middle 18 digits
        2**64 - 1,
        2**80 - 1,
        2**128 - 1,
    ],
)
async def test_next_offset_is_exact(session: AsyncSession, value: int) -> None:
    query = select(next_offset(offset_literal(value)), offset_literal(value))
    following, same = (await session.execute(query)).one()
    assert (following, same) == (value + 1, value)


async def test_successors_match_what_is_stored(session: AsyncSession) -> None:
    """The lowest-free search finds a taken successor by equality with the stored offset, also
    where SQLite's integers give way to digit strings and where a carry crosses pieces."""
    site = await make_site(session)
    block = await make_block(session, site, "2001:db8::/48")
    pairs = [(2**62 - 1, 2**62), (10**18 - 1, 10**18), (2**64 - 1, 2**64), (10**20, 10**20 + 2)]
    for first, second in pairs:
        for offset in (first, second):
            await addresses.create_reserved_address(session, block=block, offset=offset, reason="r")
    taken, successor = select(BaseAddress.offset).subquery(), select(BaseAddress.offset).subquery()
    query = select(taken.c.offset).where(
        select(successor.c.offset).where(successor.c.offset == next_offset(taken.c.offset)).exists()
    )
    followed = sorted((await session.execute(query)).scalars())
    assert followed == sorted(first for first, second in pairs if second == first + 1)


async def _allocate(
    session: AsyncSession,
    block: AddressBlock,
    structure: Structure,
    n: int,
    offset: int | None = None,
) -> int | None:
    """Interface ``eth<n>`` of ``structure`` gets an address of ``block``."""
    made = await addresses.create_address(
        session, block=block, structure=structure, interface_name=f"eth{n}", offset=offset
    )
    return made.offset


async def _stored(session: AsyncSession, block: AddressBlock) -> list[int | None]:
    """The block's offsets as the database orders them."""
    query = (
        select(BaseAddress.offset)
        .where(BaseAddress.address_block_id == block.id)
        .order_by(BaseAddress.offset)
    )
    return list((await session.execute(query)).scalars())


@pytest.mark.parametrize(("subnet", "top"), [("2001:db8::/64", TOP_64), ("2001:db8::/48", TOP_48)])
async def test_lowest_free_near_the_top_of_large_blocks(
    session: AsyncSession, subnet: str, top: int
) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, subnet, gateway_offset=top)
    assert network.block_bounds(block) == (1, top)
    for offset in (top - 1, top - 2, 2**64, 2**63, 2**63 - 1, 2**62, 2**62 - 1, 1):
        if offset <= top:
            await addresses.create_reserved_address(
                session, block=block, offset=offset, reason=f"r{offset}"
            )
    got = [await _allocate(session, block, structure, alias) for alias in range(3)]
    assert got == [2, 3, 4]
    beyond_64 = [2**64] if top > 2**64 else []
    assert await _stored(session, block) == [
        1,
        2,
        3,
        4,
        2**62 - 1,
        2**62,
        2**63 - 1,
        2**63,
        *beyond_64,
        top - 2,
        top - 1,
    ]
    found = await addresses.lookup_address(
        session, str(ipaddress.ip_network(subnet).network_address + top - 1)
    )
    assert (found.offset, found.reason) == (top - 1, f"r{top - 1}")
    usage = await addresses.block_usage(session, block)
    assert (usage.total, usage.free) == (top, top - len(await _stored(session, block)) - 1)


@pytest.mark.parametrize(
    ("subnet", "offsets"),
    [
        ("2001:db8::/64", [2**63, 2**63 + 1, 2**64 - 3, TOP_64]),
        ("2001:db8::/48", [2**64 - 1, 2**64, 2**79, TOP_48]),
    ],
)
async def test_explicit_offsets_beyond_64_bits(
    session: AsyncSession, subnet: str, offsets: list[int]
) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, subnet)
    got = [await _allocate(session, block, structure, i, o) for i, o in enumerate(offsets)]
    assert got == offsets
    assert await _stored(session, block) == offsets
    first = ipaddress.ip_network(subnet).network_address
    assert [str(network.ip_at(block, o)) for o in got][-1] == str(first + offsets[-1])
    with pytest.raises(Conflict, match=rf"\(offset {offsets[-1]} of block .*already allocated"):
        await _allocate(session, block, structure, 9, offsets[-1])
    assert await _allocate(session, block, structure, 10) == 1


@pytest.mark.parametrize(
    ("subnet", "offset"),
    [
        ("2001:db8::/64", 2**64 - 1),  # the block's last address, left out as on IPv4
        ("2001:db8::/64", 2**64),
        ("2001:db8::/48", 2**80 - 1),
        ("2001:db8::/48", 2**128),
        ("2001:db8::/64", -1),
        ("2001:db8::/64", 0),
    ],
)
async def test_offsets_outside_the_block_are_refused(
    session: AsyncSession, subnet: str, offset: int
) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, subnet)
    with pytest.raises(InvalidInput, match=rf"offset {offset} is outside the usable offsets"):
        await _allocate(session, block, structure, 0, offset)
    with pytest.raises(InvalidInput, match="outside the usable offsets") as refused:
        await addresses.create_reserved_address(session, block=block, offset=offset, reason="x")
    assert refused.value.field == "offset"
    with pytest.raises(InvalidInput, match="outside the usable offsets") as refused:
        await network.create_address_block(
            session, site=site, name="gw", subnet="2001:db8:1::/64", gateway_offset=2**64 - 1
        )
    assert refused.value.field == "gateway_offset"
    assert await _stored(session, block) == []


async def test_a_block_shrinks_only_over_its_offsets(session: AsyncSession) -> None:
    site, _, structure = await make_stack(session)
    block = await make_block(session, site, "2001:db8::/48", gateway_offset=2**70)
    await _allocate(session, block, structure, 0, TOP_64)
    await addresses.create_reserved_address(session, block=block, offset=2**64, reason="x")
    with pytest.raises(Conflict, match=r"1 addresses of block .* would fall outside .*/64"):
        await network.update_address_block(session, block, subnet="2001:db8::/64")
    (beyond,) = await session.execute(select(BaseAddress).where(BaseAddress.offset == 2**64))
    await addresses.delete_address(session, beyond[0])
    await network.update_address_block(session, block, gateway_offset=TOP_64 - 1)
    await network.update_address_block(session, block, subnet="2001:db8::/64")
    assert (block.cidr, block.gateway_offset) == ("2001:db8::/64", TOP_64 - 1)
    with pytest.raises(Conflict, match=r"1 addresses of block .* would fall outside .*/65"):
        await network.update_address_block(session, block, subnet="2001:db8::/65")
    assert await _stored(session, block) == [TOP_64]
    assert await _allocate(session, block, structure, 1) == 1


async def test_event_payloads_carry_offsets_exactly(session: AsyncSession) -> None:
    """Past 2**53 - 1 a JSON number is not exact in every reader: such offsets are strings."""
    site = await make_site(session)
    small = await make_block(session, site, "192.0.2.0/24", gateway_offset=1)
    large = await make_block(session, site, "2001:db8::/64", gateway_offset=TOP_64)
    await session.commit()
    start = await latest_cursor(session)
    for block, offset in [(small, 254), (large, 2**53 - 1), (large, 2**53), (large, TOP_64 - 1)]:
        await addresses.create_reserved_address(session, block=block, offset=offset, reason="r")
    await session.commit()
    rows = await session.execute(select(Event).where(Event.id > start).order_by(Event.id))
    assert [e.payload["offset"] for e in rows.scalars()] == [
        254,
        2**53 - 1,
        str(2**53),
        str(TOP_64 - 1),
    ]
    created = await session.execute(
        select(Event.payload).where(Event.object_type == "address_block").order_by(Event.id)
    )
    assert [p["gateway_offset"] for p in created.scalars()][-2:] == [1, str(TOP_64)]
