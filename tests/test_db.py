"""The engine's pooled PostgreSQL connections: checked when idle, trusted when busy."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from contractor.db import create_engine
from contractor.settings import Settings


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
