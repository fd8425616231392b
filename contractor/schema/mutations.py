"""Changes to the inventory. Each mutation runs in one transaction and returns its object or
one of the ``Error`` types; on an error nothing is changed."""

from __future__ import annotations

from typing import Annotated, Any, cast

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.schema.common import Deleted, DeleteResult, given, json_object, mutation
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.permissions import Admin, Operator
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

Errors = AnyError


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
UserResult = Annotated[User | Errors, strawberry.union("UserResult")]
TokenResult = Annotated[NewToken | Errors, strawberry.union("TokenResult")]


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


@strawberry.type
class Mutation:
    # -- sites and zones ---------------------------------------------------------------

    @mutation(Operator)
    async def create_site(
        session: AsyncSession,
        name: str,
        description: str = "",
        parent: str | None = None,
        zone: str | None = None,
        config_values: JSON | None = None,
    ) -> SiteResult:
        row = await sites.create_site(
            session,
            name=name,
            description=description,
            parent=await _site(session, parent),
            zone=await _zone(session, zone),
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
        row = await sites.get_site(session, name)
        await sites.update_site(
            session,
            row,
            description=given(description),
            parent=UNSET if parent is strawberry.UNSET else await _site(session, parent),
            zone=UNSET if zone is strawberry.UNSET else await _zone(session, zone),
            config_values=UNSET
            if config_values is strawberry.UNSET
            else json_object(config_values, "config_values"),
        )
        return Site.of(row)

    @mutation(Operator)
    async def delete_site(session: AsyncSession, name: str) -> DeleteResult:
        row = await sites.get_site(session, name)
        await sites.delete_site(session, row)
        return Deleted(kind="Site", id=row.id)

    @mutation(
        Operator,
        description="A zone; parent is the dotted name of the parent zone; name servers and "
        "the SOA mailbox are inherited from the parent when not given.",
    )
    async def create_zone(
        session: AsyncSession,
        name: str,
        parent: str | None = None,
        ttl: int = 3600,
        nameservers: list[str] | None = None,
        soa_email: str | None = None,
    ) -> ZoneResult:
        row = await directory.create_zone(
            session,
            name=name,
            parent=await _zone(session, parent),
            ttl=ttl,
            nameservers=nameservers or [],
            soa_email=soa_email,
        )
        return Zone.of(row)

    @mutation(Operator, description="Add a CNAME, MX, NS, SRV or TXT record to a zone.")
    async def create_zone_entry(
        session: AsyncSession,
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

    @mutation(Operator)
    async def delete_zone_entry(session: AsyncSession, id: int) -> DeleteResult:
        await directory.delete_entry(session, await directory.get_entry(session, id))
        return Deleted(kind="ZoneEntry", id=id)

    @mutation(Operator)
    async def delete_zone(session: AsyncSession, fqdn: str) -> DeleteResult:
        row = await directory.find_zone(session, fqdn)
        await directory.delete_zone(session, row)
        return Deleted(kind="Zone", id=row.id)

    # -- blueprints, scripts, PXE ------------------------------------------------------

    @mutation(Operator)
    async def create_foundation_blueprint(
        session: AsyncSession,
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
            config_values=json_object(config_values, "config_values"),
        )
        return FoundationBluePrint.of(row)

    @mutation(Operator)
    async def create_structure_blueprint(
        session: AsyncSession,
        name: str,
        description: str = "",
        parents: list[str] | None = None,
        foundation_blueprints: list[str] | None = None,
        config_values: JSON | None = None,
    ) -> StructureBluePrintResult:
        row = await bps.create_structure_blueprint(
            session,
            name=name,
            description=description,
            parents=await _sbps(session, parents or []),
            foundation_blueprints=await _fbps(session, foundation_blueprints or []),
            config_values=json_object(config_values, "config_values"),
        )
        return StructureBluePrint.of(row)

    @mutation(Operator, description="Change a blueprint of either kind; only given fields change.")
    async def update_blueprint(
        session: AsyncSession,
        name: str,
        description: str | None = strawberry.UNSET,
        parents: list[str] | None = strawberry.UNSET,
        config_values: JSON | None = strawberry.UNSET,
        foundation_types: list[str] | None = strawberry.UNSET,
        foundation_blueprints: list[str] | None = strawberry.UNSET,
        min_cpu_count: int | None = strawberry.UNSET,
        min_memory_mb: int | None = strawberry.UNSET,
    ) -> BluePrintResult:
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
            description=given(description),
            config_values=UNSET
            if config_values is strawberry.UNSET
            else json_object(config_values, "config_values"),
            parents=parent_rows,
            **fields,
        )
        return cast(FoundationBluePrint | StructureBluePrint, blueprint_of(row))

    @mutation(Operator)
    async def delete_blueprint(session: AsyncSession, name: str) -> DeleteResult:
        row = await bps.get_blueprint(session, name)
        await bps.delete_blueprint(session, row)
        return Deleted(kind="BluePrint", id=row.id)

    @mutation(Operator)
    async def create_script(
        session: AsyncSession, name: str, source: str, description: str = ""
    ) -> ScriptResult:
        row = await bps.create_script(session, name=name, source=source, description=description)
        return Script.of(row)

    @mutation(Operator)
    async def update_script(
        session: AsyncSession,
        name: str,
        source: str | None = strawberry.UNSET,
        description: str | None = strawberry.UNSET,
    ) -> ScriptResult:
        row = await bps.get_script(session, name)
        await bps.update_script(session, row, source=given(source), description=given(description))
        return Script.of(row)

    @mutation(Operator)
    async def delete_script(session: AsyncSession, name: str) -> DeleteResult:
        row = await bps.get_script(session, name)
        await bps.delete_script(session, row)
        return Deleted(kind="Script", id=row.id)

    @mutation(Operator, description="Use a script for a blueprint's role (create, destroy, ...).")
    async def link_script(
        session: AsyncSession, blueprint: str, role: str, script: str
    ) -> BluePrintResult:
        row = await bps.get_blueprint(session, blueprint)
        await bps.link_script(
            session, blueprint=row, role=role, script=await bps.get_script(session, script)
        )
        return cast(FoundationBluePrint | StructureBluePrint, blueprint_of(row))

    @mutation(Operator)
    async def unlink_script(session: AsyncSession, blueprint: str, role: str) -> DeleteResult:
        row = await bps.get_blueprint(session, blueprint)
        await bps.unlink_script(session, blueprint=row, role=role)
        return Deleted(kind="ScriptLink", id=row.id)

    @mutation(Operator, name="createPXE")
    async def create_pxe(
        session: AsyncSession, name: str, boot_script: str = "", template: str = ""
    ) -> PxeResult:
        row = await bps.create_pxe(session, name=name, boot_script=boot_script, template=template)
        return Pxe.of(row)

    @mutation(Operator, name="deletePXE")
    async def delete_pxe(session: AsyncSession, name: str) -> DeleteResult:
        row = await bps.get_pxe(session, name)
        await bps.delete_pxe(session, row)
        return Deleted(kind="PXE", id=row.id)

    # -- foundations and interfaces -----------------------------------------------------

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

    @mutation(Operator)
    async def delete_foundation(session: AsyncSession, locator: str) -> DeleteResult:
        row = await building.get_foundation(session, locator)
        await building.delete_foundation(session, row)
        return Deleted(kind="Foundation", id=row.id)

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
        await building.update_interface(
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
        await building.update_interface(session, row, pxe=await _pxe(session, pxe))
        return NetworkInterface.of(row)

    @mutation(Operator)
    async def delete_interface(
        session: AsyncSession, locator: str, physical_location: str
    ) -> DeleteResult:
        row = await inventory.get_interface(session, locator, physical_location)
        await building.delete_interface(session, row)
        return Deleted(kind="NetworkInterface", id=row.id)

    # -- structures ----------------------------------------------------------------------

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
        row = await _structure(session, id)
        await building.update_structure(
            session,
            row,
            hostname=given(hostname),
            config_values=UNSET
            if config_values is strawberry.UNSET
            else json_object(config_values, "config_values"),
        )
        return Structure.of(row)

    @mutation(Operator)
    async def delete_structure(session: AsyncSession, id: int) -> DeleteResult:
        row = await _structure(session, id)
        await building.delete_structure(session, row)
        return Deleted(kind="Structure", id=row.id)

    @mutation(Operator)
    async def add_structure_interface(
        session: AsyncSession, structure: int, name: str, network: int | None = None
    ) -> StructureInterfaceResult:
        row = await building.add_abstract_interface(
            session,
            structure=await _structure(session, structure),
            name=name,
            network=await _network(session, network),
        )
        return StructureInterface(id=row.id, name=row.name, row=row)

    # -- complexes and dependencies ------------------------------------------------------

    @mutation(Operator)
    async def create_complex(
        session: AsyncSession,
        name: str,
        site: str,
        description: str = "",
        built_percentage: int = 90,
    ) -> ComplexResult:
        row = await building.create_complex(
            session,
            name=name,
            site=await sites.get_site(session, site),
            description=description,
            built_percentage=built_percentage,
        )
        return Complex.of(row)

    @mutation(Operator)
    async def add_complex_member(
        session: AsyncSession, complex: str, structure: int
    ) -> ComplexResult:
        row = await building.get_complex(session, complex)
        await building.add_complex_member(session, row, await _structure(session, structure))
        return Complex.of(row)

    @mutation(Operator)
    async def remove_complex_member(
        session: AsyncSession, complex: str, structure: int
    ) -> ComplexResult:
        row = await building.get_complex(session, complex)
        await building.remove_complex_member(session, row, await _structure(session, structure))
        return Complex.of(row)

    @mutation(Operator)
    async def delete_complex(session: AsyncSession, name: str) -> DeleteResult:
        row = await building.get_complex(session, name)
        await building.delete_complex(session, row)
        return Deleted(kind="Complex", id=row.id)

    @mutation(Operator)
    async def create_dependency(
        session: AsyncSession,
        structure: int | None = None,
        dependency: int | None = None,
        foundation: str | None = None,
        script_structure: int | None = None,
        link: str = "soft",
        create_script_name: str | None = None,
        destroy_script_name: str | None = None,
    ) -> DependencyResult:
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

    @mutation(Operator)
    async def delete_dependency(session: AsyncSession, id: int) -> DeleteResult:
        row = await building.get_dependency(session, id)
        await building.delete_dependency(session, row)
        return Deleted(kind="Dependency", id=row.id)

    # -- networks and addresses ----------------------------------------------------------

    @mutation(Operator)
    async def create_network(
        session: AsyncSession, site: str, name: str, mtu: int | None = None
    ) -> NetworkResult:
        row = await net.create_network(
            session, site=await sites.get_site(session, site), name=name, mtu=mtu
        )
        return Network.of(row)

    @mutation(Operator)
    async def delete_network(session: AsyncSession, id: int) -> DeleteResult:
        row = await _network(session, id)
        assert row is not None
        await net.delete_network(session, row)
        return Deleted(kind="Network", id=id)

    @mutation(Operator, description="Carry an address block on a network (vlan null: untagged).")
    async def link_address_block(
        session: AsyncSession, network: int, address_block: int, vlan: int | None = None
    ) -> NetworkResult:
        row = await _network(session, network)
        assert row is not None
        await net.link_address_block(
            session, network=row, block=await _block(session, address_block), vlan=vlan
        )
        return Network.of(row)

    @mutation(Operator)
    async def create_address_block(
        session: AsyncSession,
        site: str,
        name: str,
        subnet: str,
        gateway_offset: int | None = None,
    ) -> AddressBlockResult:
        row = await net.create_address_block(
            session,
            site=await sites.get_site(session, site),
            name=name,
            subnet=subnet,
            gateway_offset=gateway_offset,
        )
        return AddressBlock.of(row)

    @mutation(Operator)
    async def update_address_block(
        session: AsyncSession,
        id: int,
        subnet: str | None = strawberry.UNSET,
        gateway_offset: int | None = strawberry.UNSET,
    ) -> AddressBlockResult:
        row = await _block(session, id)
        await net.update_address_block(
            session, row, subnet=given(subnet), gateway_offset=given(gateway_offset)
        )
        return AddressBlock.of(row)

    @mutation(Operator)
    async def delete_address_block(session: AsyncSession, id: int) -> DeleteResult:
        await net.delete_address_block(session, await _block(session, id))
        return Deleted(kind="AddressBlock", id=id)

    @mutation(Operator, description="Give a structure the lowest free address of a block.")
    async def allocate_address(
        session: AsyncSession,
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

    @mutation(Operator)
    async def reserve_address(
        session: AsyncSession, address_block: int, offset: int, reason: str
    ) -> ReservedAddressResult:
        row = await net.create_reserved_address(
            session, block=await _block(session, address_block), offset=offset, reason=reason
        )
        made = address_of(row)
        assert isinstance(made, ReservedAddress)
        return made

    @mutation(Operator, description="Add an offset to the block's DHCP dynamic pool.")
    async def add_dynamic_address(
        session: AsyncSession, address_block: int, offset: int, pxe: str | None = None
    ) -> DynamicAddressResult:
        row = await net.create_dynamic_address(
            session,
            block=await _block(session, address_block),
            offset=offset,
            pxe=await _pxe(session, pxe),
        )
        made = address_of(row)
        assert isinstance(made, DynamicAddress)
        return made

    @mutation(Operator)
    async def delete_address(session: AsyncSession, id: int) -> DeleteResult:
        await net.delete_address(session, await inventory.get_address_by_id(session, id))
        return Deleted(kind="Address", id=id)

    # -- users and tokens ----------------------------------------------------------------

    @strawberry.mutation(description="Exchange a username and password for an API token.")
    async def login(self, info: Info, username: str, password: str) -> TokenResult:
        async with info.context.writer_sessions() as session, session.begin():
            user = await auth.authenticate_password(session, username, password)
            new = await auth.create_token(
                session,
                user=user,
                description="login",
                hasher=info.context.settings.password_hasher(),
            )
            return NewToken(token=new.text, key=new.token.key, user=User.of(user))

    @mutation(Admin)
    async def create_user(
        session: AsyncSession, info: Info, username: str, role: str, password: str | None = None
    ) -> UserResult:
        row = await auth.create_user(
            session,
            username=username,
            role=role,
            password=password,
            hasher=info.context.settings.password_hasher(),
        )
        return User.of(row)

    @mutation(Admin)
    async def create_token(
        session: AsyncSession, info: Info, username: str, description: str = ""
    ) -> TokenResult:
        user = await auth.get_user(session, username)
        new = await auth.create_token(
            session,
            user=user,
            description=description,
            hasher=info.context.settings.password_hasher(),
        )
        return NewToken(token=new.text, key=new.token.key, user=User.of(user))

    @mutation(Admin)
    async def revoke_token(session: AsyncSession, key: str) -> DeleteResult:
        await auth.revoke_token(session, key)
        return Deleted(kind="ApiToken", id=0)
