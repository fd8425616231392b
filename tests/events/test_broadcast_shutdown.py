"""The broadcaster stops when cancelled, even when the cancellation arrives in the same
moment as a wake-up (Python 3.11's ``asyncio.wait_for`` drops such a cancellation, and a
server's shutdown then waited for ever)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.events.broadcast import EventBroadcaster
from tests import conftest


async def test_cancel_during_a_wake_up_stops_the_broadcaster(tmp_path: Path) -> None:
    settings = conftest.test_settings(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings)
    try:
        for _ in range(20):
            broadcaster = EventBroadcaster(database_url=settings.database_url, poll_seconds=30)
            task = asyncio.create_task(broadcaster.run(create_session_factory(engine)))
            await asyncio.wait_for(broadcaster._started.wait(), 10)
            for _ in range(5):  # let it read once and settle into its wait
                await asyncio.sleep(0.01)
            broadcaster._wake.set()
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done == {task}, "the broadcaster ignored its cancellation"
            assert task.cancelled()
    finally:
        await engine.dispose()
