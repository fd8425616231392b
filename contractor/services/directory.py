"""DNS zones: creation, the fully qualified name, deletion rules."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, NotFound
from contractor.models import Site, Zone
from contractor.services.common import get_by, refuse_if_used
from contractor.services.validation import ZONE_NAME_RE, check_int

_TIMERS = ("ttl", "refresh", "retry", "expire", "minimum")


async def get_zone(session: AsyncSession, zone_id: int) -> Zone:
    return await get_by(session, Zone, Zone.id, zone_id, what="zone")


def _parent_is(parent_id: int | None) -> ColumnElement[bool]:
    return Zone.parent_id.is_(None) if parent_id is None else Zone.parent_id == parent_id


async def find_zone(session: AsyncSession, fqdn: str) -> Zone:
    """The zone named by its dotted name (``site1.example``), parents included."""
    zone: Zone | None = None
    for label in reversed(fqdn.lower().rstrip(".").split(".")):
        query = select(Zone).where(Zone.name == label, _parent_is(zone.id if zone else None))
        zone = (await session.execute(query)).scalar_one_or_none()
        if zone is None:
            raise NotFound(f"zone {fqdn!r} does not exist", field="zone")
    if zone is None:
        raise NotFound("zone name is empty", field="zone")
    return zone


async def create_zone(
    session: AsyncSession,
    *,
    name: str,
    parent: Zone | None = None,
    ttl: int = 3600,
    refresh: int = 86400,
    retry: int = 7200,
    expire: int = 36000,
    minimum: int = 172800,
) -> Zone:
    name = name.lower() if isinstance(name, str) else name
    if not isinstance(name, str) or not ZONE_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"zone name {name!r} must be one DNS label of at least two lower-case letters "
            "and digits, starting with a letter (child zones are separate rows)",
            field="name",
        )
    timers = {"ttl": ttl, "refresh": refresh, "retry": retry, "expire": expire, "minimum": minimum}
    for field in _TIMERS:
        check_int(timers[field], field=field, low=1, high=2**31 - 1)
    parent_id = parent.id if parent is not None else None
    clash = select(Zone.id).where(Zone.name == name, _parent_is(parent_id))
    if (await session.execute(clash)).first() is not None:
        where = f"under {await zone_fqdn(session, parent)}" if parent else "at the top level"
        raise Conflict(f"zone {name!r} already exists {where}", field="name")
    zone = Zone(name=name, parent_id=parent_id, **timers)
    session.add(zone)
    await session.flush()
    return zone


async def zone_fqdn(session: AsyncSession, zone: Zone) -> str:
    """``name.parent.grandparent`` without the trailing dot."""
    labels = [zone.name]
    parent_id = zone.parent_id
    while parent_id is not None:
        parent = await get_zone(session, parent_id)
        labels.append(parent.name)
        parent_id = parent.parent_id
    return ".".join(labels)


async def delete_zone(session: AsyncSession, zone: Zone) -> None:
    await refuse_if_used(
        session,
        f"zone {await zone_fqdn(session, zone)!r}",
        [
            ("child zones", Zone.name, Zone.parent_id == zone.id),
            ("sites", Site.name, Site.zone_id == zone.id),
        ],
    )
    await session.delete(zone)
    await session.flush()
