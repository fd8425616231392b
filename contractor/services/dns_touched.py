"""Which zones the changes since a publish can have changed, read from the event log.

Every change to a site, structure, address, block, zone or zone entry writes an event in
its own transaction (``contractor.services.events``). ``touched_since`` turns the events
after a publish's cursor into a ``Touched`` (the forward zones and the blocks whose records
may differ now), so the next publish builds only those zones (``build_zones(touched=...)``).
Where the log cannot say precisely what a change did, it answers None and the publish
builds every zone:

* a zone, a site's zone, name or parent, a block's network or site, a new or deleted site
  or block (the set of zones or their settings change);
* a structure deleted (its addresses go with it without events of their own), or moved to
  another site; an address moved to another block or structure, or made a pointer (the
  event names the new value, not the old one); an entry moved to another zone;
* an address that a pointer address points to (the pointer's name follows its IP);
* events pruned from the log, or more than ``MOST_EVENTS`` of them.

Anything else that can touch a zone touches the forward zone of the structure's site and
every reverse zone of the address's block (an address's old offset is not in its event,
so every reverse zone of the block is built again).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import BaseAddress, Event, EventHorizon, Site, Structure
from contractor.services.dns_zones import Touched

__all__ = ["DNS_OBJECT_TYPES", "MOST_EVENTS", "dns_events", "structure_touched", "touched_since"]

# The event object types whose changes can change a zone (the address kinds all end in
# "address"); anything else (jobs, scripts, blueprints, ...) never wakes a publish.
DNS_OBJECT_TYPES: Final = frozenset(
    ("site", "structure", "structure_interface", "address_block", "zone", "zone_entry")
)
# More DNS-relevant events than this since the last publish: build every zone.
MOST_EVENTS: Final = 5000

# Columns whose change the log cannot follow precisely (the old value is not in the event).
_SITE_COLUMNS: Final = frozenset(("zone_id", "parent_id", "name"))
_BLOCK_COLUMNS: Final = frozenset(("subnet", "prefix", "site_id"))
_STRUCTURE_MOVES: Final = frozenset(("site_id",))
_STRUCTURE_NAMES: Final = frozenset(("hostname",))
_ADDRESS_MOVES: Final = frozenset(("address_block_id", "structure_id", "pointer_id", "kind"))
_ENTRY_MOVES: Final = frozenset(("zone_id",))
_CHANGES: Final = frozenset(("created", "updated", "deleted"))


def dns_events() -> ColumnElement[bool]:
    """The events that can change a zone (a WHERE clause on ``Event``)."""
    return or_(Event.object_type.in_(DNS_OBJECT_TYPES), Event.object_type.like("%address"))


class _Full(Exception):
    """The events cannot say which zones changed."""


async def touched_since(session: AsyncSession, after: int, upto: int) -> Touched | None:
    """What the DNS-relevant events after cursor ``after`` up to ``upto`` can have changed,
    or None when they cannot say precisely (build every zone)."""
    pruned = select(EventHorizon.cursor).where(EventHorizon.cursor > after).limit(1)
    if (await session.execute(pruned)).scalar() is not None:
        return None
    query = (
        select(Event.kind, Event.object_type, Event.object_id, Event.changed, Event.payload)
        .where(Event.id > after, Event.id <= upto, dns_events())
        .order_by(Event.id)
        .limit(MOST_EVENTS + 1)
    )
    events = (await session.execute(query)).all()
    if len(events) > MOST_EVENTS:
        return None
    try:
        return await _attribute(session, events)
    except _Full:
        return None


async def _attribute(session: AsyncSession, events: Iterable[Any]) -> Touched:
    structures: set[int] = set()  # whose forward zone, and their addresses' blocks
    addresses: set[int] = set()  # of every kind: a pointer to one follows it
    blocks: set[int] = set()
    zones: set[int] = set()
    gone: dict[int, dict[str, Any]] = {}  # deleted addresses: their last state
    for kind, object_type, object_id, changed, payload in events:
        if kind not in _CHANGES:
            raise _Full
        moved = set(changed or ()) if kind == "updated" else set()
        if object_type == "site" or object_type == "address_block":
            columns = _SITE_COLUMNS if object_type == "site" else _BLOCK_COLUMNS
            if kind != "updated" or moved & columns:
                raise _Full
        elif object_type == "zone":
            raise _Full
        elif object_type == "structure":
            if kind == "deleted" or moved & _STRUCTURE_MOVES:
                raise _Full
            if kind == "created" or moved & _STRUCTURE_NAMES:
                structures.add(object_id)
        elif object_type == "structure_interface":
            pass  # addresses name their interface themselves; interfaces make no records
        elif object_type == "zone_entry":
            if moved & _ENTRY_MOVES:
                raise _Full
            zones.add(int(_required(payload, "zone_id")))
        elif object_type.endswith("address"):
            if moved & _ADDRESS_MOVES:
                raise _Full
            addresses.add(object_id)
            if kind == "deleted":
                gone[object_id] = payload or {}
        else:
            raise _Full
    await _addresses(session, addresses, gone, structures, blocks)
    await _structures(session, structures, zones, blocks)
    return Touched(frozenset(zones), frozenset(blocks))


async def structure_touched(
    session: AsyncSession, structure_id: int, blocks: Iterable[int] = ()
) -> Touched | None:
    """What a change to one structure's records can reach (as its events would say): its
    site's forward zone and the reverse zones of its addresses' blocks and of ``blocks``;
    None (every zone) where that cannot be said (the structure is gone, a pointer address
    follows one of its addresses)."""
    held = set(blocks)
    zones: set[int] = set()
    pointed = (
        select(BaseAddress.id)
        .where(
            BaseAddress.pointer_id.in_(
                select(BaseAddress.id).where(BaseAddress.structure_id == structure_id)
            )
        )
        .limit(1)
    )
    try:
        if (await session.execute(pointed)).scalar() is not None:
            raise _Full
        await _structures(session, {structure_id}, zones, held)
    except _Full:
        return None
    return Touched(frozenset(zones), frozenset(held))


def _required(payload: dict[str, Any] | None, key: str) -> Any:
    if not payload or key not in payload or payload[key] is None:
        raise _Full
    return payload[key]


async def _addresses(
    session: AsyncSession,
    ids: set[int],
    gone: dict[int, dict[str, Any]],
    structures: set[int],
    blocks: set[int],
) -> None:
    """Each changed address's structure and block, as it is now or (deleted) was last."""
    if not ids:
        return
    pointed = select(BaseAddress.id).where(BaseAddress.pointer_id.in_(sorted(ids))).limit(1)
    if (await session.execute(pointed)).scalar() is not None:
        raise _Full  # a pointer's records follow its target: not worth following here
    query = select(
        BaseAddress.id, BaseAddress.kind, BaseAddress.structure_id, BaseAddress.address_block_id
    ).where(BaseAddress.id.in_(sorted(ids)))
    found: dict[int, tuple[str, int | None, int | None]] = {
        row[0]: (row[1], row[2], row[3]) for row in await session.execute(query)
    }
    for address_id in ids:
        if address_id in found:
            kind, structure_id, block_id = found[address_id]
        elif address_id in gone:
            last = gone[address_id]
            kind = _required(last, "kind")
            if "structure_id" not in last or "address_block_id" not in last:
                raise _Full
            structure_id, block_id = last["structure_id"], last["address_block_id"]
        else:
            raise _Full  # gone without its deletion in these events
        if kind != "address":
            continue  # reserved and dynamic addresses make no records (no pointer to it)
        if structure_id is not None:
            structures.add(int(structure_id))
        if block_id is not None:
            blocks.add(int(block_id))


async def _structures(
    session: AsyncSession, ids: set[int], zones: set[int], blocks: set[int]
) -> None:
    """Each changed structure's forward zone (its site's), and the blocks of its addresses
    (their PTR records name it)."""
    if not ids:
        return
    query = (
        select(Structure.id, Site.zone_id)
        .join(Site, Site.id == Structure.site_id)
        .where(Structure.id.in_(sorted(ids)))
    )
    found = {structure_id: zone_id for structure_id, zone_id in await session.execute(query)}
    if found.keys() != ids:
        raise _Full  # deleted: its addresses went without events
    zones.update(zone_id for zone_id in found.values() if zone_id is not None)
    held = select(BaseAddress.address_block_id).where(
        BaseAddress.structure_id.in_(sorted(ids)), BaseAddress.address_block_id.is_not(None)
    )
    blocks.update(block_id for block_id in (await session.execute(held)).scalars() if block_id)
