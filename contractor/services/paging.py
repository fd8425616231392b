"""Keyset pages: a list is a query in a unique order, and a page is the rows after a key.

The callers (the GraphQL connections) encode the key of a page's last row as its cursor and
hand it back as ``after``, so paging never skips or repeats rows when others are inserted
meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from contractor.models import Base
from contractor.services import records


@dataclass(frozen=True)
class Listing:
    """The rows of ``query`` in the order of ``order``, whose columns together are unique."""

    query: Select[Any]
    order: tuple[InstrumentedAttribute[Any], ...]

    @classmethod
    def of(
        cls, model: type[Base], *order: InstrumentedAttribute[Any], query: Select[Any] | None = None
    ) -> Listing:
        return cls(select(model) if query is None else query, order)

    def key(self, row: Any) -> list[Any]:
        """The row's position in the order (what a cursor encodes)."""
        return [getattr(row, column.key) for column in self.order]


async def page(
    session: AsyncSession,
    listing: Listing,
    *,
    after: Sequence[Any] | None,
    size: int,
    as_records: bool = False,
) -> tuple[list[Any], bool]:
    """Up to ``size`` rows after the key ``after`` (None: from the start), and whether more
    follow; ``as_records``: as records (``contractor.services.records``) where the
    listing's model has them, the same statement selecting its columns."""
    order = listing.order
    query = listing.query.order_by(*order)
    if after is not None:
        columns = order[0] if len(order) == 1 else tuple_(*order)
        bound = after[0] if len(order) == 1 else tuple_(*after)
        query = query.where(columns > bound)
    plain = records.as_records(query) if as_records else None
    if plain is None:
        rows = list((await session.execute(query.limit(size + 1))).scalars())
    else:
        statement, make = plain
        rows = [make(row) for row in (await session.execute(statement.limit(size + 1))).all()]
    return rows[:size], len(rows) > size


async def count(session: AsyncSession, listing: Listing) -> int:
    """How many rows the listing holds, over all pages."""
    total = await session.execute(select(func.count()).select_from(listing.query.subquery()))
    return int(total.scalar_one())
