"""Wake-ups: PostgreSQL ``LISTEN`` across dropped connections, and the in-process ``Signal``.

The outbox's broadcaster (``contractor.events.broadcast``) and the foreman's hub
(``contractor.foreman.hub``) each keep one ``LISTEN`` connection per process and turn what it
hears into in-process signals. ``listen`` is that connection: it connects with psycopg,
listens on the channels, hands every notification to a callback, and when the connection
drops it connects again a second later (calling ``on_listening`` each time it listens again,
so the caller can look for what it missed meanwhile), until its task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg import Notify

__all__ = ["Signal", "listen", "stop_if_cancelled"]

log = logging.getLogger(__name__)


def stop_if_cancelled() -> None:
    """Raise CancelledError when this task is being cancelled. A driver may turn the
    cancellation of a query into its own error (PostgreSQL's "canceling statement due to user
    request"); a loop that catches errors to retry must not swallow the cancellation too."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Signal:
    """A broadcast: every waiter taken before ``fire()`` wakes up."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        return self._event

    def fire(self) -> None:
        fired, self._event = self._event, asyncio.Event()
        fired.set()


async def listen(
    database_url: str,
    channels: Sequence[str],
    on_notification: Callable[[Notify], None],
    *,
    on_listening: Callable[[], None] | None = None,
    retry_seconds: float = 1.0,
) -> None:
    """Call ``on_notification`` for every notification on ``channels`` of the PostgreSQL
    database at ``database_url`` until cancelled; ``on_listening`` once listening, after each
    (re)connection. A dropped or refused connection is logged and tried again after
    ``retry_seconds``."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    while True:
        try:
            connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
            async with connection:
                for channel in channels:
                    await connection.execute(f'LISTEN "{channel}"')
                if on_listening is not None:
                    on_listening()
                async for notification in connection.notifies():
                    on_notification(notification)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            stop_if_cancelled()
            log.warning("LISTEN %s failed (%s); reconnecting", ", ".join(channels), error)
            await asyncio.sleep(retry_seconds)
