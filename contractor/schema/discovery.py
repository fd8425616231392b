"""Discovered machines in GraphQL (``docs/boot.md``, "Discovery"): listed with filters,
looked up by id, matched to a Foundation by hand or forgotten by operators."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.schema.common import Row
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.permissions import Operator
from contractor.services import building
from contractor.services import discovery as service


@strawberry.type
class DiscoveredHardware(Row):
    id: int
    mac: str = strawberry.field(description="The MAC it booted from.")
    serial: str | None
    located: bool = strawberry.field(description="Its Foundation was located from it.")
    problems: list[str] = strawberry.field(description="Why it is not matched or located.")
    reports: int = strawberry.field(description="How many reports it sent.")
    reported_at: dt.datetime
    created: dt.datetime
    row: strawberry.Private[models.DiscoveredHardware]

    @strawberry.field(description="The report's facts, as checked (docs/boot.md).")
    def facts(self) -> JSON:
        return JSON(self.row.report)

    @strawberry.field(description="The locator of the Foundation it matched, if any.")
    async def matched(self, info: Info) -> str | None:
        if self.row.foundation_id is None:
            return None
        async with info.context.sessions() as session:
            return (await session.get_one(models.Foundation, self.row.foundation_id)).locator

    @strawberry.field(description="The name of its site.")
    async def site(self, info: Info) -> str:
        async with info.context.sessions() as session:
            return (await session.get_one(models.Site, self.row.site_id)).name


DiscoveredHardwareResult = Annotated[
    DiscoveredHardware | AnyError, strawberry.union("DiscoveredHardwareResult")
]


@strawberry.type
class DiscoveryQuery:
    discovered_machine = lookup(
        DiscoveredHardware,
        service.get_discovered,
        id=int,
        description="A discovered machine by id, or null.",
    )
    discovered_hardware = connection(
        DiscoveredHardware,
        service.discovered_listing,
        site=str,
        matched=bool,
        mac=str,
        serial=str,
        description="Machines that booted with no reservation and reported their hardware.",
    )


@strawberry.type
class DiscoveryMutation:
    @mutation(
        Operator,
        description="Match a discovered machine to a Foundation of its site by hand; it is "
        "located as a match by MAC or serial would be (problems say why not).",
    )
    async def match_discovered_hardware(
        session: AsyncSession, id: int, foundation: str
    ) -> DiscoveredHardwareResult:
        row = await service.get_discovered(session, id)
        target = await building.get_foundation(session, foundation)
        result = await service.match_by_hand(session, row, target)
        return DiscoveredHardware.of(result.discovered)

    forget_discovered_hardware = deletion(
        "DiscoveredHardware", service.get_discovered, service.forget, id=int
    )
