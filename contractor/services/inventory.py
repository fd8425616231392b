"""The inventory as the API reads it: rows by the ids callers name, the lists it pages
through (each a query in a unique order, filtered), and counts grouped in SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.errors import NotFound
from contractor.services import building, interfaces
from contractor.services.common import ModelT
from contractor.services.filters import (
    FoundationFilter,
    SiteFilter,
    StructureFilter,
    filter_foundations,
    filter_sites,
    filter_structures,
)
from contractor.services.paging import Listing
from contractor.services.site import get_site

# -- rows by id ----------------------------------------------------------------------------


async def _by_id(
    session: AsyncSession, model: type[ModelT], key: int, what: str, field: str
) -> ModelT:
    row = await session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key} does not exist", field=field)
    return row


async def get_network_by_id(session: AsyncSession, network_id: int) -> models.Network:
    return await _by_id(session, models.Network, network_id, "network", "network")


async def get_address_block_by_id(session: AsyncSession, block_id: int) -> models.AddressBlock:
    return await _by_id(session, models.AddressBlock, block_id, "address block", "address_block")


async def get_dhcp_pool_by_id(session: AsyncSession, pool_id: int) -> models.DhcpPool:
    return await _by_id(session, models.DhcpPool, pool_id, "DHCP pool", "id")


async def get_address_by_id(session: AsyncSession, address_id: int) -> models.BaseAddress:
    return await _by_id(session, models.BaseAddress, address_id, "address", "id")


async def get_user_by_id(session: AsyncSession, user_id: int) -> models.User:
    return await _by_id(session, models.User, user_id, "user", "id")


async def get_interface(
    session: AsyncSession, locator: str, physical_location: str
) -> models.RealNetworkInterface:
    """The interface of the foundation ``locator`` at ``physical_location``."""
    foundation = await building.get_foundation(session, locator)
    for interface in await interfaces.foundation_interfaces(session, foundation):
        if interface.physical_location == physical_location:
            return interface
    raise NotFound(
        f"foundation {locator!r} has no interface at {physical_location!r}",
        field="physical_location",
    )


async def find_structure(
    session: AsyncSession, *, id: int | None, site: str | None, hostname: str | None
) -> models.Structure | None:
    """The structure matching every part given: its id, its hostname, its site's name."""
    query = select(models.Structure)
    if id is not None:
        query = query.where(models.Structure.id == id)
    if hostname is not None:
        query = query.where(models.Structure.hostname == hostname)
    if site is not None:
        query = query.join(models.Site, models.Site.id == models.Structure.site_id).where(
            models.Site.name == site
        )
    return (await session.execute(query)).scalar_one_or_none()


async def complex_members(
    session: AsyncSession, complex_: models.Complex
) -> list[models.Structure]:
    """The member structures of a complex, by hostname."""
    query = (
        select(models.Structure)
        .join(models.ComplexMember, models.ComplexMember.structure_id == models.Structure.id)
        .where(models.ComplexMember.complex_id == complex_.id)
        .order_by(models.Structure.hostname)
    )
    return list((await session.execute(query)).scalars())


# -- lists ----------------------------------------------------------------------------------
# Each is built in a session (a filter may look up the rows it names); the arguments are
# the ones the API's list takes.


def _in_site(model: Any, site: str | None) -> Any:
    query = select(model)
    if site is not None:
        query = query.join(models.Site, models.Site.id == model.site_id).where(
            models.Site.name == site
        )
    return query


async def sites(session: AsyncSession, filter: SiteFilter | None = None) -> Listing:
    query = await filter_sites(session, select(models.Site), filter)
    return Listing(query, (models.Site.name,))


async def blueprints(session: AsyncSession, kind: str | None = None) -> Listing:
    query = select(models.BluePrint)
    if kind is not None:
        query = query.where(models.BluePrint.kind == kind)
    return Listing(query, (models.BluePrint.name,))


async def scripts(session: AsyncSession) -> Listing:
    return Listing.of(models.Script, models.Script.name)


async def pxes(session: AsyncSession) -> Listing:
    return Listing.of(models.PXE, models.PXE.name)


async def foundations(session: AsyncSession, filter: FoundationFilter | None = None) -> Listing:
    query = await filter_foundations(session, select(models.Foundation), filter)
    return Listing(query, (models.Foundation.locator,))


async def structures(session: AsyncSession, filter: StructureFilter | None = None) -> Listing:
    query = await filter_structures(session, select(models.Structure), filter)
    return Listing(query, (models.Structure.hostname, models.Structure.id))


async def complexes(session: AsyncSession, site: str | None = None) -> Listing:
    return Listing(_in_site(models.Complex, site), (models.Complex.name,))


async def dependencies(session: AsyncSession) -> Listing:
    return Listing.of(models.Dependency, models.Dependency.id)


async def networks(session: AsyncSession, site: str | None = None) -> Listing:
    return Listing(_in_site(models.Network, site), (models.Network.name, models.Network.id))


async def address_blocks(session: AsyncSession, site: str | None = None) -> Listing:
    block = models.AddressBlock
    return Listing(_in_site(block, site), (block.name, block.id))


async def block_addresses(session: AsyncSession, block_id: int) -> Listing:
    """A block's addresses of every kind, in offset order (unique in a block)."""
    address = models.BaseAddress
    return Listing(select(address).where(address.address_block_id == block_id), (address.offset,))


async def dhcp_pools(session: AsyncSession, site: str | None = None) -> Listing:
    pool, block = models.DhcpPool, models.AddressBlock
    query = select(pool).join(block, block.id == pool.address_block_id)
    if site is not None:
        query = query.join(models.Site, models.Site.id == block.site_id).where(
            models.Site.name == site
        )
    return Listing(query, (pool.id,))


async def zones(session: AsyncSession) -> Listing:
    return Listing.of(models.Zone, models.Zone.name, models.Zone.id)


async def users(session: AsyncSession) -> Listing:
    return Listing.of(models.User, models.User.username)


async def list_jobs(
    session: AsyncSession,
    *,
    state: str | None,
    site: str | None,
    finished: bool,
    foundation: models.Foundation | None = None,
    structure: models.Structure | None = None,
    limit: int = 500,
) -> list[models.Job]:
    """At most ``limit`` jobs, newest first: unfinished ones unless ``finished``; of one
    state, site, foundation or structure."""
    query = select(models.Job).order_by(models.Job.id.desc()).limit(limit)
    if foundation is not None:
        query = query.where(models.Job.foundation_id == foundation.id)
    if structure is not None:
        query = query.where(models.Job.structure_id == structure.id)
    if not finished:
        query = query.where(models.Job.finished_at.is_(None))
    if state is not None:
        query = query.where(models.Job.state == state)
    if site is not None:
        query = query.where(models.Job.site_id == (await get_site(session, site)).id)
    return list((await session.execute(query)).scalars())


# -- counts ---------------------------------------------------------------------------------


_Column = Callable[[Select[Any]], tuple[Select[Any], Any]]


@dataclass(frozen=True)
class Group:
    """One group of a count: the values of the grouped-by dimensions, and how many."""

    values: dict[str, Any]
    count: int


async def _grouped(
    session: AsyncSession, base: Any, row_id: Any, columns: dict[str, Any]
) -> list[Group]:
    query = base.with_only_columns(*columns.values(), func.count(row_id)).group_by(
        *columns.values()
    )
    query = query.order_by(*columns.values())
    return [
        Group(dict(zip(columns, row[:-1], strict=True)), int(row[-1]))
        for row in await session.execute(query)
    ]


def _count_columns(
    base: Select[Any], row: Any, group_by: Sequence[str], own: dict[str, _Column]
) -> tuple[Select[Any], dict[str, Any]]:
    """The columns to group ``row``'s query by; ``own`` makes the dimensions other than
    site and blueprint (joining what they need)."""
    columns: dict[str, Any] = {}
    for dimension in dict.fromkeys(group_by):
        if dimension == "site":
            base = base.join(models.Site, models.Site.id == row.site_id)
            columns["site"] = models.Site.name
        elif dimension == "blueprint":
            base = base.join(models.BluePrint, models.BluePrint.id == row.blueprint_id)
            columns["blueprint"] = models.BluePrint.name
        else:
            base, columns[dimension] = own[dimension](base)
    return base, columns


def _foundation_state(base: Select[Any]) -> tuple[Select[Any], Any]:
    f = models.Foundation
    state = case(
        (f.located_at.is_(None), "planned"),
        (f.built_at.is_(None), "located"),
        else_="built",
    )
    return base, state


def _foundation_type(base: Select[Any]) -> tuple[Select[Any], Any]:
    s = models.Structure
    joined = base.join(models.Foundation, models.Foundation.id == s.foundation_id)
    return joined, models.Foundation.type


async def count_foundations(
    session: AsyncSession, group_by: Sequence[str], where: FoundationFilter | None
) -> list[Group]:
    """Foundations counted per dimension: ``site``, ``blueprint``, ``type``, ``state``."""
    f = models.Foundation
    own: dict[str, _Column] = {"type": lambda base: (base, f.type), "state": _foundation_state}
    base, columns = _count_columns(select(f.id), f, group_by, own)
    base = await filter_foundations(session, base, where)
    return await _grouped(session, base, f.id, columns)


async def count_structures(
    session: AsyncSession, group_by: Sequence[str], where: StructureFilter | None
) -> list[Group]:
    """Structures counted per dimension: ``site``, ``blueprint``, ``type`` (of the
    foundation), ``state``."""
    s = models.Structure
    state = case((s.built_at.is_(None), "planned"), else_="built")
    own: dict[str, _Column] = {"type": _foundation_type, "state": lambda base: (base, state)}
    base, columns = _count_columns(select(s.id), s, group_by, own)
    base = await filter_structures(session, base, where)
    return await _grouped(session, base, s.id, columns)
