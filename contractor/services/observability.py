"""What the metrics and the readiness check read from the database, and counting what a
transaction did once it commits.

``snapshot`` reads the gauges of ``contractor.metrics.Snapshot`` in one short read-only
transaction: a handful of grouped counts (jobs by site and state, open tasks by site, module
and state, pending deliveries by target) over small or indexed sets, the newest event id,
and the two outbox readers' positions. ``contractor.monitoring`` caches it between scrapes.

``on_commit(session, record)`` runs ``record`` (an increment of a counter) after the
session's transaction commits, and drops it when it rolls back: a job step that fails and is
rolled back counts no transition (``install_commit_counts`` installs the hooks).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from sqlalchemy import case, func, literal, select
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from contractor.metrics import Snapshot
from contractor.models import Event, Job, Site, Task, TaskState, utcnow
from contractor.models.dns_push import DnsPushCursor, DnsPushZone
from contractor.models.events import WebhookDelivery, WebhookTarget

__all__ = [
    "install_commit_counts",
    "oldest_waiting_event",
    "on_commit",
    "snapshot",
]

_PENDING = "contractor.metrics.on_commit"


def on_commit(session: AsyncSession | Session, record: Callable[[], None]) -> None:
    """Run ``record`` once the session's transaction has committed; never when it, or the
    savepoint it was made in, rolls back."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    within = sync.get_nested_transaction() or sync.get_transaction()
    sync.info.setdefault(_PENDING, []).append((within, record))


def _after_commit(session: Session) -> None:
    for _, record in session.info.pop(_PENDING, ()):
        record()


def _inside(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    """A rollback (of a savepoint, or of everything): what was made inside it is dropped."""
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [(made, record) for made, record in pending if not _inside(made, previous)]


def install_commit_counts(session_class: type[Session]) -> None:
    """The hooks ``on_commit`` needs, on every session of ``session_class``."""
    sa_event.listen(session_class, "after_commit", _after_commit)
    sa_event.listen(session_class, "after_soft_rollback", _after_soft_rollback)


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    return 0.0 if then is None else max(0.0, (now - then).total_seconds())


async def oldest_waiting_event(session: AsyncSession) -> dict[str, dt.datetime | None]:
    """For each outbox reader (``webhooks``: the active targets, ``dns``: the DNS pusher),
    when the oldest event it has not handled yet was written (None: it is up to date)."""
    found: dict[str, dt.datetime | None] = {}
    cursor = (
        await session.execute(
            select(func.min(WebhookTarget.cursor)).where(WebhookTarget.active.is_(True))
        )
    ).scalar_one_or_none()
    if cursor is not None:
        found["webhooks"] = (
            await session.execute(select(func.min(Event.at)).where(Event.id > cursor))
        ).scalar_one_or_none()
    dns = (await session.execute(select(func.max(DnsPushCursor.cursor)))).scalar_one_or_none()
    if dns is not None:
        found["dns"] = (
            await session.execute(select(func.min(Event.at)).where(Event.id > dns))
        ).scalar_one_or_none()
    return found


async def snapshot(session: AsyncSession) -> Snapshot:
    """The database's gauges now (see the module docstring)."""
    started = time.perf_counter()
    now = utcnow()
    result = Snapshot()
    jobs = select(Site.name, Job.state, func.count()).join(Site, Site.id == Job.site_id)
    for site, state, count in await session.execute(jobs.group_by(Site.name, Job.state)):
        result.jobs[(site, state)] = count
    task_state = case(
        (Task.lease_expires_at.is_(None) & (Task.available_at > now), literal("backoff")),
        (Task.lease_expires_at.is_(None), literal("ready")),
        (Task.lease_expires_at > now, literal("leased")),
        else_=literal("expired"),
    )
    tasks = (
        select(Site.name, Task.module, task_state, func.count())
        .join(Site, Site.id == Task.site_id)
        .where(Task.state == TaskState.OPEN)
        .group_by(Site.name, Task.module, task_state)
    )
    for site, module, kind, count in await session.execute(tasks):
        result.tasks[(site, module, kind)] = count
    result.events_cursor = (
        await session.execute(select(func.coalesce(func.max(Event.id), 0)))
    ).scalar_one()
    for reader, at in (await oldest_waiting_event(session)).items():
        result.outbox_lag[reader] = _age(now, at)
    backlog = (
        select(WebhookTarget.name, func.count(), func.min(WebhookDelivery.created))
        .join(WebhookTarget, WebhookTarget.id == WebhookDelivery.target_id)
        .where(WebhookDelivery.state == "pending")
        .group_by(WebhookTarget.name)
    )
    for name in (await session.execute(select(WebhookTarget.name))).scalars():
        result.webhook_backlog[name] = 0
        result.webhook_oldest[name] = 0.0
    for name, count, oldest in await session.execute(backlog):
        result.webhook_backlog[name] = count
        result.webhook_oldest[name] = _age(now, oldest)
    for zone, zone_state in await session.execute(select(DnsPushZone.name, DnsPushZone.state)):
        result.dns_zones[zone] = zone_state
    result.read_seconds = time.perf_counter() - started
    return result
