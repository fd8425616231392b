"""The events benchmark's writers, in processes of their own.

In the bench's own process the writers shared one interpreter (one GIL) with the webhook
receiver's threads and the WebSocket client: they capped each other, and an arrival was
timed late whenever a writer held the interpreter. Here each writer process commits its share
of the changes with ``writers`` concurrent transactions of several site creations each,
through the services (the same outbox hooks, validation and order lock as any mutation), and
reports when each name's commit returned. ``time.monotonic`` is the system's monotonic clock
on Linux, the same in every process, so those times compare with the arrivals the bench
process notes.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import events
from contractor.services import site as sites
from contractor.settings import Settings

__all__ = ["Written", "pids", "pool", "warm", "write"]

# start, end (monotonic seconds) and each name's commit time
Written = tuple[float, float, dict[str, float]]


def pool(processes: int) -> ProcessPoolExecutor:
    """Writer processes started fresh (spawn: no copy of the bench's event loop or threads)."""
    return ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn"))


def pids(executor: ProcessPoolExecutor) -> list[int]:
    """The writer processes' ids (their CPU time is part of the bench's)."""
    return [process.pid for process in (executor._processes or {}).values() if process.pid]


def warm() -> None:
    """Import everything a writer needs, so the first timed round does not pay for it."""


def write(database_url: str, chunks: list[list[str]], writers: int) -> Written:
    """Commit ``chunks`` (one transaction each: one site per name) with ``writers``
    concurrent writers; the first transaction starts at ``start`` once every writer's
    connection is open."""
    return asyncio.run(_write(database_url, chunks, writers))


async def _write(database_url: str, chunks: list[list[str]], writers: int) -> Written:
    settings = Settings(database_url=database_url, auto_migrate=False)
    engine = create_engine(settings)
    factory = create_session_factory(engine, writes=True)
    committed: dict[str, float] = {}
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    # open the connections before the clock starts
    connections = [await engine.connect() for _ in range(writers)]
    for connection in connections:
        await connection.close()

    async def writer() -> None:
        while not queue.empty():
            names = queue.get_nowait()
            async with transaction(factory) as session:
                events.set_actor(session, "bench")
                for name in names:
                    await sites.create_site(session, name=name)
            now = time.monotonic()
            for name in names:
                committed[name] = now

    try:
        start = time.monotonic()
        await asyncio.gather(*(writer() for _ in range(writers)))
        return start, time.monotonic(), committed
    finally:
        await engine.dispose()
