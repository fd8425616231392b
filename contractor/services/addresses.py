"""Addresses in address blocks: static, reserved and dynamic ones, who holds them, the
next free offset, usage counts and the look-up by IP (the offset rules are in
``services.network``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, Exhausted, InvalidInput, NotFound
from contractor.models import (
    PXE,
    Address,
    AddressBlock,
    BaseAddress,
    DhcpPool,
    DynamicAddress,
    ReservedAddress,
    Site,
    Structure,
)
from contractor.models.offsets import Offset, next_offset, offset_literal
from contractor.services.common import added, refuse_if_used
from contractor.services.config import config_changed, config_sources_changed
from contractor.services.dns_guard import kept_exportable
from contractor.services.dns_names import address_label
from contractor.services.dns_touched import structure_touched
from contractor.services.network import (
    block_bounds,
    block_network,
    block_size,
    ip_at,
    lock_block,
    to_bin,
)
from contractor.services.validation import check_int, check_name


def describe_pool(block: AddressBlock, pool: DhcpPool) -> str:
    """``DHCP pool 3 (10.0.0.100-10.0.0.199 of block 'prov')``."""
    first, last = ip_at(block, pool.first_offset), ip_at(block, pool.last_offset)
    return f"DHCP pool {pool.id} ({first}-{last} of block {block.name!r})"


async def _check_offset(
    session: AsyncSession, block: AddressBlock, offset: int, *, wanted_by: str = ""
) -> None:
    """The offset is usable, not the gateway, not held and not in a DHCP pool; a refusal
    names the holder and ``wanted_by`` (who asked)."""
    check_int(offset, field="offset")
    low, high = block_bounds(block)
    if not low <= offset <= high:
        raise InvalidInput(
            f"offset {offset} is outside the usable offsets {low}..{high} of block "
            f"{block.name!r} ({block.cidr})",
            field="offset",
        )
    if offset == block.gateway_offset:
        raise Conflict(f"offset {offset} is the gateway of block {block.name!r}", field="offset")
    holder = (
        await session.execute(
            select(BaseAddress).where(
                BaseAddress.address_block_id == block.id, BaseAddress.offset == offset
            )
        )
    ).scalar_one_or_none()
    asked = f", so it cannot go to {wanted_by}" if wanted_by else ""
    if holder is not None:
        raise Conflict(
            f"{ip_at(block, offset)} (offset {offset} of block {block.name!r}) is already "
            f"allocated to {await describe_address(session, holder)}{asked}",
            field="offset",
        )
    pool = (
        await session.execute(
            select(DhcpPool).where(
                DhcpPool.address_block_id == block.id,
                DhcpPool.first_offset <= offset,
                DhcpPool.last_offset >= offset,
            )
        )
    ).scalar_one_or_none()
    if pool is not None:
        raise Conflict(
            f"{ip_at(block, offset)} (offset {offset} of block {block.name!r}) is in "
            f"{describe_pool(block, pool)}{asked}",
            field="offset",
        )


async def describe_address(session: AsyncSession, address: BaseAddress) -> str:
    if isinstance(address, ReservedAddress):
        return f"a reservation ({address.reason or 'no reason given'})"
    if isinstance(address, DynamicAddress):
        return "the dynamic pool"
    hostname = (
        await session.execute(
            select(Structure.hostname).where(Structure.id == address.structure_id)
        )
    ).scalar_one_or_none()
    return f"structure {hostname!r} interface {address.interface_name!r}"


async def _check_holder(
    session: AsyncSession,
    *,
    structure: Structure,
    block: AddressBlock | None,
    interface_name: str,
    alias_index: int,
    is_primary: bool,
) -> None:
    check_name(interface_name, field="interface_name", max_length=20, what="interface name")
    check_int(alias_index, field="alias_index", low=0)
    same = select(BaseAddress.id).where(
        BaseAddress.structure_id == structure.id,
        BaseAddress.interface_name == interface_name,
        BaseAddress.alias_index == alias_index,
    )
    if (await session.execute(same)).first():
        raise Conflict(
            f"structure {structure.hostname!r} already has an address on {interface_name!r} "
            f"with alias index {alias_index}",
            field="alias_index",
        )
    label = address_label(interface_name, alias_index)
    others = select(BaseAddress.interface_name, BaseAddress.alias_index).where(
        BaseAddress.structure_id == structure.id
    )
    for other_name, other_alias in await session.execute(others):
        if address_label(other_name or "", other_alias) == label:
            raise Conflict(
                f"structure {structure.hostname!r}: an address on {interface_name!r} (alias "
                f"{alias_index}) would have the DNS name {label}.{structure.hostname} of its "
                f"address on {other_name!r} (alias {other_alias or 0}); rename one of them",
                field="interface_name",
            )
    if is_primary:
        version = block.version if block is not None else None
        primary = select(BaseAddress.id).where(
            BaseAddress.structure_id == structure.id,
            BaseAddress.is_primary.is_(True),
            BaseAddress.ip_version == version,
        )
        if (await session.execute(primary)).first():
            raise Conflict(
                f"structure {structure.hostname!r} already has a primary address for "
                f"IPv{version} (one primary address per IP version)",
                field="is_primary",
            )
        if block is not None and block.site_id != structure.site_id:
            raise InvalidInput(
                f"a primary address must come from a block of the structure's own site; "
                f"block {block.name!r} is in another site",
                field="address_block",
            )


async def create_address(
    session: AsyncSession,
    *,
    structure: Structure,
    block: AddressBlock,
    interface_name: str,
    offset: int | None = None,
    alias_index: int = 0,
    is_primary: bool = False,
) -> Address:
    """Give ``structure`` an address of ``block``: at ``offset``, or the lowest free one.

    The block row is locked first, so concurrent allocations in one block wait for each
    other's transactions and never pick the same offset.
    """
    await _check_holder(
        session,
        structure=structure,
        block=block,
        interface_name=interface_name,
        alias_index=alias_index,
        is_primary=is_primary,
    )
    await lock_block(session, block)
    if offset is None:
        offset = await lowest_free_offset(session, block)
        if offset is None:
            raise Exhausted(f"address block {block.name!r} ({block.cidr}) has no free address")
    else:
        wanted_by = f"structure {structure.hostname!r} interface {interface_name!r}"
        await _check_offset(session, block, offset, wanted_by=wanted_by)
    address = Address(
        address_block_id=block.id,
        offset=offset,
        structure_id=structure.id,
        interface_name=interface_name,
        alias_index=alias_index,
        is_primary=is_primary,
        ip_version=block.version,
    )
    # Only records are added (the structure's and its block's): only those zones are checked.
    touched = await structure_touched(session, structure.id, [block.id])
    async with kept_exportable(session, field="offset", touched=touched):
        session.add(address)
        await config_changed(session, address)
    return address


async def create_reserved_address(
    session: AsyncSession, *, block: AddressBlock, offset: int, reason: str
) -> ReservedAddress:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 50:
        raise InvalidInput("reason must be 1 to 50 characters", field="reason")
    await lock_block(session, block)
    await _check_offset(session, block, offset)
    address = ReservedAddress(address_block_id=block.id, offset=offset, reason=reason)
    return await added(session, address)


async def create_dynamic_address(
    session: AsyncSession, *, block: AddressBlock, offset: int, pxe: PXE | None = None
) -> DynamicAddress:
    await lock_block(session, block)
    await _check_offset(session, block, offset)
    address = DynamicAddress(
        address_block_id=block.id, offset=offset, pxe_id=pxe.id if pxe else None
    )
    return await added(session, address)


async def lowest_free_offset(session: AsyncSession, block: AddressBlock) -> int | None:
    """The lowest usable offset that no address, not the gateway and no DHCP pool holds, in
    one query.

    A free offset is either the first usable one, or one just above a taken offset (or above
    the gateway, or above a pool) that is itself not taken.
    """
    low, high = block_bounds(block)
    taken = select(BaseAddress.offset.label("offset")).where(
        BaseAddress.address_block_id == block.id
    )
    if block.gateway_offset is not None:
        taken = union_all(taken, select(offset_literal(block.gateway_offset).label("offset")))  # type: ignore[assignment]
    used = taken.subquery("used")
    other = taken.subquery("other")
    in_block = DhcpPool.address_block_id == block.id
    candidates = union_all(
        select(offset_literal(low).label("candidate")),
        select(next_offset(used.c.offset).label("candidate")),
        select(next_offset(DhcpPool.last_offset).label("candidate")).where(in_block),
    ).subquery("candidates")
    in_pool = select(DhcpPool.id).where(
        in_block,
        DhcpPool.first_offset <= candidates.c.candidate,
        DhcpPool.last_offset >= candidates.c.candidate,
    )
    query = select(func.min(candidates.c.candidate)).where(
        candidates.c.candidate >= low,
        candidates.c.candidate <= high,
        ~select(other.c.offset).where(other.c.offset == candidates.c.candidate).exists(),
        ~in_pool.exists(),
    )
    offset: int | None = (await session.execute(query)).scalar_one_or_none()
    return offset


MAX_RANGES = 1000


async def free_ranges(
    session: AsyncSession, block: AddressBlock, *, first: int
) -> list[tuple[int, int]]:
    """The first ``first`` runs of free offsets of the block, lowest first, as ``(first,
    last)`` pairs, in one query: free is usable and neither an address, the gateway nor in a
    DHCP pool (what an allocation may take).

    The taken spans (an address or the gateway: one offset; a pool: its range), with the
    offset past the last usable one as the end, in order: a run of free offsets lies between
    the furthest any earlier span reaches and the next span's start.
    """
    check_int(first, field="first")
    if not 0 <= first <= MAX_RANGES:
        raise InvalidInput(f"first must be from 0 to {MAX_RANGES}", field="first")
    low, high = block_bounds(block)
    end = offset_literal(high + 1)
    spans = [
        select(BaseAddress.offset.label("lo"), BaseAddress.offset.label("hi")).where(
            BaseAddress.address_block_id == block.id
        ),
        select(DhcpPool.first_offset.label("lo"), DhcpPool.last_offset.label("hi")).where(
            DhcpPool.address_block_id == block.id
        ),
        select(end.label("lo"), end.label("hi")),
    ]
    if block.gateway_offset is not None:
        gateway = offset_literal(block.gateway_offset)
        spans.append(select(gateway.label("lo"), gateway.label("hi")))
    taken = union_all(*spans).subquery("taken")
    reach = func.max(taken.c.hi).over(order_by=taken.c.lo, rows=(None, -1))
    runs = (
        select(
            func.coalesce(next_offset(reach), offset_literal(low), type_=Offset()).label("start"),
            taken.c.lo.label("stop"),
        )
        .where(taken.c.lo >= offset_literal(low), taken.c.lo <= end)
        .subquery("runs")
    )
    query = (
        select(runs.c.start, runs.c.stop)
        .where(runs.c.start < runs.c.stop)
        .order_by(runs.c.stop)
        .limit(first)
    )
    return [(int(start), int(stop) - 1) for start, stop in (await session.execute(query)).all()]


async def delete_address(session: AsyncSession, address: BaseAddress) -> None:
    await refuse_if_used(
        session,
        "the address",
        [("pointer addresses", Address.interface_name, Address.pointer_id == address.id)],
    )
    async with kept_exportable(session, field="id"):
        await session.delete(address)
        config_sources_changed(session)


@dataclass(frozen=True)
class BlockUsage:
    total: int
    static: int
    reserved: int
    dynamic: int

    @property
    def free(self) -> int:
        return self.total - self.static - self.reserved - self.dynamic


async def block_usage(session: AsyncSession, block: AddressBlock) -> BlockUsage:
    """Counts per kind; the gateway counts as reserved."""
    rows = await session.execute(
        select(BaseAddress.kind, func.count())
        .where(BaseAddress.address_block_id == block.id)
        .group_by(BaseAddress.kind)
    )
    counts = dict(rows.all())
    return BlockUsage(
        total=block_size(block),
        static=counts.get("address", 0),
        reserved=counts.get("reserved", 0) + (block.gateway_offset is not None),
        dynamic=counts.get("dynamic", 0),
    )


async def lookup_address(
    session: AsyncSession, ip: str, *, site: Site | None = None
) -> BaseAddress:
    """The one address with this IP (in ``site``, if given)."""
    try:
        parsed = ipaddress.ip_address(ip.strip())
    except (ValueError, AttributeError):
        raise InvalidInput(f"{ip!r} is not an IP address", field="ip_address") from None
    key = to_bin(parsed)
    query = select(AddressBlock).where(
        AddressBlock.version == parsed.version,
        AddressBlock.first_bin <= key,
        AddressBlock.last_bin >= key,
    )
    if site is not None:
        query = query.where(AddressBlock.site_id == site.id)
    blocks = (await session.execute(query)).scalars().all()
    wanted = [
        and_(
            BaseAddress.address_block_id == b.id,
            BaseAddress.offset == int(parsed) - int(block_network(b).network_address),
        )
        for b in blocks
    ]
    found: list[BaseAddress] = []
    if wanted:
        found = list((await session.execute(select(BaseAddress).where(or_(*wanted)))).scalars())
    if not found:
        raise NotFound(f"no address {parsed} is allocated", field="ip_address")
    if len(found) > 1:
        raise Conflict(
            f"{parsed} is allocated in {len(found)} sites; name the site", field="ip_address"
        )
    return found[0]
