"""Alembic environment: runs migrations on the async engine named by the settings.

Called through ``contractor.migrate`` (``contractor db upgrade``); the URL comes from
``config.attributes["url"]``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

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
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                await connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
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
