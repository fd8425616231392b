"""The LISTEN helper on a real PostgreSQL: notifications, reconnection, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
import pytest

from contractor.listen import Signal, listen


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def _notify(url: str, channel: str) -> None:
    async with await psycopg.AsyncConnection.connect(_plain(url), autocommit=True) as connection:
        await connection.execute(f"NOTIFY \"{channel}\", 'hello'")


async def test_listen_hears_its_channels_and_listens_again_after_a_drop(pg_url: str) -> None:
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    listening: asyncio.Queue[int] = asyncio.Queue()
    count = 0

    def on_listening() -> None:
        nonlocal count
        count += 1
        listening.put_nowait(count)

    task = asyncio.create_task(
        listen(
            pg_url,
            ["listen_a", "listen_b"],
            lambda n: heard.put_nowait((n.channel, n.payload)),
            on_listening=on_listening,
            retry_seconds=0.05,
        )
    )
    try:
        assert await asyncio.wait_for(listening.get(), 10) == 1
        await _notify(pg_url, "listen_b")
        await _notify(pg_url, "not_listened")
        await _notify(pg_url, "listen_a")
        assert await asyncio.wait_for(heard.get(), 10) == ("listen_b", "hello")
        assert await asyncio.wait_for(heard.get(), 10) == ("listen_a", "hello")

        # the server drops the listening connection: it connects and listens again
        async with await psycopg.AsyncConnection.connect(_plain(pg_url), autocommit=True) as other:
            await other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
            )
        assert await asyncio.wait_for(listening.get(), 10) == 2
        await _notify(pg_url, "listen_a")
        assert await asyncio.wait_for(heard.get(), 10) == ("listen_a", "hello")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def test_listen_keeps_trying_a_database_that_is_away_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(
        listen(
            "postgresql://nobody@127.0.0.1:1/none",
            ["listen_a"],
            lambda _n: None,
            retry_seconds=0.01,
        )
    )
    with caplog.at_level(logging.WARNING, logger="contractor.listen"):
        await asyncio.sleep(0.3)
    assert not task.done()  # a refused connection is retried, not raised
    assert len([r for r in caplog.records if "LISTEN listen_a failed" in r.message]) >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_signal_wakes_the_waiters_taken_before_it_fired() -> None:
    signal = Signal()
    before = signal.waiter()
    signal.fire()
    after = signal.waiter()
    assert before.is_set()
    assert not after.is_set()
