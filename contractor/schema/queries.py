"""Read access to the inventory graph: single objects by their natural keys, and filtered,
keyset-paginated lists."""

from __future__ import annotations

import enum
from typing import Any

import strawberry
from sqlalchemy import select

from contractor import models
from contractor.errors import InvalidInput, NotFound
from contractor.schema.context import Info
from contractor.schema.filters import (
    FoundationFilter,
    SiteFilter,
    StructureFilter,
    filter_foundations,
    filter_sites,
    filter_structures,
)
from contractor.schema.pagination import Connection, PageRequest, paginate
from contractor.schema.types import (
    AddressBlock,
    BaseAddress,
    BluePrint,
    Complex,
    Dependency,
    Foundation,
    Network,
    Pxe,
    Script,
    Site,
    Structure,
    User,
    Zone,
    address_of,
    blueprint_of,
)
from contractor.services import directory, dns
from contractor.services import network as network_service
from contractor.services.site import get_site


async def _get(info: Info, query: Any) -> Any:
    info.context.require("reader")
    async with info.context.sessions() as session:
        return (await session.execute(query)).scalar_one_or_none()


@strawberry.enum
class BluePrintKind(enum.Enum):
    FOUNDATION = "foundation"
    STRUCTURE = "structure"


@strawberry.type(description="A zone file as Contractor publishes it.")
class PublishedZone:
    name: str
    kind: str = strawberry.field(description="forward or reverse")
    serial: int | None
    problems: list[str] = strawberry.field(description="Why the zone cannot be published, if so.")
    text: str | None = strawberry.field(description="The zone file; null when it has problems.")


@strawberry.type
class Query:
    @strawberry.field(description="The caller.")
    async def me(self, info: Info) -> User:
        principal = info.context.require("reader")
        row = await _get(info, select(models.User).where(models.User.id == principal.user_id))
        return User.of(row)

    @strawberry.field
    async def site(self, info: Info, name: str) -> Site | None:
        row = await _get(info, select(models.Site).where(models.Site.name == name))
        return Site.of(row) if row else None

    @strawberry.field
    async def sites(
        self,
        info: Info,
        filter: SiteFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Site]:
        info.context.require("reader")
        async with info.context.sessions() as session:
            query = await filter_sites(session, select(models.Site), filter)
        return await paginate(info, query, [models.Site.name], PageRequest(first, after), Site.of)

    @strawberry.field
    async def blueprint(self, info: Info, name: str) -> BluePrint | None:
        row = await _get(info, select(models.BluePrint).where(models.BluePrint.name == name))
        return blueprint_of(row) if row else None

    @strawberry.field
    async def blueprints(
        self,
        info: Info,
        kind: BluePrintKind | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[BluePrint]:
        info.context.require("reader")
        query = select(models.BluePrint)
        if kind is not None:
            query = query.where(models.BluePrint.kind == kind.value)
        return await paginate(
            info,
            query,
            [models.BluePrint.name],
            PageRequest(first, after),
            blueprint_of,
        )

    @strawberry.field
    async def script(self, info: Info, name: str) -> Script | None:
        row = await _get(info, select(models.Script).where(models.Script.name == name))
        return Script.of(row) if row else None

    @strawberry.field
    async def scripts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Script]:
        info.context.require("reader")
        return await paginate(
            info,
            select(models.Script),
            [models.Script.name],
            PageRequest(first, after),
            Script.of,
        )

    @strawberry.field(name="pxe")
    async def pxe(self, info: Info, name: str) -> Pxe | None:
        row = await _get(info, select(models.PXE).where(models.PXE.name == name))
        return Pxe.of(row) if row else None

    @strawberry.field(name="pxes")
    async def pxes(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Pxe]:
        info.context.require("reader")
        return await paginate(
            info,
            select(models.PXE),
            [models.PXE.name],
            PageRequest(first, after),
            Pxe.of,
        )

    @strawberry.field
    async def foundation(self, info: Info, locator: str) -> Foundation | None:
        row = await _get(
            info, select(models.Foundation).where(models.Foundation.locator == locator)
        )
        return Foundation.of(row) if row else None

    @strawberry.field
    async def foundations(
        self,
        info: Info,
        filter: FoundationFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Foundation]:
        info.context.require("reader")
        async with info.context.sessions() as session:
            query = await filter_foundations(session, select(models.Foundation), filter)
        return await paginate(
            info,
            query,
            [models.Foundation.locator],
            PageRequest(first, after),
            Foundation.of,
        )

    @strawberry.field(description="A structure by id, or by site and hostname.")
    async def structure(
        self,
        info: Info,
        id: int | None = None,
        site: str | None = None,
        hostname: str | None = None,
    ) -> Structure | None:
        query = select(models.Structure)
        if id is not None:
            query = query.where(models.Structure.id == id)
        if hostname is not None:
            query = query.where(models.Structure.hostname == hostname)
        if site is not None:
            query = query.join(models.Site, models.Site.id == models.Structure.site_id).where(
                models.Site.name == site
            )
        if id is None and (site is None or hostname is None):
            raise InvalidInput("give id, or both site and hostname", field="id")
        row = await _get(info, query)
        return Structure.of(row) if row else None

    @strawberry.field
    async def structures(
        self,
        info: Info,
        filter: StructureFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Structure]:
        info.context.require("reader")
        async with info.context.sessions() as session:
            query = await filter_structures(session, select(models.Structure), filter)
        return await paginate(
            info,
            query,
            [models.Structure.hostname, models.Structure.id],
            PageRequest(first, after),
            Structure.of,
        )

    @strawberry.field
    async def complex(self, info: Info, name: str) -> Complex | None:
        row = await _get(info, select(models.Complex).where(models.Complex.name == name))
        return Complex.of(row) if row else None

    @strawberry.field
    async def complexes(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Complex]:
        info.context.require("reader")
        query = select(models.Complex)
        if site is not None:
            query = query.join(models.Site, models.Site.id == models.Complex.site_id).where(
                models.Site.name == site
            )
        return await paginate(
            info,
            query,
            [models.Complex.name],
            PageRequest(first, after),
            Complex.of,
        )

    @strawberry.field
    async def dependency(self, info: Info, id: int) -> Dependency | None:
        row = await _get(info, select(models.Dependency).where(models.Dependency.id == id))
        return Dependency.of(row) if row else None

    @strawberry.field
    async def dependencies(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Dependency]:
        info.context.require("reader")
        return await paginate(
            info,
            select(models.Dependency),
            [models.Dependency.id],
            PageRequest(first, after),
            Dependency.of,
        )

    @strawberry.field
    async def networks(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Network]:
        info.context.require("reader")
        query = select(models.Network)
        if site is not None:
            query = query.join(models.Site, models.Site.id == models.Network.site_id).where(
                models.Site.name == site
            )
        return await paginate(
            info,
            query,
            [models.Network.name, models.Network.id],
            PageRequest(first, after),
            Network.of,
        )

    @strawberry.field
    async def address_block(self, info: Info, id: int) -> AddressBlock | None:
        row = await _get(info, select(models.AddressBlock).where(models.AddressBlock.id == id))
        return AddressBlock.of(row) if row else None

    @strawberry.field
    async def address_blocks(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AddressBlock]:
        info.context.require("reader")
        query = select(models.AddressBlock)
        if site is not None:
            query = query.join(models.Site, models.Site.id == models.AddressBlock.site_id).where(
                models.Site.name == site
            )
        return await paginate(
            info,
            query,
            [models.AddressBlock.name, models.AddressBlock.id],
            PageRequest(first, after),
            AddressBlock.of,
        )

    @strawberry.field(description="The address allocated for an IP (in a site, if given).")
    async def address(self, info: Info, ip: str, site: str | None = None) -> BaseAddress | None:
        info.context.require("reader")
        async with info.context.sessions() as session:
            scope = None
            if site is not None:
                scope = await get_site(session, site)
            try:
                row = await network_service.lookup_address(session, ip, site=scope)
            except NotFound:
                return None
        return address_of(row)

    @strawberry.field(description="A zone by its dotted name, e.g. 'dc1.example'.")
    async def zone(self, info: Info, fqdn: str) -> Zone | None:
        info.context.require("reader")
        async with info.context.sessions() as session:
            try:
                return Zone.of(await directory.find_zone(session, fqdn))
            except NotFound:
                return None

    @strawberry.field
    async def zones(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Zone]:
        info.context.require("reader")
        return await paginate(
            info,
            select(models.Zone),
            [models.Zone.name, models.Zone.id],
            PageRequest(first, after),
            Zone.of,
        )

    @strawberry.field(
        description="The zones as published for BIND, with their serials and text (reading "
        "publishes: a zone whose content changed gets its new serial now)."
    )
    async def published_zones(self, info: Info, name: str | None = None) -> list[PublishedZone]:
        info.context.require("reader")
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

    @strawberry.field(description="Every user (admins only).")
    async def users(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[User]:
        info.context.require("admin")
        return await paginate(
            info,
            select(models.User),
            [models.User.username],
            PageRequest(first, after),
            User.of,
        )
