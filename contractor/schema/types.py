"""The object types of the inventory graph. Each wraps its ORM row (private) and resolves
relationships through the request's DataLoaders, never by lazy loading."""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import json
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from contractor import models
from contractor.models.directory import Entry as ZoneEntryRow
from contractor.plugins import foundation_types
from contractor.schema.context import Info
from contractor.schema.prefetch import LAZY, loads, related
from contractor.services import batches
from contractor.services import config as config_service
from contractor.services import network as network_service


async def _one(info: Info, column: Any, key: Any) -> Any:
    return None if key is None else await info.context.loaders.one(column).load(key)


async def _config(info: Info, row: Any, rendered: bool | None) -> JSON:
    """The composed configuration, batched over every object of the request."""

    async def batch(session: Any, rows: list[Any]) -> list[Any]:
        return await config_service.composed_configs(
            session,
            rows,
            settings=info.context.settings,
            rendered=rendered,
            cache=info.context.config_cache,
            for_json=True,
        )

    loader = info.context.loaders.custom(f"config-{rendered}", batch)
    return JSON(await loader.load(row))


async def _explain(info: Info, row: Any) -> JSON:
    async with info.context.sessions() as session:
        explanation = await config_service.explain_config(
            session, row, settings=info.context.settings
        )
    # Values keep their Python types in an explanation (datetimes among them): JSON-ready them.
    return JSON(json.loads(json.dumps(explanation.to_dict(), default=str)))


@strawberry.interface(description="Anything with a configuration composed from its layers.")
class Configurable:
    row: strawberry.Private[Any]

    @strawberry.field(
        description="The composed configuration (rendered for foundations, structures and "
        "complexes; pass rendered to choose)."
    )
    async def config(self, info: Info, rendered: bool | None = None) -> JSON:
        return await _config(info, self.row, rendered)

    @strawberry.field(
        description="Where every key of the configuration comes from: the layer that set it "
        "and the later layers that changed, masked or filtered it."
    )
    async def config_explain(self, info: Info) -> JSON:
        return await _explain(info, self.row)


@strawberry.type
class Zone:
    id: int
    name: str
    ttl: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    nameservers: list[str] = strawberry.field(
        description="Host names of the zone's name servers (inherited from the parent if empty)."
    )
    soa_email: str | None
    row: strawberry.Private[models.Zone]

    @classmethod
    def of(cls, row: models.Zone) -> Zone:
        return cls(
            id=row.id,
            name=row.name,
            ttl=row.ttl,
            refresh=row.refresh,
            retry=row.retry,
            expire=row.expire,
            minimum=row.minimum,
            nameservers=list(row.nameservers),
            soa_email=row.soa_email,
            row=row,
        )

    parent: Zone | None = related(models.Zone.id, "parent_id")
    entries: list[ZoneEntry] = related(
        ZoneEntryRow.zone_id,
        "id",
        order_by=(ZoneEntryRow.name, ZoneEntryRow.type, ZoneEntryRow.id),
        description="Records of the zone that do not come from the inventory.",
    )

    @strawberry.field(description="The fully qualified name, without the trailing dot.")
    async def fqdn(self, info: Info) -> str:
        labels, row = [self.row.name], self.row
        while row.parent_id is not None:
            row = await _one(info, models.Zone.id, row.parent_id)
            labels.append(row.name)
        return ".".join(labels)


@strawberry.type(description="A CNAME, MX, NS, SRV or TXT record kept in a zone.")
class ZoneEntry:
    id: int
    type: str
    name: str
    target: str | None
    text: str | None
    priority: int | None
    weight: int | None
    port: int | None
    ttl: int | None

    @classmethod
    def of(cls, row: ZoneEntryRow) -> ZoneEntry:
        return cls(
            id=row.id,
            type=row.type,
            name=row.name,
            target=row.target,
            text=row.text,
            priority=row.priority,
            weight=row.weight,
            port=row.port,
            ttl=row.ttl,
        )


@strawberry.type
class Site(Configurable):
    id: int
    name: str
    description: str
    config_values: JSON = strawberry.field(description="This site's own values, in order.")
    created: dt.datetime
    updated: dt.datetime
    row: strawberry.Private[models.Site]

    @classmethod
    def of(cls, row: models.Site) -> Site:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            config_values=JSON(row.config_values),
            created=row.created,
            updated=row.updated,
            row=row,
        )

    parent: Site | None = related(models.Site.id, "parent_id")
    children: list[Site] = related(models.Site.parent_id, "id", order_by=(models.Site.name,))
    zone: Zone | None = related(models.Zone.id, "zone_id")


@strawberry.type
class Script:
    id: int
    name: str
    description: str
    source: str
    updated: dt.datetime

    @classmethod
    def of(cls, row: models.Script) -> Script:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            source=row.source,
            updated=row.updated,
        )


@strawberry.type(name="PXE")
class Pxe:
    id: int
    name: str
    boot_script: str
    template: str

    @classmethod
    def of(cls, row: models.PXE) -> Pxe:
        return cls(id=row.id, name=row.name, boot_script=row.boot_script, template=row.template)


@strawberry.type(description="A blueprint's script for a role (create, destroy, or a utility).")
class ScriptLink:
    role: str
    script: Script


@strawberry.interface
class BluePrint(Configurable):
    id: int
    name: str
    description: str
    config_values: JSON
    created: dt.datetime
    updated: dt.datetime
    row: strawberry.Private[models.BluePrint]

    @strawberry.field(description="Parents in order (config layering and script lookup).")
    async def parents(self, info: Info) -> list[BluePrint]:
        links = await info.context.loaders.many(
            models.BluePrintParent.child_id, models.BluePrintParent.position
        ).load(self.row.id)
        rows = await info.context.loaders.one(models.BluePrint.id).load_many(
            [link.parent_id for link in links]
        )
        return [blueprint_of(r) for r in rows]

    @strawberry.field(description="This blueprint's own scripts by role (parents not included).")
    async def scripts(self, info: Info) -> list[ScriptLink]:
        links = await info.context.loaders.many(
            models.BluePrintScript.blueprint_id, models.BluePrintScript.name
        ).load(self.row.id)
        scripts = await info.context.loaders.one(models.Script.id).load_many(
            [link.script_id for link in links]
        )
        return [
            ScriptLink(role=link.name, script=Script.of(s))
            for link, s in zip(links, scripts, strict=True)
        ]


def _blueprint_fields(row: models.BluePrint) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "config_values": row.config_values,
        "created": row.created,
        "updated": row.updated,
        "row": row,
    }


@strawberry.type
class FoundationBluePrint(BluePrint):
    foundation_types: list[str]
    physical_interface_names: list[str]
    min_cpu_count: int | None
    min_memory_mb: int | None
    required_pci_devices: list[str]
    required_disks_gb: list[int]

    @classmethod
    def of(cls, row: models.FoundationBluePrint) -> FoundationBluePrint:
        return cls(
            foundation_types=row.foundation_types,
            physical_interface_names=row.physical_interface_names,
            min_cpu_count=row.min_cpu_count,
            min_memory_mb=row.min_memory_mb,
            required_pci_devices=row.required_pci_devices,
            required_disks_gb=row.required_disks_gb,
            **_blueprint_fields(row),
        )


@strawberry.type
class StructureBluePrint(BluePrint):
    @classmethod
    def of(cls, row: models.StructureBluePrint) -> StructureBluePrint:
        return cls(**_blueprint_fields(row))

    @strawberry.field(description="Foundation blueprints this may be built on (own list).")
    async def foundation_blueprints(self, info: Info) -> list[FoundationBluePrint]:
        links = await info.context.loaders.many(
            models.StructureFoundationBluePrint.structure_blueprint_id,
            models.StructureFoundationBluePrint.position,
        ).load(self.row.id)
        rows = await info.context.loaders.one(models.BluePrint.id).load_many(
            [link.foundation_blueprint_id for link in links]
        )
        return [FoundationBluePrint.of(r) for r in rows]


def blueprint_of(row: models.BluePrint) -> BluePrint:
    if isinstance(row, models.FoundationBluePrint):
        return FoundationBluePrint.of(row)
    assert isinstance(row, models.StructureBluePrint)
    return StructureBluePrint.of(row)


@strawberry.type
class Network:
    id: int
    name: str
    mtu: int | None
    row: strawberry.Private[models.Network]

    @classmethod
    def of(cls, row: models.Network) -> Network:
        return cls(id=row.id, name=row.name, mtu=row.mtu, row=row)

    site: Site = related(models.Site.id, "site_id")

    @strawberry.field(description="The address blocks carried, with their VLAN (null = untagged).")
    async def address_blocks(self, info: Info) -> list[NetworkAddressBlock]:
        links = await info.context.loaders.many(
            models.NetworkAddressBlock.network_id, models.NetworkAddressBlock.address_block_id
        ).load(self.row.id)
        blocks = await info.context.loaders.one(models.AddressBlock.id).load_many(
            [link.address_block_id for link in links]
        )
        return [
            NetworkAddressBlock(vlan=link.vlan, address_block=AddressBlock.of(b))
            for link, b in zip(links, blocks, strict=True)
        ]


@strawberry.type
class NetworkAddressBlock:
    vlan: int | None
    address_block: AddressBlock


@strawberry.type
class BlockUsage:
    total: int
    static: int
    reserved: int
    dynamic: int
    free: int


@strawberry.type
class AddressBlock:
    id: int
    name: str
    version: int
    subnet: str
    prefix: int
    gateway_offset: int | None
    row: strawberry.Private[models.AddressBlock]

    @classmethod
    def of(cls, row: models.AddressBlock) -> AddressBlock:
        return cls(
            id=row.id,
            name=row.name,
            version=row.version,
            subnet=row.subnet,
            prefix=row.prefix,
            gateway_offset=row.gateway_offset,
            row=row,
        )

    @strawberry.field
    def cidr(self) -> str:
        return self.row.cidr

    @strawberry.field
    def gateway(self) -> str | None:
        gateway = network_service.gateway(self.row)
        return None if gateway is None else str(gateway)

    @strawberry.field
    def netmask(self) -> str:
        return str(ipaddress.ip_network(self.row.cidr).netmask)

    @strawberry.field(description="Usable addresses.")
    def size(self) -> str:
        return str(network_service.block_size(self.row))

    site: Site = related(models.Site.id, "site_id")

    @strawberry.field
    async def usage(self, info: Info) -> BlockUsage:
        async with info.context.sessions() as session:
            usage = await network_service.block_usage(session, self.row)
        return BlockUsage(
            total=usage.total,
            static=usage.static,
            reserved=usage.reserved,
            dynamic=usage.dynamic,
            free=usage.free,
        )

    addresses: list[BaseAddress] = related(
        models.BaseAddress.address_block_id, "id", order_by=(models.BaseAddress.offset,)
    )


@strawberry.interface
class BaseAddress:
    id: int
    offset: int | None
    row: strawberry.Private[models.BaseAddress]

    address_block: AddressBlock | None = related(models.AddressBlock.id, "address_block_id")

    @strawberry.field(metadata=loads("address_block"))
    def ip_address(self, info: Info) -> str | None:
        if self.row.address_block_id is None or self.row.offset is None:
            return None
        if self.address_block is not LAZY and self.address_block is not None:
            return str(network_service.ip_at(self.address_block.row, self.row.offset))
        return cast(str, self._ip_address(info))

    @classmethod
    def of(cls, row: models.BaseAddress) -> BaseAddress:
        return address_of(row)

    async def _ip_address(self, info: Info) -> str:
        block = await _one(info, models.AddressBlock.id, self.row.address_block_id)
        assert self.row.offset is not None
        return str(network_service.ip_at(block, self.row.offset))


@strawberry.type
class Address(BaseAddress):
    interface_name: str
    alias_index: int
    is_primary: bool

    structure: Structure = related(models.Structure.id, "structure_id")

    @classmethod
    def of(cls, row: models.BaseAddress) -> Address:
        made = address_of(row)
        assert isinstance(made, Address)
        return made


@strawberry.type
class ReservedAddress(BaseAddress):
    reason: str


@strawberry.type
class DynamicAddress(BaseAddress):
    pxe: Pxe | None = related(models.PXE.id, "pxe_id")


def address_of(row: models.BaseAddress) -> BaseAddress:
    if isinstance(row, models.Address):
        return Address(
            id=row.id,
            offset=row.offset,
            row=row,
            interface_name=row.interface_name or "",
            alias_index=row.alias_index or 0,
            is_primary=row.is_primary,
        )
    if isinstance(row, models.ReservedAddress):
        return ReservedAddress(id=row.id, offset=row.offset, row=row, reason=row.reason or "")
    return DynamicAddress(id=row.id, offset=row.offset, row=row)


@strawberry.type
class NetworkInterface:
    id: int
    name: str
    physical_location: str
    mac: str | None
    is_provisioning: bool
    link_name: str | None
    row: strawberry.Private[models.RealNetworkInterface]

    @classmethod
    def of(cls, row: models.RealNetworkInterface) -> NetworkInterface:
        return cls(
            id=row.id,
            name=row.name,
            physical_location=row.physical_location,
            mac=row.mac,
            is_provisioning=row.is_provisioning,
            link_name=row.link_name,
            row=row,
        )

    network: Network | None = related(models.Network.id, "network_id")
    pxe: Pxe | None = related(
        models.PXE.id, "pxe_id", description="What the machine boots next through this interface."
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

    @classmethod
    def of(cls, row: models.Foundation) -> Foundation:
        return cls(
            id=row.id,
            locator=row.locator,
            type=row.type,
            state=FoundationState(row.state),
            located_at=row.located_at,
            built_at=row.built_at,
            id_map=JSON(row.id_map),
            created=row.created,
            updated=row.updated,
            row=row,
        )

    @strawberry.field(description="Classes for :Class config filters, from the type plugin.")
    def class_list(self) -> list[str]:
        plugin = foundation_types().get(self.row.type)
        return list(plugin.class_list) if plugin else []

    @strawberry.field(description="The type plugin's own fields (secrets never shown).")
    def type_fields(self) -> JSON:
        plugin = foundation_types().get(self.row.type)
        if plugin is None:
            return JSON({})
        shown = [name for name in plugin.fields if name not in plugin.secret_fields]
        return JSON({name: getattr(self.row, name) for name in shown})

    site: Site = related(models.Site.id, "site_id")
    blueprint: FoundationBluePrint = related(models.BluePrint.id, "blueprint_id")
    interfaces: list[NetworkInterface] = related(
        models.RealNetworkInterface.foundation_id,
        "id",
        order_by=(models.RealNetworkInterface.physical_location,),
    )
    structure: Structure | None = related(models.Structure.foundation_id, "id")
    dependency: Dependency | None = related(
        models.Dependency.foundation_id,
        "id",
        description="The dependency this foundation's create job waits for.",
    )


@strawberry.type
class StructureInterface:
    id: int
    name: str
    row: strawberry.Private[models.AbstractNetworkInterface]

    @classmethod
    def of(cls, row: models.AbstractNetworkInterface) -> StructureInterface:
        return cls(id=row.id, name=row.name, row=row)

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

    @classmethod
    def of(cls, row: models.Structure) -> Structure:
        return cls(
            id=row.id,
            hostname=row.hostname,
            state=BuildState(row.state),
            config_uuid=row.config_uuid,
            config_values=JSON(row.config_values),
            built_at=row.built_at,
            created=row.created,
            updated=row.updated,
            row=row,
        )

    site: Site = related(models.Site.id, "site_id")
    blueprint: StructureBluePrint = related(models.BluePrint.id, "blueprint_id")
    foundation: Foundation = related(models.Foundation.id, "foundation_id")
    addresses: list[Address] = related(
        models.BaseAddress.structure_id,
        "id",
        order_by=(models.BaseAddress.interface_name, models.BaseAddress.alias_index),
        keep=lambda row: isinstance(row, models.Address),
        description="Addresses by interface name and alias index.",
    )
    interfaces: list[StructureInterface] = related(
        models.AbstractNetworkInterface.structure_id,
        "id",
        order_by=(models.AbstractNetworkInterface.name,),
        description="Logical interfaces of the structure itself (bonds, VLANs).",
    )

    @strawberry.field
    async def complex(self, info: Info) -> Complex | None:
        member = await _one(info, models.ComplexMember.structure_id, self.row.id)
        if member is None:
            return None
        return Complex.of(await _one(info, models.Complex.id, member.complex_id))


@strawberry.type
class Complex(Configurable):
    id: int
    name: str
    description: str
    built_percentage: int
    row: strawberry.Private[models.Complex]

    @classmethod
    def of(cls, row: models.Complex) -> Complex:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            built_percentage=row.built_percentage,
            row=row,
        )

    @strawberry.field(description="Built when built members reach built_percentage.")
    async def state(self, info: Info) -> BuildState:
        state = await info.context.loaders.custom(
            "complex_state", batches.complex_states_by_id
        ).load(self.row.id)
        return BuildState(state)

    site: Site = related(models.Site.id, "site_id")

    @strawberry.field
    async def members(self, info: Info) -> list[Structure]:
        links = await info.context.loaders.many(
            models.ComplexMember.complex_id, models.ComplexMember.id
        ).load(self.row.id)
        rows = await info.context.loaders.one(models.Structure.id).load_many(
            [link.structure_id for link in links]
        )
        return [Structure.of(r) for r in rows]


@strawberry.type
class Dependency:
    id: int
    link: str
    create_script_name: str | None
    destroy_script_name: str | None
    state: BuildState
    built_at: dt.datetime | None
    row: strawberry.Private[models.Dependency]

    @classmethod
    def of(cls, row: models.Dependency) -> Dependency:
        return cls(
            id=row.id,
            link=row.link,
            create_script_name=row.create_script_name,
            destroy_script_name=row.destroy_script_name,
            state=BuildState(row.state),
            built_at=row.built_at,
            row=row,
        )

    structure: Structure | None = related(
        models.Structure.id,
        "structure_id",
        description="The structure depended on (or null when on a dependency).",
    )
    dependency: Dependency | None = related(
        models.Dependency.id, "dependency_id", description="The dependency depended on, for chains."
    )
    foundation: Foundation | None = related(
        models.Foundation.id,
        "foundation_id",
        description="The foundation whose create job waits for this.",
    )
    script_structure: Structure | None = related(models.Structure.id, "script_structure_id")


@strawberry.type
class User:
    id: int
    username: str
    role: str
    is_active: bool

    @classmethod
    def of(cls, row: models.User) -> User:
        return cls(id=row.id, username=row.username, role=row.role, is_active=row.is_active)


AnyBluePrint = Annotated[FoundationBluePrint | StructureBluePrint, strawberry.union("AnyBluePrint")]
