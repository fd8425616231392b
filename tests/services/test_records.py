"""Records: rows read without the ORM hold what the ORM's objects hold, attribute by
attribute, made for the row's own class (polymorphic models by their discriminator, joined
inheritance with the subclass's columns), and equal only to themselves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.plugins import foundation_types
from contractor.services import addresses, batches, interfaces, inventory, paging, records
from contractor.services.config.rows import target_key
from tests.factories import (
    make_block,
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_stack,
)


def _values(row: Any, model: type) -> dict[str, Any]:
    mapper: Any = inspect(model)
    return {attribute.key: getattr(row, attribute.key) for attribute in mapper.column_attrs}


async def test_records_by_hold_the_orm_objects_values(session: AsyncSession) -> None:
    foundation_types()
    _site, _foundation, structure = await make_stack(session)
    await session.flush()
    read = records.reader(models.Structure)
    assert read is not None
    found = await batches.records_by(session, read, models.Structure.id, [structure.id, 999999])
    (record, missing) = found
    assert missing is None
    assert records.is_a(record, models.Structure)
    assert not isinstance(record, models.Structure)
    assert _values(record, models.Structure) == _values(structure, models.Structure)
    assert record.state == structure.state  # the model's properties come along
    assert target_key(record) == target_key(structure) == ("structure", structure.id)


async def test_joined_inheritance_records_hold_their_types_columns(session: AsyncSession) -> None:
    foundation_types()
    site = await make_site(session)
    blueprint = await make_foundation_blueprint(session, foundation_types=["manual", "ipmi"])
    foundation = await make_foundation(session, site, blueprint)
    fields = {"bmc_address": "10.9.9.9", "username": "admin", "password": "secret"}
    ipmi = await make_foundation(session, site, blueprint, type="ipmi", fields=fields)
    await session.flush()
    read = records.reader(models.Foundation)
    assert read is not None
    manual, plugin = await batches.records_by(
        session, read, models.Foundation.id, [foundation.id, ipmi.id]
    )
    assert manual.model is type(foundation)
    assert plugin.model is type(ipmi)
    assert records.is_a(plugin, models.Foundation)
    assert not records.is_a(plugin, type(foundation))
    assert _values(plugin, type(ipmi)) == _values(ipmi, type(ipmi))
    assert _values(manual, type(foundation)) == _values(foundation, type(foundation))
    assert plugin.state == ipmi.state


async def test_polymorphic_records_grouped_in_order(session: AsyncSession) -> None:
    foundation_types()
    site, foundation, structure = await make_stack(session)
    block = await make_block(session, site, subnet="10.77.0.0/24")
    second = await addresses.create_address(
        session, structure=structure, block=block, interface_name="eth1"
    )
    first = await addresses.create_address(
        session, structure=structure, block=block, interface_name="eth0"
    )
    reserved = await addresses.create_reserved_address(
        session, block=block, offset=200, reason="router"
    )
    await interfaces.add_interface(session, foundation=foundation, physical_location="eth1")
    await session.flush()
    read = records.reader(models.BaseAddress)
    assert read is not None
    grouped = await batches.records_grouped_by(
        session,
        read,
        models.BaseAddress.structure_id,
        [structure.id, 999999],
        order_by=(models.BaseAddress.interface_name,),
    )
    assert grouped[1] == []
    assert [row.id for row in grouped[0]] == [first.id, second.id]
    assert all(records.is_a(row, models.Address) for row in grouped[0])
    (by_block,) = await batches.records_grouped_by(
        session, read, models.BaseAddress.address_block_id, [block.id], (models.BaseAddress.id,)
    )
    kinds = {row.id: row.model for row in by_block}
    assert kinds[reserved.id] is models.ReservedAddress
    assert not records.is_a(by_block[-1], models.Address)
    assert _values(by_block[-1], models.BaseAddress) == _values(reserved, models.BaseAddress)


async def test_a_record_is_equal_only_to_itself(session: AsyncSession) -> None:
    site, _, _ = await make_stack(session)
    await session.flush()
    read = records.reader(models.Site)
    assert read is not None
    one, again = await batches.records_by(session, read, models.Site.id, [site.id, site.id])
    (other,) = await batches.records_by(session, read, models.Site.id, [site.id])
    assert one == again
    assert one is again
    assert one != other
    assert tuple(one) == tuple(other)
    assert len({one, other}) == 2  # hashable although it holds a dict (config_values)


def test_a_listing_as_records_is_the_same_statement() -> None:
    foundation_types()
    query = select(models.Structure).where(models.Structure.hostname.like("web%"))
    query = query.order_by(models.Structure.hostname, models.Structure.id).limit(10)
    found = records.as_records(query)
    assert found is not None
    assert str(found[0]) == str(query)
    # joined inheritance, a join, a column, a subclass: the ORM reads them
    block = models.AddressBlock
    joined = select(models.DhcpPool).join(block, block.id == models.DhcpPool.address_block_id)
    for other in (select(models.Foundation), joined, select(models.Site.id)):
        assert records.as_records(other) is None
    assert records.as_records(select(models.Address)) is None


async def test_a_page_of_records_holds_the_orm_rows_values(session: AsyncSession) -> None:
    foundation_types()
    for _ in range(3):
        await make_stack(session)
    await session.flush()
    listing = await inventory.structures(session)
    orm, more = await paging.page(session, listing, after=None, size=2)
    plain, plain_more = await paging.page(session, listing, after=None, size=2, as_records=True)
    assert more == plain_more
    assert [_values(row, models.Structure) for row in plain] == [
        _values(row, models.Structure) for row in orm
    ]
    assert all(records.is_a(row, models.Structure) for row in plain)
    assert [listing.key(row) for row in plain] == [listing.key(row) for row in orm]
