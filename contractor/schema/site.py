"""Sites in GraphQL: the nested tree, its lists and filters, and its changes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.schema.common import (
    DeleteResult,
    found,
    given,
    given_object,
    json_object,
    mutation,
    optional,
    plain,
    removed,
)
from contractor.schema.configurable import Configurable
from contractor.schema.context import Info
from contractor.schema.directory import Zone, zone_named
from contractor.schema.errors import AnyError
from contractor.schema.pagination import Connection, PageRequest, paginate
from contractor.schema.permissions import Operator, Reader
from contractor.schema.prefetch import related
from contractor.services import filters, inventory
from contractor.services import site as sites
from contractor.services.common import UNSET


@strawberry.type
class Site(Configurable):
    id: int
    name: str
    description: str
    config_values: JSON = strawberry.field(description="This site's own values, in order.")
    created: dt.datetime
    updated: dt.datetime
    row: strawberry.Private[models.Site]

    parent: Site | None = related(models.Site.id, "parent_id")
    children: list[Site] = related(models.Site.parent_id, "id", order_by=(models.Site.name,))
    zone: Zone | None = related(models.Zone.id, "zone_id")


SiteResult = Annotated[Site | AnyError, strawberry.union("SiteResult")]


@strawberry.input(description="Where: a site, optionally with every site below it.")
class SiteScope:
    name: str
    include_descendants: bool = False

    def plain(self) -> filters.Scope:
        return filters.Scope(self.name, self.include_descendants)


@strawberry.input
class SiteFilter:
    name: str | None = strawberry.field(default=None, description="Glob, e.g. 'dc1-*'.")
    parent: str | None = strawberry.field(default=None, description="Direct children of this site.")
    within: SiteScope | None = None
    roots_only: bool = False


@strawberry.type
class SiteQuery:
    @strawberry.field(extensions=[Reader()])
    async def site(self, info: Info, name: str) -> Site | None:
        row = await found(info, sites.get_site, name)
        return Site.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def sites(
        self,
        info: Info,
        filter: SiteFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Site]:
        async with info.context.sessions() as session:
            listing = await inventory.sites(session, plain(filter, filters.SiteFilter))
        return await paginate(info, listing, PageRequest(first, after), Site.of)


@strawberry.type
class SiteMutation:
    @mutation(Operator)
    async def create_site(
        session: AsyncSession,
        name: str,
        description: str = "",
        parent: str | None = None,
        zone: str | None = None,
        config_values: JSON | None = None,
    ) -> SiteResult:
        row = await sites.create_site(
            session,
            name=name,
            description=description,
            parent=await optional(sites.get_site, session, parent),
            zone=await zone_named(session, zone),
            config_values=json_object(config_values, "config_values"),
        )
        return Site.of(row)

    @mutation(Operator, description="Change the given fields; null parent or zone clears it.")
    async def update_site(
        session: AsyncSession,
        name: str,
        description: str | None = strawberry.UNSET,
        parent: str | None = strawberry.UNSET,
        zone: str | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
    ) -> SiteResult:
        row = await sites.get_site(session, name)
        await sites.update_site(
            session,
            row,
            description=given(description),
            parent=UNSET
            if parent is strawberry.UNSET
            else await optional(sites.get_site, session, parent),
            zone=UNSET if zone is strawberry.UNSET else await zone_named(session, zone),
            config_values=given_object(config_values, "config_values"),
        )
        return Site.of(row)

    @mutation(Operator)
    async def delete_site(session: AsyncSession, name: str) -> DeleteResult:
        return await removed(
            session, "Site", sites.delete_site, await sites.get_site(session, name)
        )
