"""Sites: the nested tree, its rules, and what may be deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import (
    AddressBlock,
    Complex,
    Foundation,
    Network,
    Site,
    Structure,
    Zone,
)
from contractor.services.common import UNSET, added, get_by, id_or_none, refuse_if_used, set_given
from contractor.services.config import config_changed, config_sources_changed
from contractor.services.directory import check_zone_generated, zone_fqdn
from contractor.services.dns_guard import kept_exportable
from contractor.services.validation import check_config_values, check_description, check_name


async def get_site(session: AsyncSession, name: str, *, for_update: bool = False) -> Site:
    return await get_by(session, Site, Site.name, name, what="site", for_update=for_update)


async def create_site(
    session: AsyncSession,
    *,
    name: str,
    description: str = "",
    parent: Site | None = None,
    zone: Zone | None = None,
    config_values: dict[str, Any] | None = None,
) -> Site:
    check_name(name, field="name", what="site name")
    check_description(description)
    values = check_config_values(config_values or {})
    if (await session.execute(select(Site.id).where(Site.name == name))).first():
        raise Conflict(f"site {name!r} already exists", field="name")
    if zone is not None:
        await check_zone_generated(session, zone, field="zone")
    site = Site(
        name=name,
        description=description,
        parent_id=parent.id if parent else None,
        zone_id=zone.id if zone else None,
        config_values=values,
    )
    return await added(session, site)


async def update_site(
    session: AsyncSession,
    site: Site,
    *,
    description: str = UNSET,
    parent: Site | None = UNSET,
    zone: Zone | None = UNSET,
    config_values: dict[str, Any] = UNSET,
) -> Site:
    """Change the given fields; a new parent may not be the site itself or below it."""
    set_given(
        site,
        description=(description, check_description),
        config_values=(config_values, check_config_values),
    )
    if parent is not UNSET:
        if parent is not None:
            below = await site_ancestor_ids(session, parent)
            if site.id in below:
                raise InvalidInput(
                    f"site {parent.name!r} is {site.name!r} itself or inside it; "
                    "a site cannot be its own ancestor",
                    field="parent",
                )
        site.parent_id = parent.id if parent else None
    if zone is not UNSET:
        # A site's DNS names are in its own zone (docs/dns.md): only the zone moves them.
        if zone is not None:
            await check_zone_generated(session, zone, field="zone")
            await _refuse_hostnames_taken(session, site, zone)
        async with kept_exportable(session, field="zone"):
            site.zone_id = id_or_none(zone)
            await session.flush()
    return await config_changed(session, site)


async def _refuse_hostnames_taken(session: AsyncSession, site: Site, zone: Zone) -> None:
    """The site's structures may not take hostnames the zone's other sites already use."""
    mine = select(Structure.hostname).where(Structure.site_id == site.id)
    taken = (
        select(Structure.hostname, Site.name)
        .join(Site, Site.id == Structure.site_id)
        .where(Site.zone_id == zone.id, Site.id != site.id, Structure.hostname.in_(mine))
        .order_by(Structure.hostname)
        .limit(1)
    )
    clash = (await session.execute(taken)).first()
    if clash is not None:
        raise Conflict(
            f"site {site.name!r} cannot use zone {await zone_fqdn(session, zone)!r}: its "
            f"structure {clash[0]!r} "
            f"has the hostname of structure {clash[0]!r} in site {clash[1]!r}, which uses "
            "that zone",
            field="zone",
        )


async def site_ancestor_ids(session: AsyncSession, site: Site) -> list[int]:
    """The site's id and its ancestors', the site first and the root last."""
    return [s.id for s in await site_chain(session, site)][::-1]


async def site_chain(session: AsyncSession, site: Site) -> list[Site]:
    """The root site first, ``site`` last, in one recursive query."""
    chain = select(Site.id, Site.parent_id).where(Site.id == site.id).cte("chain", recursive=True)
    chain = chain.union(select(Site.id, Site.parent_id).join(chain, Site.id == chain.c.parent_id))
    rows = (await session.execute(select(Site).join(chain, Site.id == chain.c.id))).scalars().all()
    by_id = {row.id: row for row in rows}
    ordered: list[Site] = []
    current: Site | None = by_id.get(site.id)
    while current is not None:
        ordered.append(current)
        if len(ordered) > len(by_id):  # a cycle in stored data; never loop
            break
        current = by_id.get(current.parent_id) if current.parent_id is not None else None
    return ordered[::-1]


async def site_descendant_ids(session: AsyncSession, site: Site) -> list[int]:
    """The site's id and every site below it."""
    tree = select(Site.id).where(Site.id == site.id).cte("tree", recursive=True)
    tree = tree.union(select(Site.id).join(tree, Site.parent_id == tree.c.id))
    return list((await session.execute(select(tree.c.id))).scalars())


async def delete_site(session: AsyncSession, site: Site) -> None:
    """Delete an empty site; anything still in it is named in the refusal."""
    await refuse_if_used(
        session,
        f"site {site.name!r}",
        [
            ("child sites", Site.name, Site.parent_id == site.id),
            ("foundations", Foundation.locator, Foundation.site_id == site.id),
            ("structures", Structure.hostname, Structure.site_id == site.id),
            ("complexes", Complex.name, Complex.site_id == site.id),
            ("address blocks", AddressBlock.name, AddressBlock.site_id == site.id),
            ("networks", Network.name, Network.site_id == site.id),
        ],
    )
    await session.delete(site)
    config_sources_changed(session)
    await session.flush()
