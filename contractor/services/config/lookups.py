"""Look-ups for the ``/config`` endpoints: a structure by its config UUID, what it boots,
and the list of structures with their config UUIDs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput, NotFound
from contractor.models import PXE, Foundation, RealNetworkInterface, Site, Structure

__all__ = ["ConfigListing", "boot_pxe", "list_structure_configs", "structure_by_config_uuid"]


async def structure_by_config_uuid(session: AsyncSession, config_uuid: str) -> Structure:
    """The Structure answering to ``config_uuid`` (any letter case); NotFound otherwise,
    malformed UUIDs included (a booting machine learns nothing from the difference)."""
    try:
        normalised = str(uuid.UUID(config_uuid))
    except (ValueError, AttributeError, TypeError):
        normalised = None
    structure = None
    if normalised is not None:
        query = select(Structure).where(Structure.config_uuid == normalised)
        structure = (await session.execute(query)).scalar_one_or_none()
    if structure is None:
        raise NotFound(f"no configuration has the UUID {config_uuid!r}", field="config_uuid")
    return structure


async def boot_pxe(session: AsyncSession, target: Structure | Foundation) -> PXE | None:
    """What the target boots next: the PXE of its foundation's provisioning interface."""
    foundation_id = target.foundation_id if isinstance(target, Structure) else target.id
    query = (
        select(PXE)
        .join(RealNetworkInterface, RealNetworkInterface.pxe_id == PXE.id)
        .where(
            RealNetworkInterface.foundation_id == foundation_id,
            RealNetworkInterface.is_provisioning.is_(True),
        )
    )
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True)
class ConfigListing:
    config_uuid: str
    hostname: str
    site: str
    structure_id: int


async def list_structure_configs(
    session: AsyncSession,
    *,
    site: str | None = None,
    hostname: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ConfigListing]:
    """Structures with their config UUIDs, by site and hostname (for authenticated users)."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be from 1 to 1000", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    query = (
        select(Structure.config_uuid, Structure.hostname, Site.name, Structure.id)
        .join(Site, Site.id == Structure.site_id)
        .order_by(Site.name, Structure.hostname)
        .limit(limit)
        .offset(offset)
    )
    if site is not None:
        query = query.where(Site.name == site)
    if hostname is not None:
        query = query.where(Structure.hostname == hostname)
    rows = await session.execute(query)
    return [ConfigListing(*row) for row in rows]
