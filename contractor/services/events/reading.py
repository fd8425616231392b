"""Reading the event log: the newest cursor, the site tree, which events a subscriber or
webhook wants (``EventFilter``), the events after a cursor, and an event as a document."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Site
from contractor.models.events import Event
from contractor.services.events.objects import DELETED

__all__ = [
    "EventFilter",
    "event_document",
    "events_after",
    "latest_cursor",
    "newest_events",
    "site_tree",
]


async def latest_cursor(session: AsyncSession) -> int:
    """The newest event's cursor (0 when there is none)."""
    return int((await session.execute(select(func.max(Event.id)))).scalar_one() or 0)


async def site_tree(session: AsyncSession) -> dict[int, int | None]:
    """Every site's parent, by site id."""
    rows = await session.execute(select(Site.id, Site.parent_id))
    return {site_id: parent for site_id, parent in rows}


@dataclass
class EventFilter:
    """Which events a subscriber or webhook wants; ``None`` means any.

    ``site_ids`` is the site and its descendants; ``observe`` grows it when a new child site
    goes by, so events of sites made after the filter was built still match.
    """

    object_types: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    site_ids: set[int] | None = None
    blueprint_id: int | None = None
    object_id: int | None = None

    @classmethod
    def build(
        cls,
        *,
        object_types: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        site_id: int | None = None,
        blueprint_id: int | None = None,
        object_id: int | None = None,
        tree: Mapping[int, int | None] | None = None,
    ) -> EventFilter:
        site_ids = None
        if site_id is not None:
            site_ids = {site_id} | _descendants(tree or {}, site_id)
        return cls(
            frozenset(object_types) if object_types else None,
            frozenset(kinds) if kinds else None,
            site_ids,
            blueprint_id,
            object_id,
        )

    def observe(self, row: Event) -> bool:
        """Note a site event; True when the site set grew."""
        if self.site_ids is None or row.object_type != "site" or row.kind == DELETED:
            return False
        parent = row.payload.get("parent_id")
        if parent in self.site_ids and row.object_id not in self.site_ids:
            self.site_ids.add(row.object_id)
            return True
        return False

    def matches(self, row: Event) -> bool:
        return (
            (self.object_types is None or row.object_type in self.object_types)
            and (self.kinds is None or row.kind in self.kinds)
            and (self.site_ids is None or row.site_id in self.site_ids)
            and (self.blueprint_id is None or row.blueprint_id == self.blueprint_id)
            and (self.object_id is None or row.object_id == self.object_id)
        )

    def where(self) -> list[Any]:
        """The same test as SQL conditions (site events always pass: ``observe`` needs them)."""
        conditions: list[Any] = []
        if self.object_types is not None:
            conditions.append(Event.object_type.in_(sorted(self.object_types)))
        if self.kinds is not None:
            conditions.append(Event.kind.in_(sorted(self.kinds)))
        if self.site_ids is not None:
            conditions.append(
                Event.site_id.in_(sorted(self.site_ids)) | (Event.object_type == "site")
            )
        if self.blueprint_id is not None:
            conditions.append(Event.blueprint_id == self.blueprint_id)
        if self.object_id is not None:
            conditions.append(Event.object_id == self.object_id)
        return conditions


def _descendants(tree: Mapping[int, int | None], root: int) -> set[int]:
    children: dict[int | None, list[int]] = {}
    for site_id, parent in tree.items():
        children.setdefault(parent, []).append(site_id)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


async def events_after(
    session: AsyncSession, *, after: int, filter: EventFilter | None = None, limit: int = 500
) -> tuple[list[Event], int, bool]:
    """Events matching ``filter`` with cursors above ``after``, oldest first; the cursor to
    resume from; and whether there may be more (read again from that cursor)."""
    query = select(Event).where(Event.id > after).order_by(Event.id).limit(limit)
    if filter is not None:
        query = query.where(*filter.where())
    rows = list((await session.execute(query)).scalars())
    more = len(rows) == limit
    if filter is None:
        return rows, rows[-1].id if rows else after, more
    matched: list[Event] = []
    for index, row in enumerate(rows):
        grew = filter.observe(row)
        if filter.matches(row):
            matched.append(row)
        if grew and index + 1 < len(rows):
            # the rows after this one were chosen without the new site: read them again
            return matched, row.id, True
    return matched, rows[-1].id if rows else after, more


async def newest_events(
    session: AsyncSession, *, limit: int, filter: EventFilter | None = None
) -> tuple[list[Event], int]:
    """At most ``limit`` of the newest events matching ``filter``, oldest first, and the
    cursor to follow them from (the newest event's at the time of reading, matching or not),
    so that reading or subscribing after it misses nothing and repeats nothing. One bounded
    query on the primary key, newest first."""
    upto = await latest_cursor(session)
    query = select(Event).where(Event.id <= upto).order_by(Event.id.desc()).limit(limit)
    if filter is not None:
        query = query.where(*filter.where())
    rows = list((await session.execute(query)).scalars())
    if filter is not None:  # site events pass ``where`` for ``observe``; the test is here
        rows = [row for row in rows if filter.matches(row)]
    rows.reverse()
    return rows, upto


def event_document(row: Event) -> dict[str, Any]:
    """An event as webhooks post it (the same names as the GraphQL ``Event`` type)."""
    return {
        "cursor": str(row.id),
        "at": row.at.isoformat(),
        "kind": row.kind,
        "objectType": row.object_type,
        "objectId": row.object_id,
        "objectName": row.object_name,
        "siteId": row.site_id,
        "blueprintId": row.blueprint_id,
        "actor": row.actor,
        "changed": list(row.changed or ()),
        "payload": row.payload,
    }
