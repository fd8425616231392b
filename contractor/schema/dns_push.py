"""DNS live updates in GraphQL: each zone's push state, the push log, and the resync."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from contractor.events.dns_updates import resync
from contractor.models.dns_push import DnsPushZone as DnsPushZoneRow
from contractor.schema.common import Row
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.permissions import Admin, Reader
from contractor.services import dns_push


@strawberry.type(description="A zone published by RFC 2136 updates, as the server last took it.")
class DnsPushZone(Row):
    name: str
    mode: str = strawberry.field(description="files, updates or both")
    state: str = strawberry.field(
        description="current, pending, failing (retried with backoff: see lastError) or "
        "invalid (the zone cannot be generated; the server keeps its last good records)"
    )
    serial: int | None = strawberry.field(description="The serial the server acknowledged.")
    attempts: int = strawberry.field(description="Failed attempts in a row.")
    last_error: str | None
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    next_attempt_at: dt.datetime | None

    @classmethod
    def of(cls, row: DnsPushZoneRow, mode: str) -> DnsPushZone:  # type: ignore[override]
        waiting = row.state in ("pending", "failing")
        return cls.from_row(
            row, mode=mode, next_attempt_at=row.next_attempt_at if waiting else None
        )


@strawberry.type(description="One push of a zone to the DNS server, and how it went.")
class DnsPush(Row):
    id: int
    zone: str
    kind: str = strawberry.field(description="update or resync")
    state: str = strawberry.field(description="sending, acknowledged or failed")
    attempt: int
    serial: int | None
    deleted: int = strawberry.field(description="Record sets removed.")
    added: int = strawberry.field(description="Record sets added or replaced.")
    rcode: str | None = strawberry.field(description="The server's answer (NOERROR, NOTAUTH...).")
    error: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


@strawberry.type(description="How a zone on the DNS server differs from the inventory.")
class DnsZoneDifference(Row):
    zone: str
    missing: list[str] = strawberry.field(description="Records the server lacks.")
    unexpected: list[str] = strawberry.field(description="Records the inventory does not have.")
    repaired: bool
    error: str | None


@strawberry.type(description="What a resync found (and repaired, unless a dry run).")
class DnsResync:
    zones: list[DnsZoneDifference]


DnsResyncResult = Annotated[DnsResync | AnyError, strawberry.union("DnsResyncResult")]


@strawberry.type
class DnsPushQuery:
    @strawberry.field(
        description="Zones published by updates, with their push state.", extensions=[Reader()]
    )
    async def dns_push_zones(self, info: Info) -> list[DnsPushZone]:
        settings = info.context.settings
        async with info.context.sessions() as session:
            rows = await dns_push.list_zone_states(session)
        return [DnsPushZone.of(row, settings.dns_mode(row.name)) for row in rows]

    @strawberry.field(
        description="The DNS push log, newest first (one entry per attempt).",
        extensions=[Reader()],
    )
    async def dns_pushes(
        self, info: Info, zone: str | None = None, limit: int = 50
    ) -> list[DnsPush]:
        async with info.context.sessions() as session:
            rows = await dns_push.list_pushes(session, zone=zone, limit=limit)
        return [DnsPush.of(row) for row in rows]


@strawberry.type
class DnsPushMutation:
    @strawberry.mutation(
        description="Compare zones published by updates (or only `zone`) as the DNS server "
        "holds them (AXFR) with the inventory; unless `dryRun`, repair them by updates "
        "(admins).",
        extensions=[Admin()],
    )
    async def resync_dns_zones(
        self, info: Info, zone: str | None = None, dry_run: bool = False
    ) -> DnsResyncResult:
        found = await resync(
            info.context.writer_sessions, info.context.settings, zone=zone, dry_run=dry_run
        )
        return DnsResync(zones=[DnsZoneDifference.of(difference) for difference in found])
