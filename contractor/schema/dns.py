"""The zones as Contractor publishes them for BIND."""

from __future__ import annotations

import strawberry

from contractor.schema.context import Info
from contractor.schema.permissions import Reader
from contractor.services import dns


@strawberry.type(description="A zone file as Contractor publishes it.")
class PublishedZone:
    name: str
    kind: str = strawberry.field(description="forward or reverse")
    serial: int | None
    problems: list[str] = strawberry.field(description="Why the zone cannot be published, if so.")
    text: str | None = strawberry.field(description="The zone file; null when it has problems.")


@strawberry.type
class DnsQuery:
    @strawberry.field(
        description="The zones as published for BIND, with their serials and text (reading "
        "publishes: a zone whose content changed gets its new serial now).",
        extensions=[Reader()],
    )
    async def published_zones(self, info: Info, name: str | None = None) -> list[PublishedZone]:
        async with info.context.writer_sessions() as session, session.begin():
            zones = await dns.publish_zones(session)
        return [
            PublishedZone(
                name=z.name,
                kind=z.kind,
                serial=z.serial,
                problems=list(z.problems),
                text=None if z.data is None else dns.zone_text(z),
            )
            for z in zones
            if name is None or z.name == name.strip().lower().rstrip(".")
        ]
