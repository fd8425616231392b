"""Sites in GraphQL: the nested tree, its lists and filters, and its changes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.schema.common import (
    Scope,
    given,
    given_object,
    json_object,
    optional,
    plain_fields,
)
from contractor.schema.configurable import Configurable
from contractor.schema.directory import Zone, zone_named
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.permissions import Operator
from contractor.schema.prefetch import related
from contractor.services import filters, inventory
from contractor.services import site as site_service
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
class SiteScope(Scope):
    pass


@strawberry.input
class SiteFilter:
    name: str | None = strawberry.field(default=None, description="Glob, e.g. 'dc1-*'.")
    parent: str | None = strawberry.field(default=None, description="Direct children of this site.")
    within: SiteScope | None = None
    roots_only: bool = False

    def plain(self) -> filters.SiteFilter:
        return filters.SiteFilter(**plain_fields(self))


@strawberry.type
class SiteQuery:
    site = lookup(Site, site_service.get_site, name=str)
    sites = connection(Site, inventory.sites, filter=SiteFilter)


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
        row = await site_service.create_site(
            session,
            name=name,
            description=description,
            parent=await optional(site_service.get_site, session, parent),
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
        row = await site_service.get_site(session, name)
        await site_service.update_site(
            session,
            row,
            description=given(description),
            parent=UNSET
            if parent is strawberry.UNSET
            else await optional(site_service.get_site, session, parent),
            zone=UNSET if zone is strawberry.UNSET else await zone_named(session, zone),
            config_values=given_object(config_values, "config_values"),
        )
        return Site.of(row)

    delete_site = deletion("Site", site_service.get_site, site_service.delete_site, name=str)
