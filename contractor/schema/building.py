"""Foundations and structures in GraphQL: the machines with their interfaces, what is built
on them, their filtered lists, and their changes (complexes and dependencies:
``complexes``)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Annotated, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.errors import InvalidInput
from contractor.plugins import foundation_types
from contractor.schema.blueprint import BluePrintScope, FoundationBluePrint, Pxe, StructureBluePrint
from contractor.schema.boot import DhcpLease
from contractor.schema.common import (
    Row,
    given,
    given_object,
    json_object,
    load_one,
    optional,
    plain_fields,
)
from contractor.schema.configurable import Configurable
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.network import Address, Network
from contractor.schema.permissions import Operator, Reader
from contractor.schema.prefetch import related
from contractor.schema.site import Site, SiteScope
from contractor.services import batches, building, filters, interfaces, inventory, placement
from contractor.services import blueprint as bps
from contractor.services import site as sites
from contractor.services.common import UNSET
from contractor.services.records import is_a

if TYPE_CHECKING:
    from contractor.schema.complexes import Complex, Dependency

_COMPLEXES = "contractor.schema.complexes"


@strawberry.type(description="Where a hosted foundation is placed and what it takes there.")
class Placement:
    complex: str
    member: str = strawberry.field(description="The member Structure's hostname.")
    cpus: int
    memory_mb: int
    disk_gb: int
    pinned: bool = strawberry.field(description="The creator chose the member.")


@strawberry.type
class NetworkInterface(Row):
    id: int
    name: str
    physical_location: str
    mac: str | None
    is_provisioning: bool
    link_name: str | None
    row: strawberry.Private[models.RealNetworkInterface]
    from_records = True  # its row's values only (``prefetch.relations``)

    network: Network | None = related(models.Network.id, "network_id")
    pxe: Pxe | None = related(
        models.PXE.id, "pxe_id", description="What the machine boots next through this interface."
    )
    leases: list[DhcpLease] = related(
        models.DhcpLease.mac,
        "mac",
        order_by=(models.DhcpLease.id,),
        description="The DHCP leases reported for this interface's MAC.",
    )


@strawberry.enum
class FoundationState(enum.Enum):
    PLANNED = "planned"
    LOCATED = "located"
    BUILT = "built"


@strawberry.enum
class BuildState(enum.Enum):
    PLANNED = "planned"
    BUILT = "built"


@strawberry.type
class Foundation(Configurable):
    id: int
    locator: str
    type: str
    state: FoundationState
    located_at: dt.datetime | None
    built_at: dt.datetime | None
    id_map: JSON | None = strawberry.field(description="Hardware identity as reported.")
    created: dt.datetime
    updated: dt.datetime
    row: strawberry.Private[models.Foundation]
    from_records = True  # its row's values only (``prefetch.relations``; config: by key)

    @classmethod
    def of(cls, row: models.Foundation) -> Self:
        return cls.from_row(row, state=FoundationState(row.state))

    @strawberry.field(description="Classes for :Class config filters, from the type plugin.")
    def class_list(self) -> list[str]:
        plugin = foundation_types().get(self.row.type)
        return list(plugin.class_list) if plugin else []

    @strawberry.field(description="The type plugin's own fields (secrets never shown).")
    def type_fields(self) -> JSON:
        plugin = foundation_types().get(self.row.type)
        if plugin is None:
            return JSON({})
        hidden = {*plugin.secret_fields, *plugin.placement_fields}  # placement: see placement
        shown = [name for name in plugin.fields if name not in hidden]
        return JSON({name: getattr(self.row, name) for name in shown})

    @strawberry.field(description="Where a hosted type's foundation is placed (null: not placed).")
    async def placement(self, info: Info) -> Placement | None:
        loader = info.context.loaders.custom("placements", placement.placements_by_foundation)
        found: placement.Placed | None = await loader.load(self.row.id)
        if found is None:
            return None
        return Placement(
            complex=found.complex,
            member=found.member,
            cpus=found.demand.cpus,
            memory_mb=found.demand.memory_mb,
            disk_gb=found.demand.disk_gb,
            pinned=found.pinned,
        )

    site: Site = related(models.Site.id, "site_id")
    blueprint: FoundationBluePrint = related(models.BluePrint.id, "blueprint_id")
    interfaces: list[NetworkInterface] = related(
        models.RealNetworkInterface.foundation_id,
        "id",
        order_by=(models.RealNetworkInterface.physical_location,),
    )
    structure: Structure | None = related(models.Structure.foundation_id, "id")
    dependency: Annotated[Dependency, strawberry.lazy(_COMPLEXES)] | None = related(
        models.Dependency.foundation_id,
        "id",
        description="The dependency this foundation's create job waits for.",
    )


@strawberry.type
class StructureInterface(Row):
    id: int
    name: str
    row: strawberry.Private[models.AbstractNetworkInterface]

    network: Network | None = related(models.Network.id, "network_id")


@strawberry.type
class Structure(Configurable):
    id: int
    hostname: str
    state: BuildState
    config_uuid: str
    config_values: JSON
    built_at: dt.datetime | None
    created: dt.datetime
    updated: dt.datetime
    row: strawberry.Private[models.Structure]
    from_records = True  # its row's values only (``prefetch.relations``; config: by key)

    @classmethod
    def of(cls, row: models.Structure) -> Self:
        return cls.from_row(row, state=BuildState(row.state))

    site: Site = related(models.Site.id, "site_id")
    blueprint: StructureBluePrint = related(models.BluePrint.id, "blueprint_id")
    foundation: Foundation = related(models.Foundation.id, "foundation_id")
    addresses: list[Address] = related(
        models.BaseAddress.structure_id,
        "id",
        order_by=(models.BaseAddress.interface_name, models.BaseAddress.alias_index),
        keep=lambda row: is_a(row, models.Address),
        description="Addresses by interface name and alias index.",
    )
    interfaces: list[StructureInterface] = related(
        models.AbstractNetworkInterface.structure_id,
        "id",
        order_by=(models.AbstractNetworkInterface.name,),
        description="Logical interfaces of the structure itself (bonds, VLANs).",
    )

    @strawberry.field(
        description="The dependency records naming this structure, by id: those on it (what "
        "waits for it to be built) and those whose scripts run on it."
    )
    async def dependencies(
        self, info: Info
    ) -> list[Annotated[Dependency, strawberry.lazy(_COMPLEXES)]]:
        from contractor.schema.complexes import Dependency  # it imports this module

        loader = info.context.loaders.custom(
            "structure_dependencies", batches.dependencies_by_structure
        )
        return [Dependency.of(row) for row in await loader.load(self.row.id)]

    @strawberry.field
    async def complex(self, info: Info) -> Annotated[Complex, strawberry.lazy(_COMPLEXES)] | None:
        from contractor.schema.complexes import Complex  # it imports this module

        member = await load_one(info, models.ComplexMember.structure_id, self.row.id)
        if member is None:
            return None
        return Complex.of(await load_one(info, models.Complex.id, member.complex_id))


FoundationResult = Annotated[Foundation | AnyError, strawberry.union("FoundationResult")]
InterfaceResult = Annotated[NetworkInterface | AnyError, strawberry.union("InterfaceResult")]
StructureResult = Annotated[Structure | AnyError, strawberry.union("StructureResult")]
StructureInterfaceResult = Annotated[
    StructureInterface | AnyError, strawberry.union("StructureInterfaceResult")
]


@strawberry.input
class FoundationFilter:
    site: SiteScope | None = None
    blueprint: BluePrintScope | None = None
    type: list[str] | None = None
    state: list[FoundationState] | None = None
    locator: str | None = strawberry.field(default=None, description="Glob, e.g. 'rack1-*'.")
    complex: str | None = strawberry.field(
        default=None, description="Hosted by structures of this complex."
    )
    network: int | None = strawberry.field(
        default=None, description="Has an interface on this network id."
    )
    has_structure: bool | None = None

    def plain(self) -> filters.FoundationFilter:
        return filters.FoundationFilter(**plain_fields(self))


@strawberry.input
class StructureFilter:
    site: SiteScope | None = None
    blueprint: BluePrintScope | None = None
    state: list[BuildState] | None = None
    hostname: str | None = strawberry.field(default=None, description="Glob, e.g. 'web*'.")
    foundation_type: list[str] | None = None
    complex: str | None = strawberry.field(default=None, description="Members of this complex.")
    network: int | None = strawberry.field(
        default=None, description="Whose foundation has an interface on this network id."
    )
    address_block: int | None = strawberry.field(
        default=None, description="Holding an address in this block id."
    )

    def plain(self) -> filters.StructureFilter:
        return filters.StructureFilter(**plain_fields(self))


@strawberry.type
class BuildingQuery:
    foundation = lookup(Foundation, building.get_foundation, locator=str)
    foundations = connection(Foundation, inventory.foundations, filter=FoundationFilter)

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
        if row is None:
            return None
        info.context.loaders.known(row)
        return Structure.of(row)

    structures = connection(Structure, inventory.structures, filter=StructureFilter)


async def _network(session: AsyncSession, network_id: int | None) -> models.Network | None:
    return await optional(inventory.get_network_by_id, session, network_id)


async def _pxe(session: AsyncSession, name: str | None) -> models.PXE | None:
    return await optional(bps.get_pxe, session, name)


@strawberry.type
class BuildingMutation:
    @mutation(Operator)
    async def create_foundation(
        session: AsyncSession,
        locator: str,
        site: str,
        blueprint: str,
        type: str,
        type_fields: JSON | None = None,
    ) -> FoundationResult:
        row = await building.create_foundation(
            session,
            locator=locator,
            site=await sites.get_site(session, site),
            blueprint=await bps.get_foundation_blueprint(session, blueprint),
            type=type,
            fields=json_object(type_fields, "type_fields"),
        )
        return Foundation.of(row)

    @mutation(Operator)
    async def update_foundation(
        session: AsyncSession,
        locator: str,
        site: str | None = strawberry.UNSET,
        blueprint: str | None = strawberry.UNSET,
        type_fields: JSON | None = strawberry.UNSET,
    ) -> FoundationResult:
        row = await building.get_foundation(session, locator)
        await building.update_foundation(
            session,
            row,
            site=UNSET if not site else await sites.get_site(session, site),
            blueprint=UNSET
            if not blueprint
            else await bps.get_foundation_blueprint(session, blueprint),
            fields=None
            if type_fields is strawberry.UNSET
            else json_object(type_fields, "type_fields"),
        )
        return Foundation.of(row)

    delete_foundation = deletion(
        "Foundation", building.get_foundation, building.delete_foundation, locator=str
    )

    @mutation(Operator, description="Record the hardware identity a machine reported.")
    async def set_foundation_id_map(
        session: AsyncSession, locator: str, id_map: JSON
    ) -> FoundationResult:
        row = await building.get_foundation(session, locator)
        await building.set_id_map(session, row, json_object(id_map, "id_map"))
        return Foundation.of(row)

    @mutation(Operator, description="Mark a planned foundation located (checks the fingerprint).")
    async def locate_foundation(session: AsyncSession, locator: str) -> FoundationResult:
        row = await building.get_foundation(session, locator)
        await building.set_located(session, row)
        return Foundation.of(row)

    @mutation(Operator)
    async def add_interface(
        session: AsyncSession,
        locator: str,
        physical_location: str,
        name: str | None = None,
        mac: str | None = None,
        is_provisioning: bool = False,
        network: int | None = None,
        link_name: str | None = None,
        pxe: str | None = None,
    ) -> InterfaceResult:
        row = await interfaces.add_interface(
            session,
            foundation=await building.get_foundation(session, locator),
            physical_location=physical_location,
            name=name,
            mac=mac,
            is_provisioning=is_provisioning,
            network=await _network(session, network),
            link_name=link_name,
            pxe=await _pxe(session, pxe),
        )
        return NetworkInterface.of(row)

    @mutation(Operator)
    async def update_interface(
        session: AsyncSession,
        locator: str,
        physical_location: str,
        mac: str | None = strawberry.UNSET,
        is_provisioning: bool | None = strawberry.UNSET,
        network: int | None = strawberry.UNSET,
    ) -> InterfaceResult:
        row = await inventory.get_interface(session, locator, physical_location)
        await interfaces.update_interface(
            session,
            row,
            mac=given(mac),
            is_provisioning=given(is_provisioning),
            network=UNSET if network is strawberry.UNSET else await _network(session, network),
        )
        return NetworkInterface.of(row)

    @mutation(Operator, description="Choose what the machine boots next (null: nothing).")
    async def assign_pxe(
        session: AsyncSession, locator: str, physical_location: str, pxe: str | None
    ) -> InterfaceResult:
        row = await inventory.get_interface(session, locator, physical_location)
        await interfaces.update_interface(session, row, pxe=await _pxe(session, pxe))
        return NetworkInterface.of(row)

    delete_interface = deletion(
        "NetworkInterface",
        inventory.get_interface,
        interfaces.delete_interface,
        locator=str,
        physical_location=str,
    )

    @mutation(Operator)
    async def create_structure(
        session: AsyncSession,
        hostname: str,
        site: str,
        blueprint: str,
        foundation: str,
        config_values: JSON | None = None,
    ) -> StructureResult:
        row = await building.create_structure(
            session,
            hostname=hostname,
            site=await sites.get_site(session, site),
            blueprint=await bps.get_structure_blueprint(session, blueprint),
            foundation=await building.get_foundation(session, foundation),
            config_values=json_object(config_values, "config_values"),
        )
        return Structure.of(row)

    @mutation(Operator)
    async def update_structure(
        session: AsyncSession,
        id: int,
        hostname: str | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
    ) -> StructureResult:
        row = await building.get_structure_by_id(session, id)
        await building.update_structure(
            session,
            row,
            hostname=given(hostname),
            config_values=given_object(config_values, "config_values"),
        )
        return Structure.of(row)

    delete_structure = deletion(
        "Structure", building.get_structure_by_id, building.delete_structure, id=int
    )

    @mutation(Operator)
    async def add_structure_interface(
        session: AsyncSession, structure: int, name: str, network: int | None = None
    ) -> StructureInterfaceResult:
        row = await interfaces.add_abstract_interface(
            session,
            structure=await building.get_structure_by_id(session, structure),
            name=name,
            network=await _network(session, network),
        )
        return StructureInterface.of(row)
