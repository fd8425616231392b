"""Cancel an operation at each of its waits on PostgreSQL in turn, as a shutdown may cancel a
background task at any of them (``cancelled_at_each_wait``)."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg


@contextmanager
def _unraisables() -> Iterator[list[str]]:
    """What the interpreter could not raise meanwhile (a pooled connection collected
    unreturned: SQLAlchemy's warning from a finalizer), as text."""
    seen: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda raised: seen.append(f"{raised.exc_value!r} in {raised.object!r}")
    try:
        yield seen
    finally:
        sys.unraisablehook = hook


async def cancelled_at_each_wait(
    operation: Callable[[], Awaitable[Any]],
    check: Callable[[], Awaitable[None]],
    *,
    after: bool,
) -> int:
    """Run ``operation`` once per wait it makes on a psycopg connection, its task cancelled
    at that wait (as it begins or, ``after``, once the driver's work is done, where psycopg
    gives the loop a turn after a busy stretch); ``check`` after each run, with nothing
    left to the garbage collector. Returns how many waits were cancelled at."""
    original = psycopg.AsyncConnection.wait
    state = {"count": 0, "at": 0}

    async def cancel() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)  # the CancelledError comes from here

    async def wait(connection: psycopg.AsyncConnection[Any], gen: Any, *a: Any, **kw: Any) -> Any:
        state["count"] += 1
        here = state["count"] == state["at"]
        if here and not after:
            await cancel()
        result = await original(connection, gen, *a, **kw)
        if here and after:
            await cancel()
        return result

    psycopg.AsyncConnection.wait = wait  # type: ignore[method-assign,assignment]
    try:
        at = 0
        while True:
            at += 1
            state["count"], state["at"] = 0, at
            with _unraisables() as unraisable:
                with suppress(asyncio.CancelledError):  # the operation's own task's
                    await asyncio.ensure_future(operation())
                gc.collect()
            finished = state["count"] < at  # it ran to the end without reaching wait ``at``
            state["at"] = 0
            assert unraisable == [], f"cancelled at wait {at}: {unraisable}"
            await check()
            if finished:
                return at - 1
    finally:
        psycopg.AsyncConnection.wait = original  # type: ignore[method-assign]
