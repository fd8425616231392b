"""Rows for many keys in one statement: the batches behind the GraphQL DataLoaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from contractor.models import Complex, Dependency
from contractor.services.complexes import complex_states
from contractor.services.records import Reader


async def rows_by(
    session: AsyncSession, column: InstrumentedAttribute[Any], keys: Sequence[Any]
) -> list[Any]:
    """For each key, the row whose unique ``column`` equals it (None when there is none)."""
    query: Select[Any] = select(column.class_).where(column.in_(keys))
    found = {getattr(row, column.key): row for row in (await session.execute(query)).scalars()}
    return [found.get(key) for key in keys]


async def rows_grouped_by(
    session: AsyncSession,
    column: InstrumentedAttribute[Any],
    keys: Sequence[Any],
    order_by: Sequence[InstrumentedAttribute[Any]] = (),
) -> list[list[Any]]:
    """For each key, the rows whose ``column`` equals it, in ``order_by``."""
    query: Select[Any] = select(column.class_).where(column.in_(keys)).order_by(*order_by)
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in (await session.execute(query)).scalars():
        grouped[getattr(row, column.key)].append(row)
    return [grouped.get(key, []) for key in keys]


async def records_by(
    session: AsyncSession, read: Reader, column: InstrumentedAttribute[Any], keys: Sequence[Any]
) -> list[Any]:
    """``rows_by`` as records (``contractor.services.records``) of ``read``'s model."""
    rows = map(read.make, await _rows(session, read, read.column(column), keys, ()))
    found = {getattr(row, column.key): row for row in rows}
    return [found.get(key) for key in keys]


async def records_grouped_by(
    session: AsyncSession,
    read: Reader,
    column: InstrumentedAttribute[Any],
    keys: Sequence[Any],
    order_by: Sequence[InstrumentedAttribute[Any]] = (),
) -> list[list[Any]]:
    """``rows_grouped_by`` as records of ``read``'s model."""
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in map(read.make, await _rows(session, read, read.column(column), keys, order_by)):
        grouped[getattr(row, column.key)].append(row)
    return [grouped.get(key, []) for key in keys]


async def _rows(
    session: AsyncSession,
    read: Reader,
    where: Any,
    keys: Sequence[Any],
    order_by: Sequence[InstrumentedAttribute[Any]],
) -> Sequence[Any]:
    query = read.statement.where(where.in_(keys)).order_by(*map(read.column, order_by))
    rows: Sequence[Any] = (await session.execute(query)).all()
    return rows


async def complex_states_by_id(session: AsyncSession, ids: Sequence[int]) -> list[str]:
    """The derived state of each complex named by id."""
    rows = [await session.get_one(Complex, key) for key in ids]
    states = await complex_states(session, rows)
    return [states[key] for key in ids]


async def dependencies_by_structure(
    session: AsyncSession, structure_ids: Sequence[int]
) -> list[list[Dependency]]:
    """For each structure, the dependency records naming it, by id: those on it (a
    foundation's create job, or a chained dependency, waits for it) and those whose scripts
    run on it. One query for the whole batch, on the two indexed columns."""
    query = (
        select(Dependency)
        .where(
            or_(
                Dependency.structure_id.in_(structure_ids),
                Dependency.script_structure_id.in_(structure_ids),
            )
        )
        .order_by(Dependency.id)
    )
    grouped: dict[int, list[Dependency]] = defaultdict(list)
    for row in (await session.execute(query)).scalars():
        for key in {row.structure_id, row.script_structure_id}:
            if key is not None:
                grouped[key].append(row)
    return [grouped.get(key, []) for key in structure_ids]
