"""Alembic environment: runs migrations on the async engine named by the settings.

Called through ``contractor.migrate`` (``contractor db upgrade``); the URL comes from
``config.attributes["url"]``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contractor.models import Base
from contractor.models.base import UTCDateTime
from contractor.models.offsets import Offset
from contractor.plugins import foundation_types

config = context.config
foundation_types()  # map every installed plugin's tables before comparing
target_metadata = Base.metadata


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations must not import model code: our UTC wrapper is a plain timestamptz there.
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(item, Offset):
        autogen_context.imports.add("from contractor.migrations import columns")
        return "columns.offset_type()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        # every run is one transaction on SQLite too (see _sqlite_transactions)
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """Make a run one real transaction on SQLite, DDL included.

    sqlite3 opens a transaction only before DML, so each CREATE, DROP and ALTER would commit
    on its own: a migration failing halfway would leave its first statements applied and the
    version stamp unmoved. With the driver's own handling off and an explicit ``BEGIN``, a
    failed run leaves the database as it was. Foreign keys are turned off (batch migrations
    copy tables) before that, as the pragma is ignored inside a transaction.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = OFF")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        context.configure(
            url=config.attributes["url"], target_metadata=target_metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_async(config.attributes["url"]))


main()
