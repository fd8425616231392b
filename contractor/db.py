"""The async engine and session factory, built from ``Settings``.

Sessions never commit inside services: whoever opens the session (a GraphQL mutation, the
CLI, the foreman) owns the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from contractor.services import install_session_hooks
from contractor.settings import Settings

__all__ = ["POSTGRESQL_OPTIONS", "create_engine", "create_session_factory", "transaction"]

# PostgreSQL session settings, given at connection start (libpq ``options``). A Foundation
# is read with its seven type tables outer-joined (the ORM's polymorphic load); with the
# default join_collapse_limit (8) the planner searched every order of those eight relations,
# 12-25 ms of planning for a query that runs in 0.5 ms. At 4 it still orders any four
# relations freely and splits larger join trees where they are written.
POSTGRESQL_OPTIONS = "-c join_collapse_limit=4"


def create_engine(settings: Settings, **kwargs: Any) -> AsyncEngine:
    """An engine for ``settings.database_url``; SQLite gets foreign keys, WAL and savepoints."""
    url = settings.database_url
    if url.startswith("sqlite"):
        engine: AsyncEngine

        async def connect() -> Any:
            return await _sqlite_connect(engine)

        engine = create_async_engine(
            url, echo=settings.database_echo, async_creator=connect, **kwargs
        )
        _configure_sqlite(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_size", settings.database_pool_size)
    kwargs.setdefault("max_overflow", settings.database_max_overflow)
    given = make_url(url).query.get("options")  # the URL's own options go after ours
    options = " ".join([POSTGRESQL_OPTIONS, *([given] if isinstance(given, str) else given or ())])
    kwargs["connect_args"] = {"options": options, **kwargs.get("connect_args", {})}
    engine = create_async_engine(url, echo=settings.database_echo, **kwargs)
    _ping_when_idle(engine.sync_engine, settings.database_ping_idle_seconds)
    return engine


def create_autocommit_engine(settings: Settings) -> AsyncEngine:
    """An engine (PostgreSQL) whose connections run each statement as a transaction of its
    own, set once as each connection is made. (An engine's ``isolation_level`` execution
    option instead switches every connection over as it is handed out, an await inside
    SQLAlchemy's making of the Connection: a task cancelled there, as background loops are
    at shutdown, left the checked-out connection to the garbage collector.)"""
    return create_engine(settings, isolation_level="AUTOCOMMIT")


_CHECKED_IN_AT = "contractor.checked_in_at"


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection with a round trip before it is used, when it has been idle
    for more than ``idle_seconds`` (the database may have restarted meanwhile). A busy
    server hands its connections out several times a second: pinging each of those would
    cost a round trip per transaction for connections that were working moments ago."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN_AT)
        if checked_in is not None and time.monotonic() - checked_in <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool drops it and tries another (or a new one)
            raise DisconnectionError(f"pooled connection failed its check: {error}") from error


async def _sqlite_connect(engine: AsyncEngine) -> Any:
    """An aiosqlite connection, as the dialect makes it, whose opening a cancellation does
    not abandon.

    aiosqlite opens the database in a thread of the connection's own and hands the result
    back to the event loop. A task cancelled meanwhile (a background loop stopped at
    shutdown, say) left the connection to that thread, which then answered a loop that had
    closed ("Event loop is closed" from the thread, a connection never closed). Here the
    opening is waited for and the connection closed before the cancellation goes on."""
    arguments, options = engine.dialect.create_connect_args(engine.sync_engine.url)
    opening = aiosqlite.connect(*arguments, **options)
    thread = getattr(opening, "_thread", None)
    if thread is not None:
        thread.daemon = True  # as the dialect does: an unclosed one must not hold the exit
    pending = asyncio.ensure_future(opening)
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await pending).close()
        raise


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite (and so aiosqlite) begins transactions lazily on its own, which breaks
    # SAVEPOINT and lets a read start outside any transaction. Take that over: no implicit
    # transactions from the driver, an explicit BEGIN from SQLAlchemy.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    # Writers take the write lock when they begin (BEGIN IMMEDIATE) and so queue behind each
    # other for busy_timeout; a deferred transaction that reads and then writes could instead
    # fail at once with "database is locked" when another writer got there first.
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def create_session_factory(
    bind: AsyncEngine | AsyncConnection, *, writes: bool = False, **options: Any
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``bind`` (an engine, or a connection whose transaction they join as
    ``options`` say), carrying the services' session hooks (the outbox, the config
    generation: ``contractor.services.install_session_hooks``); ``writes=True`` for sessions
    that change data (on SQLite they begin with the write lock held). Every session that may
    change data is made here: a bare ``AsyncSession`` would write no events."""
    if writes and isinstance(bind, AsyncEngine) and bind.dialect.name == "sqlite":
        bind = bind.execution_options(sqlite_begin="IMMEDIATE")

    class ContractorSession(Session):
        """This factory's sessions: a class of their own, so the hooks are theirs alone."""

    install_session_hooks(ContractorSession)
    options = {"expire_on_commit": False, "autoflush": False, **options}
    return async_sessionmaker(bind, sync_session_class=ContractorSession, **options)


@asynccontextmanager
async def transaction(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: committed when the block ends, rolled back on error."""
    async with factory() as session, session.begin():
        yield session
