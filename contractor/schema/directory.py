"""Zones in GraphQL: the zone tree and the records kept in a zone beside the inventory."""

from __future__ import annotations

from typing import Annotated, Unpack

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.models.directory import (
    DEFAULT_EXPIRE,
    DEFAULT_MINIMUM,
    DEFAULT_REFRESH,
    DEFAULT_RETRY,
    DEFAULT_TTL,
    Entry,
)
from contractor.schema.common import Row, given, load_one
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.permissions import Operator
from contractor.schema.prefetch import related
from contractor.services import directory, inventory


@strawberry.type
class Zone(Row):
    id: int
    name: str
    ttl: int = strawberry.field(description="The default TTL of the zone's records, seconds.")
    refresh: int = strawberry.field(description="SOA refresh, seconds.")
    retry: int = strawberry.field(description="SOA retry, seconds (less than refresh).")
    expire: int = strawberry.field(description="SOA expire, seconds (≥ refresh + retry).")
    minimum: int = strawberry.field(
        description="SOA minimum: the negative-caching TTL (RFC 2308), seconds (≤ 86400)."
    )
    nameservers: list[str] = strawberry.field(
        description="Host names of the zone's name servers (inherited from the parent if empty)."
    )
    soa_email: str | None
    external: bool = strawberry.field(
        description="Delegated to Contractor from a parent it does not serve: the zones above "
        "it only spell its name and are not generated."
    )
    row: strawberry.Private[models.Zone]

    parent: Zone | None = related(models.Zone.id, "parent_id")
    entries: list[ZoneEntry] = related(
        Entry.zone_id,
        "id",
        order_by=(Entry.name, Entry.type, Entry.id),
        description="Records of the zone that do not come from the inventory.",
    )

    @strawberry.field(description="The fully qualified name, without the trailing dot.")
    async def fqdn(self, info: Info) -> str:
        labels, row = [self.row.name], self.row
        while row.parent_id is not None:
            row = await load_one(info, models.Zone.id, row.parent_id)
            labels.append(row.name)
        return ".".join(labels)

    @strawberry.field(
        description="The name servers the zone is published with: its own, else the nearest "
        "parent zone's that has some (empty when no zone up the chain names any)."
    )
    async def nameservers_in_effect(self, info: Info) -> list[str]:
        row = self.row
        while not row.nameservers and row.parent_id is not None:
            row = await load_one(info, models.Zone.id, row.parent_id)
        return list(row.nameservers)


@strawberry.type(description="A CNAME, MX, NS, SRV or TXT record kept in a zone.")
class ZoneEntry(Row):
    id: int
    type: str
    name: str
    target: str | None
    text: str | None
    priority: int | None
    weight: int | None
    port: int | None
    ttl: int | None


ZoneResult = Annotated[Zone | AnyError, strawberry.union("ZoneResult")]
ZoneEntryResult = Annotated[ZoneEntry | AnyError, strawberry.union("ZoneEntryResult")]


async def zone_named(session: AsyncSession, fqdn: str | None) -> models.Zone | None:
    return None if fqdn is None else await directory.find_zone(session, fqdn)


@strawberry.type
class DirectoryQuery:
    zone = lookup(
        Zone,
        directory.find_zone,
        fqdn=str,
        description="A zone by its dotted name, e.g. 'dc1.example'.",
    )
    zones = connection(Zone, inventory.zones)


@strawberry.type
class DirectoryMutation:
    @mutation(
        Operator,
        description="A zone; parent is the dotted name of the parent zone; name servers and "
        "the SOA mailbox are inherited from the parent when not given. The timers (seconds) "
        "must hold retry < refresh, expire >= refresh + retry, minimum <= 86400.",
    )
    async def create_zone(
        session: AsyncSession,
        name: str,
        parent: str | None = None,
        ttl: int = DEFAULT_TTL,
        refresh: int = DEFAULT_REFRESH,
        retry: int = DEFAULT_RETRY,
        expire: int = DEFAULT_EXPIRE,
        minimum: int = DEFAULT_MINIMUM,
        nameservers: list[str] | None = None,
        soa_email: str | None = None,
        external: bool = False,
    ) -> ZoneResult:
        row = await directory.create_zone(
            session,
            name=name,
            parent=await zone_named(session, parent),
            ttl=ttl,
            refresh=refresh,
            retry=retry,
            expire=expire,
            minimum=minimum,
            nameservers=nameservers or [],
            soa_email=soa_email,
            external=external,
        )
        return Zone.of(row)

    @mutation(
        Operator,
        description="Change the given fields of a zone (by its dotted name): the timers are "
        "checked together as on createZone; empty or null nameservers and a null soaEmail "
        "inherit from the parent zone again.",
    )
    async def update_zone(
        session: AsyncSession,
        fqdn: str,
        ttl: int | None = strawberry.UNSET,
        refresh: int | None = strawberry.UNSET,
        retry: int | None = strawberry.UNSET,
        expire: int | None = strawberry.UNSET,
        minimum: int | None = strawberry.UNSET,
        nameservers: list[str] | None = strawberry.UNSET,
        soa_email: str | None = strawberry.UNSET,
        external: bool | None = strawberry.UNSET,
    ) -> ZoneResult:
        row = await directory.find_zone(session, fqdn)
        await directory.update_zone(
            session,
            row,
            ttl=given(ttl),
            refresh=given(refresh),
            retry=given(retry),
            expire=given(expire),
            minimum=given(minimum),
            nameservers=given(nameservers) if nameservers is not None else [],
            soa_email=given(soa_email),
            external=given(external),
        )
        return Zone.of(row)

    @mutation(Operator, description="Add a CNAME, MX, NS, SRV or TXT record to a zone.")
    async def create_zone_entry(
        session: AsyncSession, zone: str, **record: Unpack[directory.Record]
    ) -> ZoneEntryResult:
        found = await directory.find_zone(session, zone)
        return ZoneEntry.of(await directory.create_entry(session, zone=found, **record))

    delete_zone_entry = deletion("ZoneEntry", directory.get_entry, directory.delete_entry, id=int)

    delete_zone = deletion("Zone", directory.find_zone, directory.delete_zone, fqdn=str)
