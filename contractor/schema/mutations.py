"""Changes to the inventory. Each mutation runs in one transaction and returns its object or
one of the ``Error`` types; on an error nothing is changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.errors import ContractorError, InvalidInput
from contractor.schema.context import Info
from contractor.schema.errors import AnyError, to_graphql_error
from contractor.schema.types import (
    Address,
    AddressBlock,
    Complex,
    Dependency,
    DynamicAddress,
    Foundation,
    FoundationBluePrint,
    Network,
    NetworkInterface,
    Pxe,
    ReservedAddress,
    Script,
    Site,
    Structure,
    StructureBluePrint,
    StructureInterface,
    User,
    Zone,
    ZoneEntry,
    address_of,
    blueprint_of,
)
from contractor.services import auth, building, directory, inventory
from contractor.services import blueprint as bps
from contractor.services import network as net
from contractor.services import site as sites
from contractor.services.common import UNSET

T = TypeVar("T")

Errors = AnyError


@strawberry.type(description="What a delete mutation removed.")
class Deleted:
    kind: str
    id: int


@strawberry.type(description="A new API token; the text is shown only in this answer.")
class NewToken:
    token: str
    key: str
    user: User


SiteResult = Annotated[Site | Errors, strawberry.union("SiteResult")]
ZoneResult = Annotated[Zone | Errors, strawberry.union("ZoneResult")]
ZoneEntryResult = Annotated[ZoneEntry | Errors, strawberry.union("ZoneEntryResult")]
FoundationBluePrintResult = Annotated[
    FoundationBluePrint | Errors, strawberry.union("FoundationBluePrintResult")
]
StructureBluePrintResult = Annotated[
    StructureBluePrint | Errors, strawberry.union("StructureBluePrintResult")
]
BluePrintResult = Annotated[
    FoundationBluePrint | StructureBluePrint | Errors, strawberry.union("BluePrintResult")
]
ScriptResult = Annotated[Script | Errors, strawberry.union("ScriptResult")]
PxeResult = Annotated[Pxe | Errors, strawberry.union("PXEResult")]
FoundationResult = Annotated[Foundation | Errors, strawberry.union("FoundationResult")]
InterfaceResult = Annotated[NetworkInterface | Errors, strawberry.union("InterfaceResult")]
StructureResult = Annotated[Structure | Errors, strawberry.union("StructureResult")]
StructureInterfaceResult = Annotated[
    StructureInterface | Errors, strawberry.union("StructureInterfaceResult")
]
ComplexResult = Annotated[Complex | Errors, strawberry.union("ComplexResult")]
DependencyResult = Annotated[Dependency | Errors, strawberry.union("DependencyResult")]
NetworkResult = Annotated[Network | Errors, strawberry.union("NetworkResult")]
AddressBlockResult = Annotated[AddressBlock | Errors, strawberry.union("AddressBlockResult")]
AddressResult = Annotated[Address | Errors, strawberry.union("AddressResult")]
ReservedAddressResult = Annotated[
    ReservedAddress | Errors, strawberry.union("ReservedAddressResult")
]
DynamicAddressResult = Annotated[DynamicAddress | Errors, strawberry.union("DynamicAddressResult")]
DeleteResult = Annotated[Deleted | Errors, strawberry.union("DeleteResult")]
UserResult = Annotated[User | Errors, strawberry.union("UserResult")]
TokenResult = Annotated[NewToken | Errors, strawberry.union("TokenResult")]


async def _mutate(
    info: Info, role: str, work: Callable[[AsyncSession], Awaitable[T]]
) -> T | AnyError:
    """Run ``work`` in one transaction as a caller with ``role``; errors roll it back."""
    try:
        principal = info.context.require(role)
        async with info.context.writer_sessions() as session, session.begin():
            session.info["actor"] = principal.username  # for the events it writes
            return await work(session)
    except ContractorError as error:
        return to_graphql_error(error)


def _given(value: Any) -> Any:
    """strawberry's 'argument not given' as the services' UNSET."""
    return UNSET if value is strawberry.UNSET else value


async def _site(session: AsyncSession, name: str | None) -> models.Site | None:
    return None if name is None else await sites.get_site(session, name)


async def _zone(session: AsyncSession, fqdn: str | None) -> models.Zone | None:
    return None if fqdn is None else await directory.find_zone(session, fqdn)


async def _fbps(session: AsyncSession, names: list[str]) -> list[models.FoundationBluePrint]:
    return [await bps.get_foundation_blueprint(session, n) for n in names]


async def _sbps(session: AsyncSession, names: list[str]) -> list[models.StructureBluePrint]:
    return [await bps.get_structure_blueprint(session, n) for n in names]


async def _structure(session: AsyncSession, structure_id: int) -> models.Structure:
    return await building.get_structure_by_id(session, structure_id)


async def _block(session: AsyncSession, block_id: int) -> models.AddressBlock:
    return await inventory.get_address_block_by_id(session, block_id)


async def _network(session: AsyncSession, network_id: int | None) -> models.Network | None:
    return None if network_id is None else await inventory.get_network_by_id(session, network_id)


async def _pxe(session: AsyncSession, name: str | None) -> models.PXE | None:
    return None if name is None else await bps.get_pxe(session, name)


def _json_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    return value


@strawberry.type
class Mutation:
    # -- sites and zones ---------------------------------------------------------------

    @strawberry.mutation
    async def create_site(
        self,
        info: Info,
        name: str,
        description: str = "",
        parent: str | None = None,
        zone: str | None = None,
        config_values: JSON | None = None,
    ) -> SiteResult:
        async def work(session: AsyncSession) -> Site:
            row = await sites.create_site(
                session,
                name=name,
                description=description,
                parent=await _site(session, parent),
                zone=await _zone(session, zone),
                config_values=_json_object(config_values, "config_values"),
            )
            return Site.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Change the given fields; null parent or zone clears it.")
    async def update_site(
        self,
        info: Info,
        name: str,
        description: str | None = strawberry.UNSET,
        parent: str | None = strawberry.UNSET,
        zone: str | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
    ) -> SiteResult:
        async def work(session: AsyncSession) -> Site:
            row = await sites.get_site(session, name)
            await sites.update_site(
                session,
                row,
                description=_given(description),
                parent=UNSET if parent is strawberry.UNSET else await _site(session, parent),
                zone=UNSET if zone is strawberry.UNSET else await _zone(session, zone),
                config_values=UNSET
                if config_values is strawberry.UNSET
                else _json_object(config_values, "config_values"),
            )
            return Site.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_site(self, info: Info, name: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await sites.get_site(session, name)
            await sites.delete_site(session, row)
            return Deleted(kind="Site", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(
        description="A zone; parent is the dotted name of the parent zone; name servers and "
        "the SOA mailbox are inherited from the parent when not given."
    )
    async def create_zone(
        self,
        info: Info,
        name: str,
        parent: str | None = None,
        ttl: int = 3600,
        nameservers: list[str] | None = None,
        soa_email: str | None = None,
    ) -> ZoneResult:
        async def work(session: AsyncSession) -> Zone:
            row = await directory.create_zone(
                session,
                name=name,
                parent=await _zone(session, parent),
                ttl=ttl,
                nameservers=nameservers or [],
                soa_email=soa_email,
            )
            return Zone.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Add a CNAME, MX, NS, SRV or TXT record to a zone.")
    async def create_zone_entry(
        self,
        info: Info,
        zone: str,
        type: str,
        name: str,
        target: str | None = None,
        text: str | None = None,
        priority: int | None = None,
        weight: int | None = None,
        port: int | None = None,
        ttl: int | None = None,
    ) -> ZoneEntryResult:
        async def work(session: AsyncSession) -> ZoneEntry:
            row = await directory.create_entry(
                session,
                zone=await directory.find_zone(session, zone),
                type=type,
                name=name,
                target=target,
                text=text,
                priority=priority,
                weight=weight,
                port=port,
                ttl=ttl,
            )
            return ZoneEntry.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_zone_entry(self, info: Info, id: int) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            await directory.delete_entry(session, await directory.get_entry(session, id))
            return Deleted(kind="ZoneEntry", id=id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_zone(self, info: Info, fqdn: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await directory.find_zone(session, fqdn)
            await directory.delete_zone(session, row)
            return Deleted(kind="Zone", id=row.id)

        return await _mutate(info, "operator", work)

    # -- blueprints, scripts, PXE ------------------------------------------------------

    @strawberry.mutation
    async def create_foundation_blueprint(
        self,
        info: Info,
        name: str,
        description: str = "",
        parents: list[str] | None = None,
        foundation_types: list[str] | None = None,
        physical_interface_names: list[str] | None = None,
        min_cpu_count: int | None = None,
        min_memory_mb: int | None = None,
        required_pci_devices: list[str] | None = None,
        required_disks_gb: list[int] | None = None,
        config_values: JSON | None = None,
    ) -> FoundationBluePrintResult:
        async def work(session: AsyncSession) -> FoundationBluePrint:
            row = await bps.create_foundation_blueprint(
                session,
                name=name,
                description=description,
                parents=await _fbps(session, parents or []),
                foundation_types=foundation_types or [],
                physical_interface_names=physical_interface_names or [],
                min_cpu_count=min_cpu_count,
                min_memory_mb=min_memory_mb,
                required_pci_devices=required_pci_devices or [],
                required_disks_gb=required_disks_gb or [],
                config_values=_json_object(config_values, "config_values"),
            )
            return FoundationBluePrint.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def create_structure_blueprint(
        self,
        info: Info,
        name: str,
        description: str = "",
        parents: list[str] | None = None,
        foundation_blueprints: list[str] | None = None,
        config_values: JSON | None = None,
    ) -> StructureBluePrintResult:
        async def work(session: AsyncSession) -> StructureBluePrint:
            row = await bps.create_structure_blueprint(
                session,
                name=name,
                description=description,
                parents=await _sbps(session, parents or []),
                foundation_blueprints=await _fbps(session, foundation_blueprints or []),
                config_values=_json_object(config_values, "config_values"),
            )
            return StructureBluePrint.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Change a blueprint of either kind; only given fields change.")
    async def update_blueprint(
        self,
        info: Info,
        name: str,
        description: str | None = strawberry.UNSET,
        parents: list[str] | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
        foundation_types: list[str] | None = strawberry.UNSET,
        foundation_blueprints: list[str] | None = strawberry.UNSET,
        min_cpu_count: int | None = strawberry.UNSET,
        min_memory_mb: int | None = strawberry.UNSET,
    ) -> BluePrintResult:
        async def work(session: AsyncSession) -> FoundationBluePrint | StructureBluePrint:
            row = await bps.get_blueprint(session, name)
            fields: dict[str, Any] = {}
            for key, value in (
                ("foundation_types", foundation_types),
                ("min_cpu_count", min_cpu_count),
                ("min_memory_mb", min_memory_mb),
            ):
                if value is not strawberry.UNSET:
                    fields[key] = value or [] if key == "foundation_types" else value
            if foundation_blueprints is not strawberry.UNSET:
                fields["foundation_blueprints"] = await _fbps(session, foundation_blueprints or [])
            parent_rows: Any = UNSET
            if parents is not strawberry.UNSET:
                parent_rows = [await bps.get_blueprint(session, p) for p in parents or []]
            await bps.update_blueprint(
                session,
                row,
                description=_given(description),
                config_values=UNSET
                if config_values is strawberry.UNSET
                else _json_object(config_values, "config_values"),
                parents=parent_rows,
                **fields,
            )
            return cast(FoundationBluePrint | StructureBluePrint, blueprint_of(row))

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_blueprint(self, info: Info, name: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await bps.get_blueprint(session, name)
            await bps.delete_blueprint(session, row)
            return Deleted(kind="BluePrint", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def create_script(
        self, info: Info, name: str, source: str, description: str = ""
    ) -> ScriptResult:
        async def work(session: AsyncSession) -> Script:
            row = await bps.create_script(
                session, name=name, source=source, description=description
            )
            return Script.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def update_script(
        self,
        info: Info,
        name: str,
        source: str | None = strawberry.UNSET,
        description: str | None = strawberry.UNSET,
    ) -> ScriptResult:
        async def work(session: AsyncSession) -> Script:
            row = await bps.get_script(session, name)
            await bps.update_script(
                session, row, source=_given(source), description=_given(description)
            )
            return Script.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_script(self, info: Info, name: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await bps.get_script(session, name)
            await bps.delete_script(session, row)
            return Deleted(kind="Script", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Use a script for a blueprint's role (create, destroy, ...).")
    async def link_script(
        self, info: Info, blueprint: str, role: str, script: str
    ) -> BluePrintResult:
        async def work(session: AsyncSession) -> FoundationBluePrint | StructureBluePrint:
            row = await bps.get_blueprint(session, blueprint)
            await bps.link_script(
                session, blueprint=row, role=role, script=await bps.get_script(session, script)
            )
            return cast(FoundationBluePrint | StructureBluePrint, blueprint_of(row))

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def unlink_script(self, info: Info, blueprint: str, role: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await bps.get_blueprint(session, blueprint)
            await bps.unlink_script(session, blueprint=row, role=role)
            return Deleted(kind="ScriptLink", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(name="createPXE")
    async def create_pxe(
        self, info: Info, name: str, boot_script: str = "", template: str = ""
    ) -> PxeResult:
        async def work(session: AsyncSession) -> Pxe:
            row = await bps.create_pxe(
                session, name=name, boot_script=boot_script, template=template
            )
            return Pxe.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(name="deletePXE")
    async def delete_pxe(self, info: Info, name: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await bps.get_pxe(session, name)
            await bps.delete_pxe(session, row)
            return Deleted(kind="PXE", id=row.id)

        return await _mutate(info, "operator", work)

    # -- foundations and interfaces -----------------------------------------------------

    @strawberry.mutation
    async def create_foundation(
        self,
        info: Info,
        locator: str,
        site: str,
        blueprint: str,
        type: str,
        type_fields: JSON | None = None,
    ) -> FoundationResult:
        async def work(session: AsyncSession) -> Foundation:
            row = await building.create_foundation(
                session,
                locator=locator,
                site=await sites.get_site(session, site),
                blueprint=await bps.get_foundation_blueprint(session, blueprint),
                type=type,
                fields=_json_object(type_fields, "type_fields"),
            )
            return Foundation.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def update_foundation(
        self,
        info: Info,
        locator: str,
        site: str | None = strawberry.UNSET,
        blueprint: str | None = strawberry.UNSET,
        type_fields: JSON | None = strawberry.UNSET,
    ) -> FoundationResult:
        async def work(session: AsyncSession) -> Foundation:
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
                else _json_object(type_fields, "type_fields"),
            )
            return Foundation.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_foundation(self, info: Info, locator: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await building.get_foundation(session, locator)
            await building.delete_foundation(session, row)
            return Deleted(kind="Foundation", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Record the hardware identity a machine reported.")
    async def set_foundation_id_map(
        self, info: Info, locator: str, id_map: JSON
    ) -> FoundationResult:
        async def work(session: AsyncSession) -> Foundation:
            row = await building.get_foundation(session, locator)
            await building.set_id_map(session, row, _json_object(id_map, "id_map"))
            return Foundation.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Mark a planned foundation located (checks the fingerprint).")
    async def locate_foundation(self, info: Info, locator: str) -> FoundationResult:
        async def work(session: AsyncSession) -> Foundation:
            row = await building.get_foundation(session, locator)
            await building.set_located(session, row)
            return Foundation.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def add_interface(
        self,
        info: Info,
        locator: str,
        physical_location: str,
        name: str | None = None,
        mac: str | None = None,
        is_provisioning: bool = False,
        network: int | None = None,
        link_name: str | None = None,
        pxe: str | None = None,
    ) -> InterfaceResult:
        async def work(session: AsyncSession) -> NetworkInterface:
            row = await building.add_interface(
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

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def update_interface(
        self,
        info: Info,
        locator: str,
        physical_location: str,
        mac: str | None = strawberry.UNSET,
        is_provisioning: bool | None = strawberry.UNSET,
        network: int | None = strawberry.UNSET,
    ) -> InterfaceResult:
        async def work(session: AsyncSession) -> NetworkInterface:
            row = await inventory.get_interface(session, locator, physical_location)
            await building.update_interface(
                session,
                row,
                mac=_given(mac),
                is_provisioning=_given(is_provisioning),
                network=UNSET if network is strawberry.UNSET else await _network(session, network),
            )
            return NetworkInterface.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Choose what the machine boots next (null: nothing).")
    async def assign_pxe(
        self, info: Info, locator: str, physical_location: str, pxe: str | None
    ) -> InterfaceResult:
        async def work(session: AsyncSession) -> NetworkInterface:
            row = await inventory.get_interface(session, locator, physical_location)
            await building.update_interface(session, row, pxe=await _pxe(session, pxe))
            return NetworkInterface.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_interface(
        self, info: Info, locator: str, physical_location: str
    ) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await inventory.get_interface(session, locator, physical_location)
            await building.delete_interface(session, row)
            return Deleted(kind="NetworkInterface", id=row.id)

        return await _mutate(info, "operator", work)

    # -- structures ----------------------------------------------------------------------

    @strawberry.mutation
    async def create_structure(
        self,
        info: Info,
        hostname: str,
        site: str,
        blueprint: str,
        foundation: str,
        config_values: JSON | None = None,
    ) -> StructureResult:
        async def work(session: AsyncSession) -> Structure:
            row = await building.create_structure(
                session,
                hostname=hostname,
                site=await sites.get_site(session, site),
                blueprint=await bps.get_structure_blueprint(session, blueprint),
                foundation=await building.get_foundation(session, foundation),
                config_values=_json_object(config_values, "config_values"),
            )
            return Structure.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def update_structure(
        self,
        info: Info,
        id: int,
        hostname: str | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
    ) -> StructureResult:
        async def work(session: AsyncSession) -> Structure:
            row = await _structure(session, id)
            await building.update_structure(
                session,
                row,
                hostname=_given(hostname),
                config_values=UNSET
                if config_values is strawberry.UNSET
                else _json_object(config_values, "config_values"),
            )
            return Structure.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_structure(self, info: Info, id: int) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await _structure(session, id)
            await building.delete_structure(session, row)
            return Deleted(kind="Structure", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def add_structure_interface(
        self, info: Info, structure: int, name: str, network: int | None = None
    ) -> StructureInterfaceResult:
        async def work(session: AsyncSession) -> StructureInterface:
            row = await building.add_abstract_interface(
                session,
                structure=await _structure(session, structure),
                name=name,
                network=await _network(session, network),
            )
            return StructureInterface(id=row.id, name=row.name, row=row)

        return await _mutate(info, "operator", work)

    # -- complexes and dependencies ------------------------------------------------------

    @strawberry.mutation
    async def create_complex(
        self,
        info: Info,
        name: str,
        site: str,
        description: str = "",
        built_percentage: int = 90,
    ) -> ComplexResult:
        async def work(session: AsyncSession) -> Complex:
            row = await building.create_complex(
                session,
                name=name,
                site=await sites.get_site(session, site),
                description=description,
                built_percentage=built_percentage,
            )
            return Complex.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def add_complex_member(self, info: Info, complex: str, structure: int) -> ComplexResult:
        async def work(session: AsyncSession) -> Complex:
            row = await building.get_complex(session, complex)
            await building.add_complex_member(session, row, await _structure(session, structure))
            return Complex.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def remove_complex_member(
        self, info: Info, complex: str, structure: int
    ) -> ComplexResult:
        async def work(session: AsyncSession) -> Complex:
            row = await building.get_complex(session, complex)
            await building.remove_complex_member(session, row, await _structure(session, structure))
            return Complex.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_complex(self, info: Info, name: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await building.get_complex(session, name)
            await building.delete_complex(session, row)
            return Deleted(kind="Complex", id=row.id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def create_dependency(
        self,
        info: Info,
        structure: int | None = None,
        dependency: int | None = None,
        foundation: str | None = None,
        script_structure: int | None = None,
        link: str = "soft",
        create_script_name: str | None = None,
        destroy_script_name: str | None = None,
    ) -> DependencyResult:
        async def work(session: AsyncSession) -> Dependency:
            row = await building.create_dependency(
                session,
                structure=None if structure is None else await _structure(session, structure),
                dependency=None
                if dependency is None
                else await building.get_dependency(session, dependency),
                foundation=None
                if foundation is None
                else await building.get_foundation(session, foundation),
                script_structure=None
                if script_structure is None
                else await _structure(session, script_structure),
                link=link,
                create_script_name=create_script_name,
                destroy_script_name=destroy_script_name,
            )
            return Dependency.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_dependency(self, info: Info, id: int) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await building.get_dependency(session, id)
            await building.delete_dependency(session, row)
            return Deleted(kind="Dependency", id=row.id)

        return await _mutate(info, "operator", work)

    # -- networks and addresses ----------------------------------------------------------

    @strawberry.mutation
    async def create_network(
        self, info: Info, site: str, name: str, mtu: int | None = None
    ) -> NetworkResult:
        async def work(session: AsyncSession) -> Network:
            row = await net.create_network(
                session, site=await sites.get_site(session, site), name=name, mtu=mtu
            )
            return Network.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_network(self, info: Info, id: int) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            row = await _network(session, id)
            assert row is not None
            await net.delete_network(session, row)
            return Deleted(kind="Network", id=id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Carry an address block on a network (vlan null: untagged).")
    async def link_address_block(
        self, info: Info, network: int, address_block: int, vlan: int | None = None
    ) -> NetworkResult:
        async def work(session: AsyncSession) -> Network:
            row = await _network(session, network)
            assert row is not None
            await net.link_address_block(
                session, network=row, block=await _block(session, address_block), vlan=vlan
            )
            return Network.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def create_address_block(
        self,
        info: Info,
        site: str,
        name: str,
        subnet: str,
        gateway_offset: int | None = None,
    ) -> AddressBlockResult:
        async def work(session: AsyncSession) -> AddressBlock:
            row = await net.create_address_block(
                session,
                site=await sites.get_site(session, site),
                name=name,
                subnet=subnet,
                gateway_offset=gateway_offset,
            )
            return AddressBlock.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def update_address_block(
        self,
        info: Info,
        id: int,
        subnet: str | None = strawberry.UNSET,
        gateway_offset: int | None = strawberry.UNSET,
    ) -> AddressBlockResult:
        async def work(session: AsyncSession) -> AddressBlock:
            row = await _block(session, id)
            await net.update_address_block(
                session, row, subnet=_given(subnet), gateway_offset=_given(gateway_offset)
            )
            return AddressBlock.of(row)

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_address_block(self, info: Info, id: int) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            await net.delete_address_block(session, await _block(session, id))
            return Deleted(kind="AddressBlock", id=id)

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Give a structure the lowest free address of a block.")
    async def allocate_address(
        self,
        info: Info,
        structure: int,
        address_block: int,
        interface_name: str,
        alias_index: int = 0,
        is_primary: bool = False,
        offset: Annotated[
            int | None,
            strawberry.argument(description="A specific offset instead of the lowest free one."),
        ] = None,
    ) -> AddressResult:
        async def work(session: AsyncSession) -> Address:
            row = await net.create_address(
                session,
                structure=await _structure(session, structure),
                block=await _block(session, address_block),
                offset=offset,
                interface_name=interface_name,
                alias_index=alias_index,
                is_primary=is_primary,
            )
            made = address_of(row)
            assert isinstance(made, Address)
            return made

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def reserve_address(
        self, info: Info, address_block: int, offset: int, reason: str
    ) -> ReservedAddressResult:
        async def work(session: AsyncSession) -> ReservedAddress:
            row = await net.create_reserved_address(
                session, block=await _block(session, address_block), offset=offset, reason=reason
            )
            made = address_of(row)
            assert isinstance(made, ReservedAddress)
            return made

        return await _mutate(info, "operator", work)

    @strawberry.mutation(description="Add an offset to the block's DHCP dynamic pool.")
    async def add_dynamic_address(
        self, info: Info, address_block: int, offset: int, pxe: str | None = None
    ) -> DynamicAddressResult:
        async def work(session: AsyncSession) -> DynamicAddress:
            row = await net.create_dynamic_address(
                session,
                block=await _block(session, address_block),
                offset=offset,
                pxe=await _pxe(session, pxe),
            )
            made = address_of(row)
            assert isinstance(made, DynamicAddress)
            return made

        return await _mutate(info, "operator", work)

    @strawberry.mutation
    async def delete_address(self, info: Info, id: int) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            await net.delete_address(session, await inventory.get_address_by_id(session, id))
            return Deleted(kind="Address", id=id)

        return await _mutate(info, "operator", work)

    # -- users and tokens ----------------------------------------------------------------

    @strawberry.mutation(description="Exchange a username and password for an API token.")
    async def login(self, info: Info, username: str, password: str) -> TokenResult:
        try:
            async with info.context.writer_sessions() as session, session.begin():
                user = await auth.authenticate_password(session, username, password)
                new = await auth.create_token(
                    session,
                    user=user,
                    description="login",
                    hasher=info.context.settings.password_hasher(),
                )
                return NewToken(token=new.text, key=new.token.key, user=User.of(user))
        except ContractorError as error:
            return to_graphql_error(error)

    @strawberry.mutation
    async def create_user(
        self, info: Info, username: str, role: str, password: str | None = None
    ) -> UserResult:
        async def work(session: AsyncSession) -> User:
            row = await auth.create_user(
                session,
                username=username,
                role=role,
                password=password,
                hasher=info.context.settings.password_hasher(),
            )
            return User.of(row)

        return await _mutate(info, "admin", work)

    @strawberry.mutation
    async def create_token(self, info: Info, username: str, description: str = "") -> TokenResult:
        async def work(session: AsyncSession) -> NewToken:
            user = await auth.get_user(session, username)
            new = await auth.create_token(
                session,
                user=user,
                description=description,
                hasher=info.context.settings.password_hasher(),
            )
            return NewToken(token=new.text, key=new.token.key, user=User.of(user))

        return await _mutate(info, "admin", work)

    @strawberry.mutation
    async def revoke_token(self, info: Info, key: str) -> DeleteResult:
        async def work(session: AsyncSession) -> Deleted:
            await auth.revoke_token(session, key)
            return Deleted(kind="ApiToken", id=0)

        return await _mutate(info, "admin", work)
