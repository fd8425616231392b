"""DHCP pools in GraphQL: ranges of an address block marked for dynamic leases (what the
boot services hand unknown machines), listed per site, created and deleted by operators."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.schema.common import Row, load_one
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.network import AddressBlock
from contractor.schema.permissions import Operator
from contractor.schema.prefetch import LAZY, loads, related
from contractor.schema.scalars import BigInt
from contractor.schema.site import Site
from contractor.services import boot, inventory, leases
from contractor.services import network as net


@strawberry.type
class DhcpPool(Row):
    id: int
    first_offset: BigInt
    last_offset: BigInt
    description: str
    row: strawberry.Private[models.DhcpPool]

    address_block: AddressBlock = related(models.AddressBlock.id, "address_block_id")

    @strawberry.field(description="The first address of the pool.", metadata=loads("address_block"))
    async def start(self, info: Info) -> str:
        return str(net.ip_at(await self._block(info), self.first_offset))

    @strawberry.field(description="The last address of the pool.", metadata=loads("address_block"))
    async def end(self, info: Info) -> str:
        return str(net.ip_at(await self._block(info), self.last_offset))

    async def _block(self, info: Info) -> models.AddressBlock:
        if self.address_block is not LAZY:
            return self.address_block.row
        block: models.AddressBlock = await load_one(
            info, models.AddressBlock.id, self.row.address_block_id
        )
        return block


@strawberry.enum
class LeaseState(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    RELEASED = "released"


@strawberry.type(description="A DHCP lease a site's boot services reported.")
class DhcpLease(Row):
    id: int
    mac: str
    address: str
    hostname: str
    starts: dt.datetime | None
    ends: dt.datetime | None
    state: LeaseState
    reported_at: dt.datetime
    row: strawberry.Private[models.DhcpLease]

    site: Site = related(models.Site.id, "site_id")

    @classmethod
    def of(cls, row: models.DhcpLease) -> Self:
        return cls.from_row(row, state=LeaseState(row.state))


DhcpPoolResult = Annotated[DhcpPool | AnyError, strawberry.union("DhcpPoolResult")]


@strawberry.type
class BootQuery:
    dhcp_pool = lookup(DhcpPool, inventory.get_dhcp_pool_by_id, id=int)
    dhcp_pools = connection(DhcpPool, inventory.dhcp_pools, site=str)
    dhcp_leases = connection(
        DhcpLease,
        leases.dhcp_leases,
        description="The DHCP leases boot services reported, of one site or all.",
        site=str,
    )


@strawberry.type
class BootMutation:
    @mutation(
        Operator,
        description="Mark offsets of an address block for dynamic DHCP leases; refused when "
        "the range holds the gateway or an allocated address, or overlaps another pool.",
    )
    async def create_dhcp_pool(
        session: AsyncSession,
        address_block: int,
        first_offset: BigInt,
        last_offset: BigInt,
        description: str = "",
    ) -> DhcpPoolResult:
        row = await boot.create_dhcp_pool(
            session,
            block=await inventory.get_address_block_by_id(session, address_block),
            first_offset=first_offset,
            last_offset=last_offset,
            description=description,
        )
        return DhcpPool.of(row)

    delete_dhcp_pool = deletion(
        "DhcpPool", inventory.get_dhcp_pool_by_id, boot.delete_dhcp_pool, id=int
    )
