"""Webhook targets and their deliveries: the SQL and the rules; the HTTP side is
``contractor.events.webhooks``.

A delivery moves ``pending`` → ``delivered``, or ``pending`` → ``failed`` when it is still
failing once older than the maximum age, or ``pending`` → ``cancelled`` by an operator;
``retry`` puts any finished one back to ``pending``, due now. Any number of processes share
the work: targets and deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
(SQLite: one process, transactions that take the write lock when they begin).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, func, insert, literal_column, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import identity_key

from contractor.errors import Conflict, InvalidInput, InvalidState, NotFound
from contractor.models import Event, WebhookDelivery, WebhookTarget, utcnow
from contractor.services.common import UNSET, added, backoff, get_by, set_given
from contractor.services.events import EventFilter, latest_cursor, site_tree
from contractor.services.validation import check_name

__all__ = [
    "Claimed",
    "Outcome",
    "cancel_delivery",
    "claim_deliveries",
    "create_target",
    "delete_target",
    "fan_out",
    "fan_out_needed",
    "get_delivery",
    "get_target",
    "list_deliveries",
    "list_targets",
    "next_due",
    "record_outcomes",
    "release",
    "retry_delivery",
    "target_filter",
    "update_target",
]

_FILTER_KEYS = ("object_types", "kinds", "site_id", "blueprint_id")
# Hot statements go to the table directly: the ORM's bulk UPDATE path costs more than the
# statement itself.
_DELIVERY: Any = WebhookDelivery.__table__
_FANNED_OUT = "contractor.webhooks.fanned_out"  # session.info: the last fan-out's events
# ``state = 'pending'`` written into the statement, not bound: a prepared statement's generic
# plan can use the partial index of pending deliveries (``ix_webhook_delivery_due``) only
# when its condition is in the text. With a parameter PostgreSQL fell back to sequential
# scans of the whole table, one per candidate in the claim's anti-join (profile: 30 ms to
# over a second per claim once a few thousand deliveries were in the table).
_PENDING: Any = literal_column("'pending'")


# -- targets ------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"webhook URL {url!r} must be an http:// or https:// URL", field="url")
    if len(url) > 2048:
        raise InvalidInput("webhook URL is longer than 2048 characters", field="url")
    return url


def _check_secret(secret: str | None) -> str:
    if secret is None:
        return secrets.token_urlsafe(32)
    if len(secret) < 16 or len(secret) > 200:
        raise InvalidInput("a webhook secret must be 16 to 200 characters long", field="secret")
    return secret


def _check_filter(value: Mapping[str, Any] | None) -> dict[str, Any]:
    value = dict(value or {})
    unknown = sorted(set(value) - set(_FILTER_KEYS))
    if unknown:
        raise InvalidInput(f"unknown event filter key {unknown[0]!r}", field="filter")
    for key in ("object_types", "kinds"):
        items = value.get(key)
        if items is not None and (
            not isinstance(items, list) or not all(isinstance(i, str) for i in items)
        ):
            raise InvalidInput(f"filter.{key} must be a list of strings", field=f"filter.{key}")
    return {k: v for k, v in value.items() if v not in (None, [])}


async def get_target(session: AsyncSession, name: str) -> WebhookTarget:
    return await get_by(session, WebhookTarget, WebhookTarget.name, name, what="webhook target")


async def list_targets(session: AsyncSession) -> list[WebhookTarget]:
    rows = await session.execute(select(WebhookTarget).order_by(WebhookTarget.name))
    return list(rows.scalars())


async def create_target(
    session: AsyncSession,
    *,
    name: str,
    url: str,
    secret: str | None = None,
    filter: Mapping[str, Any] | None = None,
    active: bool = True,
) -> WebhookTarget:
    """A new target; it receives events committed from now on. Without a secret, one is
    made (read it from the returned row: it is never shown again)."""
    check_name(name, field="name", what="webhook target name")
    if (await session.execute(select(WebhookTarget.id).where(WebhookTarget.name == name))).first():
        raise Conflict(f"webhook target {name!r} already exists", field="name")
    target = WebhookTarget(
        name=name,
        url=_check_url(url),
        secret=_check_secret(secret),
        filter=_check_filter(filter),
        active=active,
        cursor=await latest_cursor(session),
    )
    return await added(session, target)


async def update_target(
    session: AsyncSession,
    target: WebhookTarget,
    *,
    url: Any = UNSET,
    secret: Any = UNSET,
    filter: Any = UNSET,
    active: Any = UNSET,
) -> WebhookTarget:
    """Change the given fields. Re-activating a target skips what happened while it was off."""
    set_given(
        target,
        url=(url, _check_url),
        secret=(secret, _check_secret),
        filter=(filter, _check_filter),
    )
    if active is not UNSET:
        if active and not target.active:
            target.cursor = await latest_cursor(session)
        target.active = bool(active)
    await session.flush()
    return target


async def delete_target(session: AsyncSession, target: WebhookTarget) -> None:
    """Remove the target and its delivery log."""
    await session.delete(target)
    await session.flush()


async def target_filter(session: AsyncSession, target: WebhookTarget) -> EventFilter:
    spec = target.filter or {}
    tree = await site_tree(session) if spec.get("site_id") is not None else None
    return EventFilter.build(
        object_types=spec.get("object_types"),
        kinds=spec.get("kinds"),
        site_id=spec.get("site_id"),
        blueprint_id=spec.get("blueprint_id"),
        tree=tree,
    )


# -- turning events into deliveries -------------------------------------------------------


def _postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _skip_locked(query: Any, session: AsyncSession) -> Any:
    if _postgresql(session):
        return query.with_for_update(skip_locked=True)
    return query


async def fan_out_needed(session: AsyncSession) -> bool:
    """Whether an active target is behind the newest event."""
    newest = select(func.max(Event.id)).scalar_subquery()
    query = select(WebhookTarget.id).where(WebhookTarget.active, WebhookTarget.cursor < newest)
    return (await session.execute(query.limit(1))).first() is not None


async def fan_out(session: AsyncSession, *, limit: int = 1000) -> int:
    """Turn events after each active target's cursor into deliveries (one batch of at most
    ``limit`` events); returns how many events were looked at, so callers repeat while it
    is ``limit``. Targets another process is working on are skipped."""
    newest = select(func.max(Event.id)).scalar_subquery()
    query = select(WebhookTarget).where(WebhookTarget.active, WebhookTarget.cursor < newest)
    targets = list((await session.execute(_skip_locked(query, session))).scalars())
    if not targets:
        return 0
    start = min(t.cursor for t in targets)
    rows = list(
        (
            await session.execute(
                select(Event).where(Event.id > start).order_by(Event.id).limit(limit)
            )
        ).scalars()
    )
    if not rows:
        return 0
    # held for a claim later in this transaction: the identity map keeps rows only while
    # something refers to them, and the claim then needs no statement to read them again
    session.info[_FANNED_OUT] = rows
    now = utcnow()
    values = []
    for target in targets:
        wanted = await target_filter(session, target)
        for row in rows:
            if row.id <= target.cursor:
                continue
            wanted.observe(row)
            if wanted.matches(row):
                values.append(
                    {
                        "target_id": target.id,
                        "event_id": row.id,
                        "object_key": f"{row.object_type}:{row.object_id}",
                        "state": "pending",
                        "attempts": 0,
                        "created": now,
                        "next_attempt_at": now,
                    }
                )
        target.cursor = rows[-1].id
    if values:  # one multi-row INSERT, not a unit of work per delivery
        await session.execute(insert(_DELIVERY), values)
    await session.flush()
    return len(rows)


# -- claiming and finishing attempts ------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """One attempt to make: the delivery, its target's URL and secret, and the event."""

    delivery_id: int
    target_id: int
    url: str
    secret: str
    event: Event
    attempt: int
    target_name: str = ""  # what the metrics call the target (never its URL)


async def claim_deliveries(
    session: AsyncSession,
    *,
    limit: int,
    lease_seconds: float,
    busy: Mapping[int, int] | None = None,
    per_target: int = 4,
) -> list[Claimed]:
    """Due deliveries, oldest first, at most ``per_target`` per target counting ``busy``
    (this process's unfinished ones), never one while an earlier delivery of the same object
    to the same target is still pending. Each is leased: due again only after
    ``lease_seconds``, so a process that dies mid-request leaves it for another attempt.

    The candidates are read without locks (ids only); only the chosen rows are then locked
    (``SKIP LOCKED``: those another process took meanwhile drop out) and leased in one
    ``UPDATE``. A candidate's earlier deliveries stay pending until recorded, so choosing
    without the lock cannot reorder an object's deliveries."""
    now = utcnow()
    due = (WebhookDelivery.state == _PENDING, WebhookDelivery.next_attempt_at <= now)
    query = (
        select(WebhookDelivery.id, WebhookDelivery.target_id)
        .join(WebhookTarget, WebhookTarget.id == WebhookDelivery.target_id)
        .where(*due, WebhookTarget.active, _blocker().is_(None))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit * 2)
    )
    counts = dict(busy or {})
    full = [t for t, n in counts.items() if n >= per_target]
    if full:
        query = query.where(WebhookDelivery.target_id.not_in(full))
    chosen: list[int] = []
    for delivery_id, target_id in await session.execute(query):
        if len(chosen) >= limit:
            break
        if counts.get(target_id, 0) >= per_target:
            continue
        counts[target_id] = counts.get(target_id, 0) + 1
        chosen.append(delivery_id)
    if not chosen:
        return []
    column = _DELIVERY.c
    # the chosen rows still due are locked and leased in one statement (on PostgreSQL the
    # rows another process locked meanwhile drop out: SKIP LOCKED)
    still_due = (column.id.in_(chosen), column.state == _PENDING, column.next_attempt_at <= now)
    if _postgresql(session):
        lock = select(column.id).where(*still_due).with_for_update(skip_locked=True)
        leasing = update(_DELIVERY).where(column.id.in_(lock.scalar_subquery()))
    else:
        leasing = update(_DELIVERY).where(*still_due)
    leased = await session.execute(
        leasing.values(
            attempts=column.attempts + 1,
            last_attempt_at=now,
            next_attempt_at=now + dt.timedelta(seconds=lease_seconds),
        ).returning(column.id, column.target_id, column.event_id, column.attempts)
    )
    order = {delivery_id: index for index, delivery_id in enumerate(chosen)}
    rows = sorted(leased.all(), key=lambda row: order[row[0]])
    if not rows:
        return []
    # usually loaded by this transaction's fan-out already: no statement for those
    targets = await _by_id(session, WebhookTarget, {row[1] for row in rows})
    events = await _by_id(session, Event, {row[2] for row in rows})
    return [
        Claimed(
            delivery_id,
            target_id,
            targets[target_id].url,
            targets[target_id].secret,
            events[event_id],
            attempts,
            targets[target_id].name,
        )
        for delivery_id, target_id, event_id, attempts in rows
    ]


def _blocker() -> Any:
    """An earlier pending delivery of the candidate's object to its target, if any.

    Written so that no plan can make it quadratic: a queue's statistics are stale by nature
    (``ANALYZE`` ran when almost nothing was pending, so PostgreSQL takes the pending
    deliveries for one row). As ``NOT EXISTS`` it became an anti-join, and with that
    estimate the planner scanned every pending delivery for every candidate (profile of the
    events bench: 30 ms to 1.5 s per claim, most of the database's time). As a correlated
    scalar subquery it stays one probe per candidate; its state test is an expression
    (``state || ''``) so that the pending-only ``ix_webhook_delivery_due`` (all pending
    rows, in another order) is no candidate path and the probe is the index scan of
    ``ix_webhook_delivery_order`` on the object, whatever the statistics say."""
    earlier = aliased(WebhookDelivery)
    return (
        select(func.min(earlier.id))  # an aggregate: one row, no LIMIT
        .where(
            earlier.target_id == WebhookDelivery.target_id,
            earlier.object_key == WebhookDelivery.object_key,
            earlier.id < WebhookDelivery.id,
            earlier.state.concat(literal_column("''")) == _PENDING,
        )
        .correlate(WebhookDelivery)
        .scalar_subquery()
    )


async def _by_id(session: AsyncSession, model: Any, ids: set[int]) -> dict[int, Any]:
    """Rows of ``model`` by id: those this session has loaded from its identity map (the
    same objects a query would return), the others in one query."""
    loaded = session.sync_session.identity_map
    found = {}
    for row_id in ids:
        row = loaded.get(identity_key(model, row_id))
        if row is not None:
            found[row_id] = row
    missing = ids - found.keys()
    if missing:
        query = select(model).where(model.id.in_(missing))
        found.update((row.id, row) for row in (await session.execute(query)).scalars())
    return found


async def release(session: AsyncSession, claims: Iterable[Claimed]) -> None:
    """Give back claimed deliveries that were never posted (a worker stopping): due now
    again, for any process."""
    pairs = [(claim.delivery_id, claim.attempt) for claim in claims]
    if pairs:
        await session.execute(
            update(_DELIVERY)
            .where(
                tuple_(_DELIVERY.c.id, _DELIVERY.c.attempts).in_(pairs),
                _DELIVERY.c.state == "pending",
            )
            .values(next_attempt_at=utcnow())
        )


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: ``error`` is None when it was delivered."""

    delivery_id: int
    attempt: int
    response_code: int | None
    error: str | None


async def record_outcomes(
    session: AsyncSession,
    outcomes: Sequence[Outcome],
    *,
    retry_base: float,
    retry_cap: float,
    max_age: float,
) -> list[int]:
    """Record how attempts went, all in this transaction: delivered, or due again after a
    backoff, or failed once older than ``max_age`` seconds (counted from the last retry by
    an operator, else from its creation). An outcome is ignored when its delivery changed
    meanwhile (an operator cancelled or retried it, or its lease ran out and another attempt
    began); returns the ids of the deliveries recorded.

    Successes, the common case, are one ``UPDATE`` per response code; failures are read
    (locked) and written one by one, since each gets its own backoff."""
    if not outcomes:
        return []
    now = utcnow()
    recorded: list[int] = []
    delivered: dict[int | None, list[tuple[int, int]]] = {}
    for outcome in outcomes:
        if outcome.error is None:
            delivered.setdefault(outcome.response_code, []).append(
                (outcome.delivery_id, outcome.attempt)
            )
    for code, pairs in delivered.items():
        result = await session.execute(
            update(_DELIVERY)
            .where(
                tuple_(_DELIVERY.c.id, _DELIVERY.c.attempts).in_(pairs),
                _DELIVERY.c.state == "pending",
            )
            .values(
                state="delivered",
                finished_at=now,
                next_attempt_at=now,
                response_code=code,
                error=None,
            )
            .returning(_DELIVERY.c.id)
        )
        recorded.extend(result.scalars())
    failures = [o for o in outcomes if o.error is not None]
    if not failures:
        return recorded
    query = select(WebhookDelivery).where(WebhookDelivery.id.in_({o.delivery_id for o in failures}))
    if _postgresql(session):
        query = query.with_for_update()
    rows = {d.id: d for d in (await session.execute(query)).scalars()}
    for outcome in failures:
        delivery = rows.get(outcome.delivery_id)
        if delivery is None or delivery.state != "pending" or delivery.attempts != outcome.attempt:
            continue
        assert outcome.error is not None
        delivery.response_code = outcome.response_code
        delivery.error = outcome.error[:2000]
        wait = backoff(delivery.attempts, base=retry_base, cap=retry_cap)
        due = now + dt.timedelta(seconds=wait)
        if (due - (delivery.retried_at or delivery.created)).total_seconds() > max_age:
            delivery.state = "failed"
            delivery.finished_at = now
        delivery.next_attempt_at = due
        recorded.append(delivery.id)
    await session.flush()
    return recorded


async def next_due(session: AsyncSession) -> dt.datetime | None:
    """When the earliest pending delivery is due (None: nothing pending)."""
    query = select(func.min(WebhookDelivery.next_attempt_at)).where(
        WebhookDelivery.state == _PENDING
    )
    value: dt.datetime | None = (await session.execute(query)).scalar_one()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


# -- the delivery log ---------------------------------------------------------------------


async def get_delivery(session: AsyncSession, delivery_id: int) -> WebhookDelivery:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"webhook delivery {delivery_id} does not exist", field="id")
    return delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    target: WebhookTarget | None = None,
    states: Iterable[str] | None = None,
    before: int | None = None,
    limit: int = 100,
) -> Sequence[WebhookDelivery]:
    """Newest first; ``before`` pages back from a delivery id."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    conditions = []
    if target is not None:
        conditions.append(WebhookDelivery.target_id == target.id)
    if states:
        conditions.append(WebhookDelivery.state.in_(list(states)))
    if before is not None:
        conditions.append(WebhookDelivery.id < before)
    if conditions:
        query = query.where(and_(*conditions))
    return list((await session.execute(query)).scalars())


async def retry_delivery(session: AsyncSession, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send it again as soon as a worker is free (a new attempt, same delivery id). Its
    creation time stays; the maximum age counts from this retry."""
    now = utcnow()
    delivery.state = "pending"
    delivery.retried_at = now
    delivery.next_attempt_at = now
    delivery.finished_at = None
    await session.flush()
    return delivery


async def cancel_delivery(session: AsyncSession, delivery: WebhookDelivery) -> WebhookDelivery:
    """Stop trying (later deliveries of the same object are no longer held back by it)."""
    if delivery.state != "pending":
        raise InvalidState(f"webhook delivery {delivery.id} is {delivery.state}, not pending")
    delivery.state = "cancelled"
    delivery.finished_at = utcnow()
    await session.flush()
    return delivery
