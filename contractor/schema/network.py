"""Networks, address blocks and addresses in GraphQL: the three kinds of address (a
structure's, reserved, in the DHCP pool), the lists, the IP lookup, and the changes."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Self, cast

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.errors import InvalidInput, NotFound
from contractor.schema.blueprint import Pxe
from contractor.schema.common import (
    Deleted,
    DeleteResult,
    Row,
    given,
    optional,
)
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation, through
from contractor.schema.pagination import Connection, PageRequest, decode_cursor, paginate
from contractor.schema.permissions import Operator, Reader
from contractor.schema.prefetch import LAZY, current_loaders, loads, related
from contractor.schema.scalars import BigInt
from contractor.schema.site import Site
from contractor.services import addresses, building, inventory
from contractor.services import blueprint as bps
from contractor.services import network as net
from contractor.services import site as sites
from contractor.services.records import is_a

if TYPE_CHECKING:
    from contractor.schema.boot import DhcpPool
    from contractor.schema.building import Structure


@strawberry.type
class Network(Row):
    id: int
    name: str
    mtu: int | None
    row: strawberry.Private[models.Network]

    site: Site = related(models.Site.id, "site_id")

    address_blocks: list[NetworkAddressBlock] = through(
        models.NetworkAddressBlock.network_id,
        models.NetworkAddressBlock.address_block_id,
        models.AddressBlock.id,
        "address_block_id",
        lambda link, block: NetworkAddressBlock(
            vlan=link.vlan, address_block=AddressBlock.of(block)
        ),
        description="The address blocks carried, with their VLAN (null = untagged).",
    )


@strawberry.type
class NetworkAddressBlock:
    vlan: int | None
    address_block: AddressBlock


@strawberry.type
class BlockUsage(Row):
    total: BigInt = strawberry.field(description="Usable addresses.")
    static: int
    reserved: int
    dynamic: int
    free: BigInt


@strawberry.type(description="A run of offsets, first to last, both included.")
class OffsetRange:
    first: BigInt
    last: BigInt


@strawberry.type
class AddressBlock(Row):
    id: int
    name: str
    version: int
    subnet: str
    prefix: int
    gateway_offset: BigInt | None
    row: strawberry.Private[models.AddressBlock]

    site: Site = related(models.Site.id, "site_id")
    dhcp_pools: list[Annotated[DhcpPool, strawberry.lazy("contractor.schema.boot")]] = related(
        models.DhcpPool.address_block_id,
        "id",
        order_by=(models.DhcpPool.first_offset,),
        description="The block's DHCP pools, lowest first.",
    )

    @strawberry.field(description="The block's addresses of every kind, a page at a time.")
    async def addresses(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[BaseAddress]:
        if after is not None:
            (offset,) = decode_cursor(after, 1)
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise InvalidInput("after is not a cursor this list handed out", field="after")
        async with info.context.sessions() as session:
            listed = await inventory.block_addresses(session, self.row.id)
        return await paginate(info, listed, PageRequest(first, after), BaseAddress.of)

    @strawberry.field(
        description="The first runs of free offsets, lowest first: free is usable and not an "
        "address, the gateway or in a DHCP pool (what an allocation may take)."
    )
    async def free_ranges(self, info: Info, first: int = 100) -> list[OffsetRange]:
        async with info.context.sessions() as session:
            found = await addresses.free_ranges(session, self.row, first=first)
        return [OffsetRange(first=BigInt(low), last=BigInt(high)) for low, high in found]

    @strawberry.field
    def cidr(self) -> str:
        return self.row.cidr

    @strawberry.field
    def gateway(self) -> str | None:
        gateway = net.gateway(self.row)
        return None if gateway is None else str(gateway)

    @strawberry.field
    def netmask(self) -> str:
        return str(ipaddress.ip_network(self.row.cidr).netmask)

    @strawberry.field(description="Usable addresses.")
    def size(self) -> str:
        return str(net.block_size(self.row))

    @strawberry.field
    async def usage(self, info: Info) -> BlockUsage:
        async with info.context.sessions() as session:
            return BlockUsage.of(await addresses.block_usage(session, self.row))


@strawberry.interface
class BaseAddress(Row):
    id: int
    offset: BigInt | None
    row: strawberry.Private[models.BaseAddress]

    address_block: AddressBlock | None = related(models.AddressBlock.id, "address_block_id")

    # of the object alone (no info: the request's loaders by ``current_loaders``), so the
    # executor's short path calls it directly (``execution._own_resolver``)
    @strawberry.field(metadata=loads("address_block"))
    def ip_address(self) -> str | None:
        if self.row.address_block_id is None or self.row.offset is None:
            return None
        if self.address_block is not LAZY and self.address_block is not None:
            return str(net.ip_at(self.address_block.row, self.row.offset))
        return cast(str, self._ip_address())

    async def _ip_address(self) -> str:
        loader = current_loaders.get().one(models.AddressBlock.id)
        block = await loader.load(self.row.address_block_id)
        assert self.row.offset is not None
        return str(net.ip_at(block, self.row.offset))

    @classmethod
    def of(cls, row: models.BaseAddress) -> BaseAddress:
        """The address of the row's kind (each kind makes its own)."""
        if is_a(row, models.Address):
            return Address.of(row)
        if is_a(row, models.ReservedAddress):
            return ReservedAddress.of(row)
        return DynamicAddress.of(row)


@strawberry.type
class Address(BaseAddress):
    interface_name: str
    alias_index: int
    is_primary: bool
    from_records = True  # its row's values only (``prefetch.relations``)

    structure: Annotated[Structure, strawberry.lazy("contractor.schema.building")] = related(
        models.Structure.id, "structure_id"
    )

    @classmethod
    def of(cls, row: models.BaseAddress) -> Self:
        return cls.from_row(
            row, interface_name=row.interface_name or "", alias_index=row.alias_index or 0
        )


@strawberry.type
class ReservedAddress(BaseAddress):
    reason: str

    @classmethod
    def of(cls, row: models.BaseAddress) -> Self:
        return cls.from_row(row, reason=row.reason or "")


@strawberry.type
class DynamicAddress(BaseAddress):
    pxe: Pxe | None = related(models.PXE.id, "pxe_id")

    @classmethod
    def of(cls, row: models.BaseAddress) -> Self:
        return cls.from_row(row)


NetworkResult = Annotated[Network | AnyError, strawberry.union("NetworkResult")]
AddressBlockResult = Annotated[AddressBlock | AnyError, strawberry.union("AddressBlockResult")]
AddressResult = Annotated[Address | AnyError, strawberry.union("AddressResult")]
ReservedAddressResult = Annotated[
    ReservedAddress | AnyError, strawberry.union("ReservedAddressResult")
]
DynamicAddressResult = Annotated[
    DynamicAddress | AnyError, strawberry.union("DynamicAddressResult")
]


@strawberry.type
class NetworkQuery:
    networks = connection(Network, inventory.networks, site=str)
    address_block = lookup(AddressBlock, inventory.get_address_block_by_id, id=int)
    address_blocks = connection(AddressBlock, inventory.address_blocks, site=str)

    @strawberry.field(
        description="The address allocated for an IP (in a site, if given).",
        extensions=[Reader()],
    )
    async def address(self, info: Info, ip: str, site: str | None = None) -> BaseAddress | None:
        async with info.context.sessions() as session:
            scope = await optional(sites.get_site, session, site)
            try:
                return BaseAddress.of(await addresses.lookup_address(session, ip, site=scope))
            except NotFound:
                return None


async def _block(session: AsyncSession, block_id: int) -> models.AddressBlock:
    return await inventory.get_address_block_by_id(session, block_id)


@strawberry.type
class NetworkMutation:
    @mutation(Operator)
    async def create_network(
        session: AsyncSession, site: str, name: str, mtu: int | None = None
    ) -> NetworkResult:
        row = await net.create_network(
            session, site=await sites.get_site(session, site), name=name, mtu=mtu
        )
        return Network.of(row)

    delete_network = deletion("Network", inventory.get_network_by_id, net.delete_network, id=int)

    @mutation(Operator, description="Carry an address block on a network (vlan null: untagged).")
    async def link_address_block(
        session: AsyncSession, network: int, address_block: int, vlan: int | None = None
    ) -> NetworkResult:
        row = await inventory.get_network_by_id(session, network)
        block = await _block(session, address_block)
        await net.link_address_block(session, network=row, block=block, vlan=vlan)
        return Network.of(row)

    @mutation(Operator)
    async def create_address_block(
        session: AsyncSession,
        site: str,
        name: str,
        subnet: str,
        gateway_offset: BigInt | None = None,
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
        gateway_offset: BigInt | None = strawberry.UNSET,
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
            BigInt | None,
            strawberry.argument(description="A specific offset instead of the lowest free one."),
        ] = None,
    ) -> AddressResult:
        row = await addresses.create_address(
            session,
            structure=await building.get_structure_by_id(session, structure),
            block=await _block(session, address_block),
            offset=offset,
            interface_name=interface_name,
            alias_index=alias_index,
            is_primary=is_primary,
        )
        return Address.of(row)

    @mutation(Operator)
    async def reserve_address(
        session: AsyncSession, address_block: int, offset: BigInt, reason: str
    ) -> ReservedAddressResult:
        block = await _block(session, address_block)
        row = await addresses.create_reserved_address(
            session, block=block, offset=offset, reason=reason
        )
        return ReservedAddress.of(row)

    @mutation(Operator, description="Add an offset to the block's DHCP dynamic pool.")
    async def add_dynamic_address(
        session: AsyncSession, address_block: int, offset: BigInt, pxe: str | None = None
    ) -> DynamicAddressResult:
        row = await addresses.create_dynamic_address(
            session,
            block=await _block(session, address_block),
            offset=offset,
            pxe=await optional(bps.get_pxe, session, pxe),
        )
        return DynamicAddress.of(row)

    @mutation(Operator)
    async def delete_address(session: AsyncSession, id: int) -> DeleteResult:
        await addresses.delete_address(session, await inventory.get_address_by_id(session, id))
        return Deleted(kind="Address", id=id)
