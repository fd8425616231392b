"""One reader of the outbox per process, fanning new events out to its subscribers.

The broadcaster keeps the cursor of the newest event it has read. Whenever it is woken it
reads what came after, in cursor order, and hands the rows to every subscriber's queue. It
is woken:

- on PostgreSQL by ``NOTIFY contractor_events``, sent by every transaction that wrote events
  and delivered when it commits, on one ``LISTEN`` connection per process (re-opened when it
  drops, with a look at the table each time);
- in this process, once a connection whose transaction wrote events is handed back to the
  pool (that is, after its commit);
- every ``poll_seconds`` in any case (which is also how, on SQLite, a change committed by
  another process such as the CLI is seen).

A subscriber registers first, then replays from the database everything after its cursor,
then takes rows from its queue, skipping what the replay already covered: nothing falls
between the two. A subscriber too slow for its queue drops the queue and replays again from
the database; it never misses an event and never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contractor.listen import Signal, listen, stop_if_cancelled
from contractor.models import Event
from contractor.services import plainreads
from contractor.services.events import (
    NOTIFY_CHANNEL,
    WROTE_EVENTS_KEY,
    EventFilter,
    events_after,
    latest_cursor,
)
from contractor.services.pruning import check_after

__all__ = ["EventBroadcaster"]

log = logging.getLogger(__name__)


class _Subscriber:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: deque[Event] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False

    def push(self, rows: list[Event]) -> None:
        if self.overflowed:
            return
        if len(self.rows) + len(rows) > self.limit:
            self.rows.clear()  # too slow: it reads the database again instead
            self.overflowed = True
        else:
            self.rows.extend(rows)
        self.ready.set()

    def missed(self) -> None:
        """Events went by that were not handed to it: it reads them from the database."""
        self.rows.clear()
        self.overflowed = True
        self.ready.set()


class EventBroadcaster:
    def __init__(
        self,
        *,
        database_url: str,
        poll_seconds: float = 1.0,
        gather_seconds: float = 0.05,
        gather_rows: int = 100,
        batch: int = 500,
        queue_limit: int = 5000,
    ) -> None:
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._database_url = database_url
        self._poll_seconds = poll_seconds
        # after a look that found at least ``gather_rows`` events, wait this long before the
        # next: under a heavy stream one read takes many events (and the webhook worker,
        # woken by each read, one round for them all). A look that found fewer is followed
        # by the next wake-up at once: a trickle of commits is not held back (each look is
        # one indexed read, and the webhook worker's rounds coalesce wake-ups by themselves)
        self._gather_seconds = gather_seconds
        self._gather_rows = gather_rows
        self._batch = batch
        self._queue_limit = queue_limit
        self._subscribers: set[_Subscriber] = set()
        self._wake = asyncio.Event()
        self._started = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.position = 0
        self.changed = Signal()  # fired after new events were read (the webhook worker waits)

    # -- wake-ups ----------------------------------------------------------------------

    def attach(self, engine: AsyncEngine) -> None:
        """Wake up when a connection of ``engine`` that wrote events is handed back (its
        transaction has committed by then; a rollback clears the mark)."""

        def on_checkin(_dbapi_connection: Any, record: Any) -> None:
            if record is not None and record.info.pop(WROTE_EVENTS_KEY, False):
                self.wake()

        def on_rollback(connection: Any) -> None:
            with contextlib.suppress(SQLAlchemyError):
                connection.info.pop(WROTE_EVENTS_KEY, None)

        event.listen(engine.sync_engine, "checkin", on_checkin)
        event.listen(engine.sync_engine, "rollback", on_rollback)

    def wake(self) -> None:
        """Look for new events soon (callable from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # -- running -----------------------------------------------------------------------

    async def run(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Read and fan out new events with ``sessions`` until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._sessions = sessions
        while True:
            try:
                async with sessions() as session:
                    self.position = await latest_cursor(session)
                break
            except Exception as error:  # not migrated yet, or the database is away
                stop_if_cancelled()
                log.warning("cannot read the event log yet: %s", error)
                await asyncio.sleep(self._poll_seconds)
        self._started.set()
        listener = None
        if self._database_url.startswith("postgresql"):
            # a wake-up on each (re)connection: anything committed while nobody listened
            listening = listen(
                self._database_url,
                [NOTIFY_CHANNEL],
                lambda _notification: self._wake.set(),
                on_listening=self._wake.set,
            )
            listener = asyncio.create_task(listening, name="events-listen")
        try:
            while True:
                stop_if_cancelled()
                self._wake.clear()
                found = 0
                try:
                    found = await self._read_new()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the database went away; try again later
                    stop_if_cancelled()
                    log.warning("reading new events failed: %s", error)
                if found >= self._gather_rows and self._gather_seconds > 0:
                    await asyncio.sleep(self._gather_seconds)
                # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as
                # the event is set, and this task would then outlive the server's shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wake.wait()
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _read_new(self) -> int:
        """Read and hand out what came after the cursor; how many events there were."""
        assert self._sessions is not None
        if not self._subscribers:
            return await self._skip_new()
        found = 0
        more = True
        while more:
            async with self._sessions() as session:
                rows, _upto, more = await events_after(
                    session, after=self.position, limit=self._batch
                )
                if not rows:
                    break
                # handed out before the session is closed: its clean-up is no business of
                # theirs
                found += len(rows)
                self.position = rows[-1].id
                for subscriber in list(self._subscribers):
                    subscriber.push(rows)
                self.changed.fire()
        return found

    async def _skip_new(self) -> int:
        """With nobody subscribed only the cursor moves on: how many events came after it
        and the newest, not the rows (the webhook worker reads its own). A subscriber that
        came meanwhile started from the old cursor: it reads what it missed from the
        database, as one whose queue overflowed does."""
        assert self._sessions is not None
        async with plainreads.reading(self._sessions) as on:
            found, newest = await plainreads.events_after_count(on, after=self.position)
        if found:
            self.position = max(self.position, newest)
            for subscriber in list(self._subscribers):
                subscriber.missed()
            self.changed.fire()
        return found

    # -- subscribing -------------------------------------------------------------------

    async def subscribe(
        self, filter: EventFilter, after: int | None
    ) -> AsyncGenerator[Event, None]:
        """Events matching ``filter`` after cursor ``after`` (None: from now on), in cursor
        order, without end; ``Pruned`` when events after ``after`` have been removed."""
        await self._started.wait()
        assert self._sessions is not None
        subscriber = _Subscriber(self._queue_limit)
        self._subscribers.add(subscriber)
        try:
            seen = self.position if after is None else after
            replay = after is not None
            while True:
                if replay or subscriber.overflowed:
                    subscriber.overflowed = False
                    subscriber.rows.clear()
                    async with self._sessions() as session:
                        await check_after(session, seen)  # never skip what was pruned
                    more = True
                    while more:
                        async with self._sessions() as session:
                            rows, upto, more = await events_after(
                                session, after=seen, filter=filter, limit=self._batch
                            )
                        for row in rows:
                            yield row
                        seen = max(seen, upto)
                    replay = False
                    continue
                if not subscriber.rows:
                    subscriber.ready.clear()
                    await subscriber.ready.wait()
                    continue
                row = subscriber.rows.popleft()
                if row.id <= seen:
                    continue
                seen = row.id
                filter.observe(row)
                if filter.matches(row):
                    yield row
        finally:
            self._subscribers.discard(subscriber)
