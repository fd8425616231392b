"""Migrations are the only way the schema changes: they build an empty database to exactly
the models, on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from contractor import migrate
from contractor.models import Base
from contractor.settings import Settings
from tests.conftest import make_pg_database


def test_no_drift_on_postgresql() -> None:
    settings = Settings(database_url=make_pg_database("contractor_migrations"))
    migrate.upgrade(settings)
    migrate.check(settings)  # raises alembic.util.CommandError on drift
    migrate.upgrade(settings)  # a second upgrade is a no-op


def test_no_drift_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}")
    migrate.upgrade(settings)
    migrate.check(settings)


async def test_every_table_is_created(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.sqlite3'}")
    migrate.upgrade(settings)
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert {"manual_foundation", "simulated_foundation", "alembic_version"} <= tables


def test_drift_is_detected(tmp_path: Path) -> None:
    """The check is not vacuous: a table the migrations do not know about fails it."""
    from alembic.util import CommandError
    from sqlalchemy import Column, Integer, Table

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'd.sqlite3'}")
    migrate.upgrade(settings)
    extra = Table("drift_probe", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        with pytest.raises(CommandError, match="drift_probe"):
            migrate.check(settings)
    finally:
        Base.metadata.remove(extra)
