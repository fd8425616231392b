"""Networks and address blocks: overlap rules, bounds and the offsets of addresses (the
addresses themselves are in ``services.addresses``).

An address is ``(block, offset)``. Usable offsets follow the original: 1 .. size-2 for an
ordinary block (network and broadcast excluded, also on IPv6), 0 .. 1 for a /31 (/127) and
0 for a /32 (/128). The gateway offset is never handed out.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput
from contractor.models import (
    AbstractNetworkInterface,
    AddressBlock,
    BaseAddress,
    DhcpPool,
    Network,
    NetworkAddressBlock,
    RealNetworkInterface,
    Site,
)
from contractor.services.common import UNSET, added, get_by, refuse_if_used
from contractor.services.config import config_changed
from contractor.services.dns_guard import kept_exportable
from contractor.services.validation import NETWORK_NAME_RE, check_int, check_name

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def to_bin(address: IPAddress) -> bytes:
    """16 bytes, big-endian; IPv4 as v4-mapped, so byte order is numeric order."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{address}").packed
    return address.packed


def block_network(block: AddressBlock) -> IPNetwork:
    return _network(block.cidr)


@lru_cache(maxsize=4096)
def _network(cidr: str) -> IPNetwork:
    """The network of a CIDR string: parsed once (a page of 1,000 addresses in a few
    blocks otherwise parses their blocks 1,000 times); networks are immutable."""
    return ipaddress.ip_network(cidr)


def offset_bounds(prefix: int, version: int) -> tuple[int, int]:
    """The first and last usable offsets of a block with this prefix."""
    host_bits = (32 if version == 4 else 128) - prefix
    if host_bits == 0:
        return (0, 0)
    if host_bits == 1:
        return (0, 1)
    return (1, 2**host_bits - 2)


def block_bounds(block: AddressBlock) -> tuple[int, int]:
    return offset_bounds(block.prefix, block.version)


def block_size(block: AddressBlock) -> int:
    low, high = block_bounds(block)
    return high - low + 1


def ip_at(block: AddressBlock, offset: int) -> IPAddress:
    return block_network(block).network_address + offset


def gateway(block: AddressBlock) -> IPAddress | None:
    return None if block.gateway_offset is None else ip_at(block, block.gateway_offset)


# -- networks --------------------------------------------------------------------------


async def get_network(session: AsyncSession, site: Site, name: str) -> Network:
    return await get_by(session, Network, Network.name, name, what="network", in_site=site)


async def create_network(
    session: AsyncSession, *, site: Site, name: str, mtu: int | None = None
) -> Network:
    if not isinstance(name, str) or not NETWORK_NAME_RE.fullmatch(name) or len(name) > 40:
        raise InvalidInput(
            f"network name {name!r} may only contain letters, digits, '_' and '-', "
            "optionally followed by '.' and up to four digits (e.g. 'vmbr0.20')",
            field="name",
        )
    if mtu is not None:
        check_int(mtu, field="mtu", low=512, high=9022)
    clash = select(Network.id).where(Network.site_id == site.id, Network.name == name)
    if (await session.execute(clash)).first():
        raise Conflict(f"network {name!r} already exists in site {site.name!r}", field="name")
    network = Network(site_id=site.id, name=name, mtu=mtu)
    return await added(session, network)


async def delete_network(session: AsyncSession, network: Network) -> None:
    await refuse_if_used(
        session,
        f"network {network.name!r}",
        [
            (
                "interfaces",
                RealNetworkInterface.physical_location,
                RealNetworkInterface.network_id == network.id,
            ),
            (
                "structure interfaces",
                AbstractNetworkInterface.name,
                AbstractNetworkInterface.network_id == network.id,
            ),
        ],
    )
    await session.delete(network)
    await session.flush()


async def link_address_block(
    session: AsyncSession, *, network: Network, block: AddressBlock, vlan: int | None = None
) -> NetworkAddressBlock:
    """Carry ``block`` on ``network`` (VLAN 1..4095; None or 0 for untagged)."""
    if vlan == 0:
        vlan = None
    if vlan is not None:
        check_int(vlan, field="vlan", low=1, high=4095)
    if network.site_id != block.site_id:
        raise InvalidInput(
            f"network {network.name!r} and address block {block.name!r} are in different sites",
            field="address_block",
        )
    link = await session.get(NetworkAddressBlock, (network.id, block.id))
    if link is None:
        link = NetworkAddressBlock(network_id=network.id, address_block_id=block.id, vlan=vlan)
        session.add(link)
    else:
        link.vlan = vlan
    return await config_changed(session, link)


# -- address blocks --------------------------------------------------------------------


async def get_address_block(session: AsyncSession, site: Site, name: str) -> AddressBlock:
    return await get_by(
        session, AddressBlock, AddressBlock.name, name, what="address block", in_site=site
    )


def parse_subnet(subnet: str, prefix: int | None = None) -> IPNetwork:
    """``10.0.0.0/24`` or ``subnet`` + ``prefix``. Host bits are refused (``10.30.0.5/24``
    names an address, not a network: the original silently took ``10.30.0.0/24``)."""
    if not isinstance(subnet, str):
        raise InvalidInput("subnet must be text such as '10.0.0.0/24'", field="subnet")
    text = subnet.strip()
    if prefix is not None:
        if "/" in text:
            raise InvalidInput(
                "give the prefix either in subnet or as prefix, not both", field="prefix"
            )
        check_int(prefix, field="prefix", low=1, high=128)
        text = f"{text}/{prefix}"
    elif "/" not in text:
        raise InvalidInput(
            f"subnet {subnet!r} needs a prefix length, e.g. '{text}/24'", field="subnet"
        )
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as error:
        raise InvalidInput(
            f"subnet {text!r} is not a valid network: {error}", field="subnet"
        ) from None
    if network.prefixlen < 1:
        raise InvalidInput("prefix must be at least 1", field="prefix")
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise InvalidInput(
            f"subnet {text!r} has host bits set: the network is {network} (or give a longer "
            "prefix)",
            field="subnet",
        )
    return network


async def _check_overlap(
    session: AsyncSession, site_id: int, network: IPNetwork, *, ignore_id: int | None = None
) -> None:
    first, last = to_bin(network.network_address), to_bin(network.broadcast_address)
    query = select(AddressBlock).where(
        AddressBlock.site_id == site_id,
        AddressBlock.version == network.version,
        AddressBlock.first_bin <= last,
        AddressBlock.last_bin >= first,
    )
    if ignore_id is not None:
        query = query.where(AddressBlock.id != ignore_id)
    other = (await session.execute(query.limit(1))).scalar_one_or_none()
    if other is not None:
        mine = ipaddress.ip_network(other.cidr)
        how = (
            "contains"
            if network.subnet_of(mine)  # type: ignore[arg-type]
            else "lies inside"
            if mine.subnet_of(network)  # type: ignore[arg-type]
            else "overlaps"
        )
        raise Conflict(
            f"{network} overlaps address block {other.name!r} ({other.cidr}) in the same site: "
            f"{other.cidr} {how} {network}",
            field="subnet",
        )


def _check_gateway(gateway_offset: int | None, prefix: int, version: int) -> None:
    if gateway_offset is None:
        return
    check_int(gateway_offset, field="gateway_offset")
    if (32 if version == 4 else 128) - prefix == 0:
        raise InvalidInput("a single-address block cannot have a gateway", field="gateway_offset")
    low, high = offset_bounds(prefix, version)
    if not low <= gateway_offset <= high:
        raise InvalidInput(
            f"gateway_offset {gateway_offset} is outside the usable offsets {low}..{high}",
            field="gateway_offset",
        )


async def create_address_block(
    session: AsyncSession,
    *,
    site: Site,
    name: str,
    subnet: str,
    prefix: int | None = None,
    gateway_offset: int | None = None,
) -> AddressBlock:
    check_name(name, field="name", what="address block name")
    network = parse_subnet(subnet, prefix)
    clash = select(AddressBlock.id).where(
        AddressBlock.site_id == site.id, AddressBlock.name == name
    )
    if (await session.execute(clash)).first():
        raise Conflict(f"address block {name!r} already exists in site {site.name!r}", field="name")
    await _check_overlap(session, site.id, network)
    _check_gateway(gateway_offset, network.prefixlen, network.version)
    async with kept_exportable(session, field="subnet"):
        return await _add_block(session, site, name, network, gateway_offset)


async def _add_block(
    session: AsyncSession, site: Site, name: str, network: IPNetwork, gateway_offset: int | None
) -> AddressBlock:
    block = AddressBlock(
        site_id=site.id,
        name=name,
        version=network.version,
        subnet=str(network.network_address),
        prefix=network.prefixlen,
        gateway_offset=gateway_offset,
        first_bin=to_bin(network.network_address),
        last_bin=to_bin(network.broadcast_address),
    )
    return await added(session, block)


async def update_address_block(
    session: AsyncSession,
    block: AddressBlock,
    *,
    subnet: str = UNSET,
    gateway_offset: int | None = UNSET,
) -> AddressBlock:
    """Move or resize the block (every address keeps its offset) or change its gateway."""
    await lock_block(session, block)
    if subnet is not UNSET:
        network = parse_subnet(subnet)
        if network.version != block.version:
            raise InvalidInput("an address block cannot change IP version", field="subnet")
        await _check_overlap(session, block.site_id, network, ignore_id=block.id)
        low, high = offset_bounds(network.prefixlen, network.version)
        held = (
            ("addresses", BaseAddress.address_block_id, BaseAddress.offset, BaseAddress.offset),
            ("DHCP pools", DhcpPool.address_block_id, DhcpPool.first_offset, DhcpPool.last_offset),
        )
        for noun, in_block, first, last in held:
            outside = (
                await session.execute(
                    select(func.count()).where(in_block == block.id, (first < low) | (last > high))
                )
            ).scalar_one()
            if outside:
                raise Conflict(
                    f"{outside} {noun} of block {block.name!r} would fall outside {network}",
                    field="subnet",
                )
        async with kept_exportable(session, field="subnet"):
            block.subnet = str(network.network_address)
            block.prefix = network.prefixlen
            block.first_bin = to_bin(network.network_address)
            block.last_bin = to_bin(network.broadcast_address)
    if gateway_offset is not UNSET:
        _check_gateway(gateway_offset, block.prefix, block.version)
        if gateway_offset is not None:
            taken = select(BaseAddress.id).where(
                BaseAddress.address_block_id == block.id, BaseAddress.offset == gateway_offset
            )
            if (await session.execute(taken)).first():
                raise Conflict(
                    f"offset {gateway_offset} of block {block.name!r} is already allocated",
                    field="gateway_offset",
                )
            pool = select(DhcpPool.id).where(
                DhcpPool.address_block_id == block.id,
                DhcpPool.first_offset <= gateway_offset,
                DhcpPool.last_offset >= gateway_offset,
            )
            pool_id = (await session.execute(pool)).scalar_one_or_none()
            if pool_id is not None:
                raise Conflict(
                    f"offset {gateway_offset} of block {block.name!r} is in DHCP pool "
                    f"{pool_id}; a gateway cannot be leased",
                    field="gateway_offset",
                )
        block.gateway_offset = gateway_offset
    else:
        _check_gateway(block.gateway_offset, block.prefix, block.version)
    return await config_changed(session, block)


async def delete_address_block(session: AsyncSession, block: AddressBlock) -> None:
    await refuse_if_used(
        session,
        f"address block {block.name!r}",
        [
            ("addresses", BaseAddress.offset, BaseAddress.address_block_id == block.id),
            ("DHCP pools", DhcpPool.first_offset, DhcpPool.address_block_id == block.id),
        ],
    )
    await session.delete(block)
    await session.flush()


async def lock_block(session: AsyncSession, block: AddressBlock) -> None:
    """Serialise allocations in this block until the transaction ends (PostgreSQL row lock;
    SQLite has one writer at a time anyway)."""
    await session.execute(
        select(AddressBlock.id).where(AddressBlock.id == block.id).with_for_update()
    )
