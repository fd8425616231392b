"""Wake-ups: in-process signals fed by commits and, on PostgreSQL, by LISTEN/NOTIFY.

Services call ``contractor.services.jobs.announce(session, channel)`` inside their
transaction. At commit, the ``Hub`` attached to the engine fires the channel's signal in this
process; on PostgreSQL the same transaction sent a NOTIFY, which ``Hub.listen`` turns into
the same signal in every other process. Waiters take ``signal.waiter()`` *before* looking for
work and wait on it afterwards, so a wake-up between the two is never lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contractor.listen import Signal, listen
from contractor.services.config import CONFIG_CHANNEL
from contractor.services.jobs import ANNOUNCE_KEY, JOBS_CHANNEL, TASKS_CHANNEL

if TYPE_CHECKING:
    from psycopg import Notify

__all__ = ["Hub", "Signal", "WakeOne"]


class WakeOne:
    """Wakes one waiter per ``fire()``, oldest first: a new task needs one poller, not all of
    them. A waiter that stops waiting without looking for work again passes a wake-up it got
    on (``leave``); one that looks again drops its own (``discard``)."""

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def waiter(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    def fire(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return

    def fire_all(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)

    def leave(self, future: asyncio.Future[None]) -> None:
        if future.done() and not future.cancelled():
            self.fire()
        else:
            self.discard(future)

    def discard(self, future: asyncio.Future[None]) -> None:
        if not future.done():
            future.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(future)


class Hub:
    def __init__(self) -> None:
        self.jobs = Signal()
        self.tasks = WakeOne()
        # Configurations changed (the config generation moved): boot data long-polls look.
        self.config = Signal()
        self._channels: dict[str, Signal | WakeOne] = {
            JOBS_CHANNEL: self.jobs,
            TASKS_CHANNEL: self.tasks,
            CONFIG_CHANNEL: self.config,
        }
        # Backend PIDs of the attached engine's connections: their notifications were already
        # fired at commit, so ``listen`` skips them (a new task would otherwise wake two
        # pollers, one of them for nothing).
        self._own_pids: set[int] = set()
        # Set when the server begins to shut down: long-polls answer at once (with no tasks)
        # instead of holding the shutdown for up to ``task_max_wait_seconds``.
        self.draining = False

    def drain(self) -> None:
        """The server is stopping: wake every long-poll, and keep new ones from waiting."""
        self.draining = True
        self.tasks.fire_all()
        self.config.fire()

    def fire(self, channel: str) -> None:
        signal = self._channels.get(channel)
        if signal is not None:
            signal.fire()

    def attach(self, engine: AsyncEngine) -> None:
        """Fire announced channels when a transaction on ``engine`` commits."""

        def pending(connection: Any) -> set[str]:
            try:
                channels: set[str] = connection.info.pop(ANNOUNCE_KEY, set())
            except SQLAlchemyError:  # an invalidated connection announces nothing
                return set()
            return channels

        def on_commit(connection: Any) -> None:
            for channel in pending(connection):
                self.fire(channel)

        def on_rollback(connection: Any) -> None:
            pending(connection)

        def backend_pid(dbapi_connection: Any) -> int | None:
            pid = getattr(getattr(dbapi_connection, "info", None), "backend_pid", None)
            return pid if isinstance(pid, int) else None

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            pid = backend_pid(dbapi_connection)
            if pid is not None:
                self._own_pids.add(pid)

        def on_close(dbapi_connection: Any, *_: Any) -> None:
            self._own_pids.discard(backend_pid(dbapi_connection) or 0)

        event.listen(engine.sync_engine, "commit", on_commit)
        event.listen(engine.sync_engine, "rollback", on_rollback)
        if engine.dialect.name == "postgresql":
            event.listen(engine.sync_engine.pool, "connect", on_connect)
            event.listen(engine.sync_engine.pool, "close", on_close)
            event.listen(engine.sync_engine.pool, "close_detached", on_close)

    async def listen(self, database_url: str, ready: asyncio.Event | None = None) -> None:
        """Forward PostgreSQL notifications to this process's signals until cancelled,
        reconnecting when the connection drops."""

        def on_listening() -> None:
            if ready is not None:
                ready.set()
            # anything missed while (re)connecting: look once
            for signal in self._channels.values():
                signal.fire()

        def on_notification(notification: Notify) -> None:
            if notification.pid not in self._own_pids:
                self.fire(notification.channel)

        await listen(database_url, list(self._channels), on_notification, on_listening=on_listening)
