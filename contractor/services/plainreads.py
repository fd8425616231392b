"""Reads that every task round trip makes besides the task API's own statements
(``contractor.services.hotpath``), written once with SQLAlchemy and run as plain SQL on
PostgreSQL (``hotpath.Statement``):

* ``job_foundation``: the foundation a step works on, with its site's and blueprint's
  names. Through the ORM this is the costliest read of a result that steps its job (the
  foundation is polymorphic: the row comes with every foundation type's table outer-joined,
  and the ORM's loading of it took about a tenth of the server's CPU per round trip); here
  the row's values become the session's object of the row's type (``hotpath.adopt``).
* ``events_after_count``: every commit that wrote events wakes the event broadcaster; with
  nobody subscribed it only counts what came (``reading``: in autocommit on PostgreSQL).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, inspect, select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapper

from contractor.models import BluePrint, Event, Foundation, Site
from contractor.services import hotpath

__all__ = ["events_after_count", "job_foundation", "reading"]


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[hotpath.On]:
    """Where a read of one statement runs: on PostgreSQL a pooled connection in autocommit
    (no BEGIN and ROLLBACK round trips), elsewhere a session of ``sessions``."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
        async with hotpath.autocommit(bind) as connection:
            yield connection
    else:
        async with sessions() as session:
            yield session


_EVENT = Event.metadata.tables["event"]
_EVENTS_AFTER = hotpath.Statement(
    lambda _: select(func.count(), func.max(_EVENT.c.id)).where(_EVENT.c.id > bindparam("after"))
)


async def events_after_count(on: hotpath.On, after: int) -> tuple[int, int]:
    """How many events have cursors above ``after``, and the newest cursor (``after`` when
    there is none): one read of the primary key's index, no rows."""
    ((found, newest),) = await _EVENTS_AFTER.rows(on, after=after)
    return int(found), int(newest or after)


@dataclass(frozen=True)
class _FoundationRead:
    statement: hotpath.Statement
    columns: dict[ColumnElement[Any], int]  # where each table column is in the row


@functools.cache
def _foundation_read() -> _FoundationRead:
    """Built once, on first use (when every foundation type's table is mapped): the
    foundation's table and each type's own, outer-joined, and the two names."""
    base: Mapper[Foundation] = inspect(Foundation)
    foundation = base.local_table
    tables = [foundation]
    for mapper in base.self_and_descendants:
        if mapper.local_table not in tables:
            tables.append(mapper.local_table)
    columns: list[ColumnElement[Any]] = [column for table in tables for column in table.columns]
    site = Site.metadata.tables["site"]
    blueprint = BluePrint.metadata.tables["blueprint"]
    joined = foundation
    for table in tables[1:]:
        joined = joined.outerjoin(table, table.c.id == foundation.c.id)
    joined = joined.join(site, site.c.id == foundation.c.site_id).join(
        blueprint, blueprint.c.id == foundation.c.blueprint_id
    )

    def build(_: str) -> Select[Any]:
        return (
            select(*columns, site.c.name, blueprint.c.name)
            .select_from(joined)
            .where(foundation.c.id == bindparam("foundation_id"))
        )

    return _FoundationRead(hotpath.Statement(build), {c: n for n, c in enumerate(columns)})


async def job_foundation(
    session: AsyncSession, foundation_id: int
) -> tuple[Foundation, str, str] | None:
    """The foundation ``foundation_id`` as the session's object of its type, and the names
    of its site and blueprint; None when its type's attributes are not all plain columns
    of these tables (then the ORM reads it: ``contractor.foreman.modules``). Raises
    ``NoResultFound`` as the ORM's ``one()`` would when there is no such foundation."""
    read = _foundation_read()
    rows = await read.statement.rows(session, foundation_id=foundation_id)
    if len(rows) != 1:
        raise NoResultFound(f"no foundation {foundation_id}")
    (row,) = rows
    base: Mapper[Foundation] = inspect(Foundation)
    mapper = base.polymorphic_map.get(row[read.columns[base.local_table.c.type]])
    if mapper is None:
        return None
    values: dict[str, Any] = {}
    for attribute in mapper.column_attrs:
        where = read.columns.get(attribute.columns[0])
        if where is None:
            return None
        values[attribute.key] = row[where]
    foundation = hotpath.adopt(session, mapper.class_, values)
    return foundation, row[-2], row[-1]
