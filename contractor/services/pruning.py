"""Event retention: removing events and finished webhook deliveries older than the
retention, and telling readers who ask for what was removed.

Events are removed oldest first, up to the newest one older than the retention, but never
one that an active webhook target has not turned into deliveries yet, and never one that a
remaining delivery names (a pending delivery still needs it; a finished one may be retried).
Finished deliveries (and finished DNS pushes, ``DnsPush``) go once they finished before the
cutoff. How far events were removed is
the **horizon** (``EventHorizon``): reading "after N" for N below it is refused with
``Pruned`` instead of silently skipping what is gone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput, Pruned
from contractor.models import Event, EventHorizon, WebhookDelivery, WebhookTarget, utcnow
from contractor.models.dns_push import DnsPush

__all__ = ["Pruning", "check_after", "horizon", "prune", "prune_needed"]

# Held for one prune transaction on PostgreSQL: a second pruner skips instead of waiting.
_PRUNE_LOCK: Final = 0x636F6E74726164  # "contrad"
_FINISHED = ("delivered", "failed", "cancelled")


async def horizon(session: AsyncSession) -> int:
    """Events up to this cursor were pruned (0: none ever were)."""
    value = (
        await session.execute(select(EventHorizon.cursor).where(EventHorizon.id == 1))
    ).scalar()
    return int(value or 0)


async def check_after(session: AsyncSession, after: int, *, field: str = "after") -> None:
    """Refuse to read events after ``after`` when some of them were pruned."""
    pruned = await horizon(session)
    if after < pruned:
        raise Pruned(
            f"events up to cursor {pruned} were removed (older than the retention); "
            f"{field} {after} would miss changes: read the current state again, then "
            f"continue after cursor {pruned}",
            field=field,
        )


async def prune_needed(
    session: AsyncSession, *, retention_days: float, now: dt.datetime | None = None
) -> bool:
    """Whether ``prune`` may find something to remove (reads only: on SQLite a writing
    transaction, even one that changes nothing, holds the database's write lock)."""
    cutoff = (now or utcnow()) - dt.timedelta(days=retention_days)
    finished = select(WebhookDelivery.id).where(
        WebhookDelivery.state.in_(_FINISHED), WebhookDelivery.finished_at < cutoff
    )
    if (await session.execute(finished.limit(1))).first() is not None:
        return True
    oldest = select(Event.at).where(Event.id > await horizon(session)).order_by(Event.id)
    at = (await session.execute(oldest.limit(1))).scalar()
    return at is not None and at < cutoff


@dataclass(frozen=True)
class Pruning:
    """What one ``prune`` removed, and the horizon after it."""

    events: int
    deliveries: int
    horizon: int
    more: bool = False  # the batch was full: call again
    skipped: bool = False  # another process was pruning


async def prune(
    session: AsyncSession,
    *,
    retention_days: float,
    now: dt.datetime | None = None,
    batch: int = 10_000,
) -> Pruning:
    """Remove finished deliveries and events older than ``retention_days``, looking at
    ``batch`` events at most (``more`` says whether to call again); the caller commits."""
    if retention_days <= 0:
        raise InvalidInput("the retention must be more than 0 days", field="retention_days")
    if batch < 1:
        raise InvalidInput("the batch must be at least 1", field="batch")
    if session.get_bind().dialect.name == "postgresql":
        locked = await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PRUNE_LOCK}
        )
        if not locked.scalar_one():
            return Pruning(0, 0, await horizon(session), skipped=True)
    cutoff = (now or utcnow()) - dt.timedelta(days=retention_days)
    deliveries = await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.state.in_(_FINISHED), WebhookDelivery.finished_at < cutoff
        )
    )
    removed_deliveries = int(deliveries.rowcount or 0)  # type: ignore[attr-defined]
    # the DNS push log goes with the delivery log (counted with it)
    pushes = await session.execute(delete(DnsPush).where(DnsPush.finished_at < cutoff))
    removed_deliveries += int(pushes.rowcount or 0)  # type: ignore[attr-defined]
    start = await horizon(session)
    # an active target must still turn what it has not looked at into deliveries
    lagging = (
        await session.execute(select(func.min(WebhookTarget.cursor)).where(WebhookTarget.active))
    ).scalar()
    query = select(Event.id, Event.at).where(Event.id > start).order_by(Event.id).limit(batch)
    if lagging is not None:
        query = query.where(Event.id <= lagging)
    upto = start
    looked = 0
    for event_id, at in await session.execute(query):
        if at >= cutoff:
            break
        upto = event_id
        looked += 1
    removed_events = 0
    if upto > start:
        named = exists().where(WebhookDelivery.event_id == Event.id)
        result = await session.execute(
            delete(Event)
            .where(Event.id > start, Event.id <= upto, ~named)
            .execution_options(synchronize_session=False)
        )
        removed_events = int(result.rowcount or 0)  # type: ignore[attr-defined]
        row = await session.get(EventHorizon, 1)
        if row is None:
            session.add(EventHorizon(id=1, cursor=upto, pruned_at=utcnow()))
        else:
            row.cursor = upto
            row.pruned_at = utcnow()
        await session.flush()
    return Pruning(removed_events, removed_deliveries, upto, more=looked == batch)
