"""Migrations are the only way the schema changes: they build an empty database to exactly
the models, on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import create_async_engine

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Address, Base
from contractor.services import addresses
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import make_block, make_stack


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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0011_retimes_zones_left_at_the_old_defaults(backend: str, tmp_path: Path) -> None:
    """Zones still at the old SOA defaults (they expired before their next refresh) get the
    RFC 1912 / RFC 2308 ones; zones whose timers were chosen keep them; external is false."""
    from alembic import command
    from sqlalchemy import create_engine, text

    url = (
        f"sqlite:///{tmp_path / 'r.sqlite3'}"
        if backend == "sqlite"
        else make_pg_database("contractor_retime")
    )
    settings = Settings(database_url=url)
    migrate.upgrade(settings, "0009")
    sync_url = settings.database_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    engine = create_engine(sync_url)
    insert = text(
        "INSERT INTO zone (name, ttl, refresh, retry, expire, minimum, nameservers, created, "
        "updated) VALUES (:name, 3600, :refresh, :retry, :expire, :minimum, '[]', "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    try:
        with engine.begin() as connection:
            connection.execute(
                insert,
                {
                    "name": "old",
                    "refresh": 86400,
                    "retry": 7200,
                    "expire": 36000,
                    "minimum": 172800,
                },
            )
            connection.execute(
                insert,
                {"name": "chosen", "refresh": 7200, "retry": 600, "expire": 604800, "minimum": 600},
            )
        migrate.upgrade(settings)
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT name, refresh, retry, expire, minimum, external FROM zone ORDER BY name"
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            ("chosen", 7200, 600, 604800, 600, False),
            ("old", 14400, 3600, 1209600, 3600, False),
        ]
        command.downgrade(migrate.alembic_config(settings), "0009")
        with engine.connect() as connection:
            assert connection.execute(
                text("SELECT refresh, expire FROM zone WHERE name = 'old'")
            ).one() == (86400, 36000)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_one_primary_per_ip_version_both_ways(backend: str, tmp_path: Path) -> None:
    """0012: a dual-stack structure keeps both primaries; downgraded, the IPv4 one (the old
    single-primary index holds again); upgraded, every address gets its block's version."""
    url = (
        make_pg_database("contractor_m0012")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'p.sqlite3'}"
    )
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    config = migrate.alembic_config(settings)
    before = ScriptDirectory.from_config(config).get_revision("0012").down_revision
    assert isinstance(before, str)
    engine = create_engine(settings)

    async def primaries() -> list[tuple[bool, int | None]]:
        async with transaction(create_session_factory(engine)) as session:
            rows = await session.execute(
                select(Address.is_primary, Address.ip_version).order_by(Address.offset)
            )
            return [(bool(primary), version) for primary, version in rows]

    try:
        async with transaction(create_session_factory(engine)) as session:
            site, _foundation, structure = await make_stack(session)
            for subnet, offset in [("10.0.0.0/24", 5), ("2001:db8::/64", 6)]:
                block = await make_block(session, site, subnet)
                await addresses.create_address(
                    session,
                    structure=structure,
                    block=block,
                    offset=offset,
                    interface_name=f"eth{offset}",
                    is_primary=True,
                )
        assert await primaries() == [(True, 4), (True, 6)]
        await engine.dispose()
        await anyio.to_thread.run_sync(command.downgrade, config, before)
        async with engine.connect() as connection:
            rows = await connection.exec_driver_sql(
                'SELECT is_primary FROM address ORDER BY "offset"'
            )
            assert [bool(primary) for (primary,) in rows] == [True, False]
        await engine.dispose()
        migrate.upgrade(settings)
        assert await primaries() == [(True, 4), (False, 6)]
    finally:
        await engine.dispose()
