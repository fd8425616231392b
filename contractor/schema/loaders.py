"""DataLoaders: one per relationship per request, each batch one service call (one query) in
its own short session (sibling resolvers run concurrently and must not share a session)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.dataloader import DataLoader

from contractor.services import batches
from contractor.services.records import Reader, reader


class Loaders:
    """Creates each loader on first use, so a request pays only for what it asks."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}

    def one(
        self, column: InstrumentedAttribute[Any], read: Reader | None = None
    ) -> DataLoader[Any, Any]:
        """Rows by a unique column (None when missing); with ``read``, as its records."""
        if read is not None:
            return self._get(("records", column), lambda keys: self.fetch_one(column, keys, read))
        return self._get(("one", column), lambda keys: self._one(column, keys))

    def many(
        self,
        column: InstrumentedAttribute[Any],
        *order_by: InstrumentedAttribute[Any],
        read: Reader | None = None,
    ) -> DataLoader[Any, Any]:
        """Lists of rows sharing a column value, ordered; with ``read``, as its records."""
        return self._get(
            ("many", column, order_by, read is not None),
            lambda keys: self.fetch_many(column, keys, order_by, read),
        )

    def known(self, row: Any) -> None:
        """Tell the ``one`` loader by id of the row's model (its base, for a polymorphic one)
        the row a lookup found, so fields below that point back at it ask nothing again."""
        model = inspect(row).mapper.base_mapper.class_
        self.one(model.id).prime(row.id, row)
        read = reader(model)
        if read is not None:  # and the one of records by id (the row serves as one)
            self.one(model.id, read).prime(row.id, row)

    def custom(self, name: str, query: Any) -> DataLoader[Any, Any]:
        """A loader whose batch function ``query(session, keys)`` returns one value per key."""
        return self._get(("custom", name), lambda keys: self._custom(query, keys))

    async def fetch_one(
        self, column: InstrumentedAttribute[Any], keys: list[Any], read: Reader | None = None
    ) -> list[Any]:
        """Rows by a unique column for ``keys`` in one query, outside any loader (with
        ``read``, its records)."""
        if read is None:
            return await self._one(column, keys)
        async with self._sessions() as session:
            return await batches.records_by(session, read, column, keys)

    async def fetch_many(
        self,
        column: InstrumentedAttribute[Any],
        keys: list[Any],
        order_by: Sequence[InstrumentedAttribute[Any]] = (),
        read: Reader | None = None,
    ) -> list[list[Any]]:
        """Lists of rows sharing a column value for ``keys`` in one query, outside any
        loader (with ``read``, its records)."""
        if read is None:
            return await self._many(column, keys, order_by)
        async with self._sessions() as session:
            return await batches.records_grouped_by(session, read, column, keys, order_by)

    def _get(self, key: Hashable, batch: Any) -> DataLoader[Any, Any]:
        loader = self._loaders.get(key)
        if loader is None:
            loader = DataLoader(load_fn=batch)
            self._loaders[key] = loader
        return loader

    async def _one(self, column: InstrumentedAttribute[Any], keys: list[Any]) -> list[Any]:
        async with self._sessions() as session:
            return await batches.rows_by(session, column, keys)

    async def _many(
        self,
        column: InstrumentedAttribute[Any],
        keys: list[Any],
        order_by: Sequence[InstrumentedAttribute[Any]],
    ) -> list[list[Any]]:
        async with self._sessions() as session:
            return await batches.rows_grouped_by(session, column, keys, order_by)

    async def _custom(self, query: Any, keys: list[Any]) -> list[Any]:
        async with self._sessions() as session:
            result: list[Any] = await query(session, keys)
            return result
