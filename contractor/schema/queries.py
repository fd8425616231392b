"""Read access to the inventory graph: single objects by their natural keys, and filtered,
keyset-paginated lists."""

from __future__ import annotations

import enum

import strawberry

from contractor.errors import InvalidInput, NotFound
from contractor.schema.common import found
from contractor.schema.context import Info
from contractor.schema.filters import FoundationFilter, SiteFilter, StructureFilter, plain
from contractor.schema.pagination import Connection, PageRequest, paginate
from contractor.schema.permissions import Admin, Reader
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
    @strawberry.field(description="The caller.", extensions=[Reader()])
    async def me(self, info: Info) -> User:
        principal = info.context.principal
        assert principal is not None  # the permission admitted someone
        row = await found(info, inventory.get_user_by_id, principal.user_id)
        assert row is not None  # users are never deleted
        return User.of(row)

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

    @strawberry.field(extensions=[Reader()])
    async def blueprint(self, info: Info, name: str) -> BluePrint | None:
        row = await found(info, bps.get_blueprint, name)
        return blueprint_of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def blueprints(
        self,
        info: Info,
        kind: BluePrintKind | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[BluePrint]:
        listing = inventory.blueprints(None if kind is None else kind.value)
        return await paginate(info, listing, PageRequest(first, after), blueprint_of)

    @strawberry.field(extensions=[Reader()])
    async def script(self, info: Info, name: str) -> Script | None:
        row = await found(info, bps.get_script, name)
        return Script.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def scripts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Script]:
        return await paginate(info, inventory.scripts(), PageRequest(first, after), Script.of)

    @strawberry.field(name="pxe", extensions=[Reader()])
    async def pxe(self, info: Info, name: str) -> Pxe | None:
        row = await found(info, bps.get_pxe, name)
        return Pxe.of(row) if row else None

    @strawberry.field(name="pxes", extensions=[Reader()])
    async def pxes(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Pxe]:
        return await paginate(info, inventory.pxes(), PageRequest(first, after), Pxe.of)

    @strawberry.field(extensions=[Reader()])
    async def foundation(self, info: Info, locator: str) -> Foundation | None:
        row = await found(info, building.get_foundation, locator)
        return Foundation.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def foundations(
        self,
        info: Info,
        filter: FoundationFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Foundation]:
        async with info.context.sessions() as session:
            listing = await inventory.foundations(session, plain(filter, filters.FoundationFilter))
        return await paginate(info, listing, PageRequest(first, after), Foundation.of)

    @strawberry.field(
        description="A structure by id, or by site and hostname.", extensions=[Reader()]
    )
    async def structure(
        self,
        info: Info,
        id: int | None = None,
        site: str | None = None,
        hostname: str | None = None,
    ) -> Structure | None:
        if id is None and (site is None or hostname is None):
            raise InvalidInput("give id, or both site and hostname", field="id")
        async with info.context.sessions() as session:
            row = await inventory.find_structure(session, id=id, site=site, hostname=hostname)
        return Structure.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def structures(
        self,
        info: Info,
        filter: StructureFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Structure]:
        async with info.context.sessions() as session:
            listing = await inventory.structures(session, plain(filter, filters.StructureFilter))
        return await paginate(info, listing, PageRequest(first, after), Structure.of)

    @strawberry.field(extensions=[Reader()])
    async def complex(self, info: Info, name: str) -> Complex | None:
        row = await found(info, building.get_complex, name)
        return Complex.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def complexes(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Complex]:
        return await paginate(
            info, inventory.complexes(site), PageRequest(first, after), Complex.of
        )

    @strawberry.field(extensions=[Reader()])
    async def dependency(self, info: Info, id: int) -> Dependency | None:
        row = await found(info, building.get_dependency, id)
        return Dependency.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def dependencies(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Dependency]:
        listing = inventory.dependencies()
        return await paginate(info, listing, PageRequest(first, after), Dependency.of)

    @strawberry.field(extensions=[Reader()])
    async def networks(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Network]:
        return await paginate(info, inventory.networks(site), PageRequest(first, after), Network.of)

    @strawberry.field(extensions=[Reader()])
    async def address_block(self, info: Info, id: int) -> AddressBlock | None:
        row = await found(info, inventory.get_address_block_by_id, id)
        return AddressBlock.of(row) if row else None

    @strawberry.field(extensions=[Reader()])
    async def address_blocks(
        self,
        info: Info,
        site: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AddressBlock]:
        listing = inventory.address_blocks(site)
        return await paginate(info, listing, PageRequest(first, after), AddressBlock.of)

    @strawberry.field(
        description="The address allocated for an IP (in a site, if given).",
        extensions=[Reader()],
    )
    async def address(self, info: Info, ip: str, site: str | None = None) -> BaseAddress | None:
        async with info.context.sessions() as session:
            scope = None
            if site is not None:
                scope = await sites.get_site(session, site)
            try:
                row = await network_service.lookup_address(session, ip, site=scope)
            except NotFound:
                return None
        return address_of(row)

    @strawberry.field(
        description="A zone by its dotted name, e.g. 'dc1.example'.", extensions=[Reader()]
    )
    async def zone(self, info: Info, fqdn: str) -> Zone | None:
        async with info.context.sessions() as session:
            try:
                return Zone.of(await directory.find_zone(session, fqdn))
            except NotFound:
                return None

    @strawberry.field(extensions=[Reader()])
    async def zones(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Zone]:
        return await paginate(info, inventory.zones(), PageRequest(first, after), Zone.of)

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

    @strawberry.field(description="Every user (admins only).", extensions=[Admin()])
    async def users(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[User]:
        return await paginate(info, inventory.users(), PageRequest(first, after), User.of)
