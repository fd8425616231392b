"""Addresses a machine reports for itself, recorded in IPAM: a cloud instance's private IPs,
written on its structure's interfaces so they reach the configuration and DNS.

A job's script learns them (``foundation.set_ip_addresses( ip_address_map=... )``) and the
foreman checks each IP against the site's address blocks while the script runs
(``BlockIndex``, read once per step), then writes them when the step is written
(``record_interface_address``): the interface's own address (alias 0) moves to the block and
offset that hold the IP, is created there, or, for ``None``, is released.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Address, AddressBlock, BaseAddress, Structure
from contractor.services.addresses import create_address, delete_address
from contractor.services.network import block_network

__all__ = ["BlockIndex", "BlockSpan", "record_interface_address"]


@dataclass(frozen=True)
class BlockSpan:
    id: int
    name: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class BlockIndex:
    """A site's address blocks, to find the one holding an IP without the database."""

    site: str
    blocks: Sequence[BlockSpan]

    @classmethod
    async def of_site(cls, session: AsyncSession, site_id: int, site_name: str) -> BlockIndex:
        rows = (
            (await session.execute(select(AddressBlock).where(AddressBlock.site_id == site_id)))
            .scalars()
            .all()
        )
        return cls(site_name, [BlockSpan(b.id, b.name, block_network(b)) for b in rows])

    def holding(self, ip: str) -> tuple[BlockSpan, int]:
        """The block holding ``ip`` (the smallest, where blocks nest) and its offset;
        ``ValueError`` says why there is none."""
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f"{ip!r} is not an IP address") from None
        found = [
            b for b in self.blocks if b.network.version == parsed.version and parsed in b.network
        ]
        if not found:
            raise ValueError(
                f"no address block of site {self.site!r} holds {parsed} (create one for the "
                "subnet it comes from)"
            )
        block = max(found, key=lambda b: b.network.prefixlen)
        return block, int(parsed) - int(block.network.network_address)


async def record_interface_address(
    session: AsyncSession,
    *,
    structure: Structure,
    interface_name: str,
    block_id: int | None,
    offset: int | None,
) -> None:
    """Make the interface's own address the one at ``offset`` of block ``block_id``
    (``None``: it has none). An address that is already there is left alone; one elsewhere
    is released first; the first address of its IP version becomes the primary one."""
    current = (
        await session.execute(
            select(Address).where(
                Address.structure_id == structure.id,
                Address.interface_name == interface_name,
                Address.alias_index == 0,
            )
        )
    ).scalar_one_or_none()
    if current is not None:
        if current.address_block_id == block_id and current.offset == offset:
            return
        was_primary = current.is_primary
        await delete_address(session, current)
        await session.flush()
    else:
        was_primary = False
    if block_id is None or offset is None:
        return
    block = await session.get_one(AddressBlock, block_id)
    primary = (
        was_primary
        or not (
            await session.execute(
                select(BaseAddress.id).where(
                    BaseAddress.structure_id == structure.id,
                    BaseAddress.is_primary.is_(True),
                    BaseAddress.ip_version == block.version,
                )
            )
        ).first()
    )
    await create_address(
        session,
        structure=structure,
        block=block,
        interface_name=interface_name,
        offset=offset,
        is_primary=primary,
    )
