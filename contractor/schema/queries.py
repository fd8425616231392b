"""Read access to the inventory graph: single objects by their natural keys, and filtered,
keyset-paginated lists."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from contractor.errors import InvalidInput, NotFound
from contractor.schema.context import Info
from contractor.schema.filters import FoundationFilter, SiteFilter, StructureFilter, plain
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
from contractor.services import blueprint as bps
from contractor.services import building, directory, dns, filters, inventory
from contractor.services import network as network_service
from contractor.services import site as sites


async def _found(info: Info, lookup: Callable[..., Awaitable[Any]], *key: Any) -> Any:
    """The row a service's ``get_...`` finds, or None where it does not exist."""
    info.context.require("reader")
    async with info.context.sessions() as session:
        try:
            return await lookup(session, *key)
        except NotFound:
            return None


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
        return User.of(await _found(info, inventory.get_user_by_id, principal.user_id))

    @strawberry.field
    async def site(self, info: Info, name: str) -> Site | None:
        row = await _found(info, sites.get_site, name)
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
            listing = await inventory.sites(session, plain(filter, filters.SiteFilter))
        return await paginate(info, listing, PageRequest(first, after), Site.of)

    @strawberry.field
    async def blueprint(self, info: Info, name: str) -> BluePrint | None:
        row = await _found(info, bps.get_blueprint, name)
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
        listing = inventory.blueprints(None if kind is None else kind.value)
        return await paginate(info, listing, PageRequest(first, after), blueprint_of)

    @strawberry.field
    async def script(self, info: Info, name: str) -> Script | None:
        row = await _found(info, bps.get_script, name)
        return Script.of(row) if row else None

    @strawberry.field
    async def scripts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Script]:
        info.context.require("reader")
        return await paginate(info, inventory.scripts(), PageRequest(first, after), Script.of)

    @strawberry.field(name="pxe")
    async def pxe(self, info: Info, name: str) -> Pxe | None:
        row = await _found(info, bps.get_pxe, name)
        return Pxe.of(row) if row else None

    @strawberry.field(name="pxes")
    async def pxes(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Pxe]:
        info.context.require("reader")
        return await paginate(info, inventory.pxes(), PageRequest(first, after), Pxe.of)

    @strawberry.field
    async def foundation(self, info: Info, locator: str) -> Foundation | None:
        row = await _found(info, building.get_foundation, locator)
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
            listing = await inventory.foundations(session, plain(filter, filters.FoundationFilter))
        return await paginate(info, listing, PageRequest(first, after), Foundation.of)

    @strawberry.field(description="A structure by id, or by site and hostname.")
    async def structure(
        self,
        info: Info,
        id: int | None = None,
        site: str | None = None,
        hostname: str | None = None,
    ) -> Structure | None:
        if id is None and (site is None or hostname is None):
            raise InvalidInput("give id, or both site and hostname", field="id")
        info.context.require("reader")
        async with info.context.sessions() as session:
            row = await inventory.find_structure(session, id=id, site=site, hostname=hostname)
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
            listing = await inventory.structures(session, plain(filter, filters.StructureFilter))
        return await paginate(info, listing, PageRequest(first, after), Structure.of)

    @strawberry.field
    async def complex(self, info: Info, name: str) -> Complex | None:
        row = await _found(info, building.get_complex, name)
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
        return await paginate(
            info, inventory.complexes(site), PageRequest(first, after), Complex.of
        )

    @strawberry.field
    async def dependency(self, info: Info, id: int) -> Dependency | None:
        row = await _found(info, building.get_dependency, id)
        return Dependency.of(row) if row else None

    @strawberry.field
    async def dependencies(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Dependency]:
        info.context.require("reader")
        listing = inventory.dependencies()
        return await paginate(info, listing, PageRequest(first, after), Dependency.of)

    @strawberry.field
    async def networks(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Network]:
        info.context.require("reader")
        return await paginate(info, inventory.networks(site), PageRequest(first, after), Network.of)

    @strawberry.field
    async def address_block(self, info: Info, id: int) -> AddressBlock | None:
        row = await _found(info, inventory.get_address_block_by_id, id)
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
        listing = inventory.address_blocks(site)
        return await paginate(info, listing, PageRequest(first, after), AddressBlock.of)

    @strawberry.field(description="The address allocated for an IP (in a site, if given).")
    async def address(self, info: Info, ip: str, site: str | None = None) -> BaseAddress | None:
        info.context.require("reader")
        async with info.context.sessions() as session:
            scope = None
            if site is not None:
                scope = await sites.get_site(session, site)
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
        return await paginate(info, inventory.zones(), PageRequest(first, after), Zone.of)

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
        return await paginate(info, inventory.users(), PageRequest(first, after), User.of)
