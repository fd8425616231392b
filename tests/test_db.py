"""The engine's pooled PostgreSQL connections: checked when idle, trusted when busy; the
session factory's hooks, installed on it and not at import."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

import contractor
from contractor.db import (
    create_autocommit_engine,
    create_engine,
    create_session_factory,
    transaction,
)
from contractor.services import hotpath
from contractor.services.config import generation
from contractor.services.events import outbox
from contractor.settings import Settings
from tests.cancelling import cancelled_at_each_wait


async def _backend_pid(engine: object) -> int:
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.mark.asyncio
async def test_an_idle_connection_dropped_by_the_server_is_replaced(pg_url: str) -> None:
    engine = create_engine(Settings(database_url=pg_url, database_ping_idle_seconds=0))
    try:
        before = await _backend_pid(engine)
        url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
            # the server ends the pooled connection (as a restart would)
            await other.execute("SELECT pg_terminate_backend(%s, 5000)", (before,))
        after = await _backend_pid(engine)  # no error: the check found it dead
        assert after != before
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_a_recently_used_connection_is_handed_out_without_a_check(pg_url: str) -> None:
    engine = create_engine(Settings(database_url=pg_url, database_ping_idle_seconds=3600))
    pings: list[object] = []
    original = engine.dialect.do_ping

    def counting(connection: object) -> bool:
        pings.append(connection)
        return original(connection)

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    try:
        first = await _backend_pid(engine)  # a new connection is checked once
        assert len(pings) == 1
        for _ in range(3):
            assert await _backend_pid(engine) == first
        assert len(pings) == 1
    finally:
        await engine.dispose()


@pytest.mark.asyncio
@pytest.mark.parametrize("url_options", [None, "-c work_mem=5MB"])
async def test_postgresql_sessions_plan_a_foundation_load_without_searching_every_order(
    pg_url: str, url_options: str | None
) -> None:
    # a Foundation's polymorphic load joins eight relations; a URL's own options still hold
    url = pg_url if url_options is None else f"{pg_url}?options={url_options.replace(' ', '%20')}"
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            limit = (await connection.execute(text("SHOW join_collapse_limit"))).scalar_one()
            work_mem = (await connection.execute(text("SHOW work_mem"))).scalar_one()
        assert limit == "4"
        if url_options is not None:
            assert work_mem == "5MB"
    finally:
        await engine.dispose()


def test_a_sqlite_connection_cancelled_while_opening_is_closed(tmp_path: Path) -> None:
    # aiosqlite opens in a thread of its own; abandoned, that thread answered a closed loop
    failures: list[threading.ExceptHookArgs] = []
    hook, threading.excepthook = threading.excepthook, failures.append
    before = set(threading.enumerate())

    async def cancel_while_opening() -> None:
        engine = create_engine(Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}"))
        for attempt in range(120):  # cancelled at one point of the opening or another
            opening = asyncio.ensure_future(engine.connect().start())
            for _ in range(attempt % 6):
                await asyncio.sleep(0)
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
        await engine.dispose()

    try:
        asyncio.run(cancel_while_opening())
        time.sleep(0.2)
    finally:
        threading.excepthook = hook
    assert failures == []
    assert [thread for thread in set(threading.enumerate()) - before if thread.is_alive()] == []


def test_importing_the_package_installs_no_session_hook() -> None:
    """The services' hooks live on each factory's session class, never on ``Session``."""
    for module in pkgutil.walk_packages(contractor.__path__, "contractor."):
        # not the entry point, nor the migrations (alembic runs those)
        if module.name != "contractor.__main__" and ".migrations" not in module.name:
            importlib.import_module(module.name)
    hooks = [
        ("after_flush", outbox._after_flush),
        ("before_commit", outbox._before_commit),
        ("after_soft_rollback", outbox._after_soft_rollback),
        ("do_orm_execute", outbox._on_orm_execute),
        ("before_commit", generation._bump_before_commit),
    ]
    for name, listener in hooks:
        assert not event.contains(Session, name, listener), name


def test_each_session_factory_carries_the_hooks() -> None:
    engine = create_engine(Settings(database_url="sqlite+aiosqlite://"))
    first, second = create_session_factory(engine), create_session_factory(engine, writes=True)
    classes = {first().sync_session.__class__, second().sync_session.__class__}
    assert len(classes) == 2  # a class per factory: its hooks are its own
    for session_class in classes:
        assert event.contains(session_class, "after_flush", outbox._after_flush)
        assert event.contains(session_class, "before_commit", generation._bump_before_commit)
    assert not event.contains(Session, "after_flush", outbox._after_flush)


async def _pooled_as_made(engine: AsyncEngine, *, autocommit: bool) -> None:
    """Nothing checked out, and the pooled connection in the mode its engine makes them."""
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert raw.driver_connection.autocommit is autocommit  # type: ignore[union-attr]


@pytest.mark.asyncio
@pytest.mark.parametrize("after", [False, True], ids=["as-a-wait-begins", "after-a-wait"])
@pytest.mark.parametrize("kind", ["read", "write", "autocommit-read"])
async def test_a_session_cancelled_at_any_wait_returns_its_connection(
    pg_url: str, kind: str, after: bool
) -> None:
    # Background loops are cancelled at shutdown wherever they are: the checked-out
    # connection goes back to the pool (or is dropped), never to the garbage collector.
    # (Sessions of an engine with the isolation_level execution option failed here: it
    # switches connections over inside SQLAlchemy's making of the Connection.)
    settings = Settings(database_url=pg_url, database_ping_idle_seconds=0)  # a ping each time
    engine = create_autocommit_engine(settings) if kind == "autocommit-read" else None
    engine = engine or create_engine(settings)
    sessions = create_session_factory(engine, writes=kind == "write")

    async def operation() -> None:
        if kind == "write":
            async with transaction(sessions) as session:
                await session.execute(text("CREATE TEMPORARY TABLE t (x int)"))
        else:
            async with sessions() as session:
                await session.execute(text("SELECT 1"))

    async def check() -> None:
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    try:
        assert await cancelled_at_each_wait(operation, check, after=after) >= 2
    finally:
        await engine.dispose()


@pytest.mark.asyncio
@pytest.mark.parametrize("after", [False, True], ids=["as-a-wait-begins", "after-a-wait"])
@pytest.mark.parametrize("autocommit", [False, True], ids=["engine", "autocommit-engine"])
async def test_a_hot_path_read_cancelled_at_any_wait_returns_its_connection_as_it_came(
    pg_url: str, after: bool, autocommit: bool
) -> None:
    # a connection of an ordinary engine never goes back to the pool in autocommit (its
    # next session's transaction would commit statement by statement); one of an
    # autocommit engine goes back in autocommit
    settings = Settings(database_url=pg_url, database_ping_idle_seconds=0)
    engine = create_autocommit_engine(settings) if autocommit else create_engine(settings)

    async def operation() -> None:
        async with hotpath.autocommit(engine) as connection:
            await connection.execute("SELECT 1")

    try:
        points = await cancelled_at_each_wait(
            operation, lambda: _pooled_as_made(engine, autocommit=autocommit), after=after
        )
        assert points >= (2 if autocommit else 4)  # the ping, [autocommit on,] read, [off]
    finally:
        await engine.dispose()
