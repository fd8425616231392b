"""Event retention: old events and finished deliveries go; what a pending delivery, a
retryable finished one or an active target still needs stays; reading from a pruned cursor
is refused by name. Also: retrying a delivery keeps its creation time."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor.db import create_engine, create_session_factory, transaction
from contractor.errors import InvalidInput, Pruned
from contractor.models import DnsPush, Event, EventHorizon, WebhookDelivery, utcnow
from contractor.services import pruning, webhooks
from contractor.services.events import latest_cursor
from contractor.settings import Settings
from tests.events.realparts import prepared_database
from tests.factories import make_site

OLD = dt.timedelta(days=40)


@pytest.fixture(params=["postgresql", "sqlite"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh database of its own: pruning looks at the whole event log."""
    url, _token = await prepared_database(request.param, tmp_path)
    engine = create_engine(Settings(database_url=url))
    try:
        yield create_session_factory(engine, writes=True)
    finally:
        await engine.dispose()


async def _age_events(session: AsyncSession, by: dt.timedelta) -> None:
    for row in (await session.execute(select(Event))).scalars():
        row.at -= by


async def _ids(session: AsyncSession) -> list[int]:
    return list((await session.execute(select(Event.id).order_by(Event.id))).scalars())


async def test_prune_keeps_what_deliveries_need(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as session:
        target = await webhooks.create_target(session, name="t", url="http://127.0.0.1:9/h")
        sites = [await make_site(session, name=f"p{index}") for index in range(6)]
    async with transaction(sessions) as session:
        await webhooks.fan_out(session)
        rows = list(
            (await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars()
        )
        assert len(rows) == len(sites)
        old = utcnow() - OLD
        # delivered and failed long ago; cancelled lately; one still pending; two more
        # delivered long ago
        for row, (state, finished) in zip(
            rows,
            [
                ("delivered", old),
                ("failed", old),
                ("cancelled", utcnow()),
                ("pending", None),
                ("delivered", old),
                ("delivered", old),
            ],
            strict=True,
        ):
            row.state, row.finished_at = state, finished
        kept_events = {rows[2].event_id, rows[3].event_id}
        await _age_events(session, OLD)
        newest = await latest_cursor(session)
    async with transaction(sessions) as session:
        assert await pruning.horizon(session) == 0
        done = await pruning.prune(session, retention_days=30)
    assert (done.deliveries, done.events, done.horizon, done.more) == (4, 4, newest, False)
    async with transaction(sessions) as session:
        assert set(await _ids(session)) == kept_events
        left = (await session.execute(select(WebhookDelivery.state))).scalars().all()
        assert sorted(left) == ["cancelled", "pending"]
        assert await pruning.horizon(session) == newest
        with pytest.raises(Pruned, match=f"events up to cursor {newest} were removed") as err:
            await pruning.check_after(session, newest - 1)
        assert err.value.field == "after"
        assert err.value.code == "PRUNED"
        await pruning.check_after(session, newest)  # from the horizon on: nothing is missing
        # the retried (cancelled) delivery still finds its event to post
        await webhooks.retry_delivery(session, await session.get_one(WebhookDelivery, rows[2].id))
        claimed = await webhooks.claim_deliveries(session, limit=10, lease_seconds=10)
        assert {c.event.id for c in claimed} == kept_events
    assert target.id == claimed[0].target_id
    async with transaction(sessions) as session:  # again: nothing more to do
        again = await pruning.prune(session, retention_days=30)
    assert (again.events, again.deliveries, again.horizon) == (0, 0, newest)


async def test_prune_stops_at_recent_events_and_lagging_targets(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as session:
        for index in range(3):
            await make_site(session, name=f"a{index}")
    async with transaction(sessions) as session:
        await _age_events(session, OLD)
        aged = await latest_cursor(session)
        await webhooks.create_target(session, name="lagging", url="http://127.0.0.1:9/h")
    async with transaction(sessions) as session:
        for index in range(3):
            await make_site(session, name=f"b{index}")
    async with transaction(sessions) as session:
        await _age_events(session, OLD)
    async with transaction(sessions) as session:
        # the target has looked at nothing yet; everything is old now
        done = await pruning.prune(session, retention_days=30, batch=2)
        assert (done.events, done.more) == (2, True)
        done = await pruning.prune(session, retention_days=30, batch=2)
    assert (done.horizon, done.more) == (aged, False)  # up to the target's cursor only
    async with transaction(sessions) as session:
        assert len(await _ids(session)) == 3
        target = await webhooks.get_target(session, "lagging")
        target.active = False  # an inactive target starts afresh when re-activated
    async with transaction(sessions) as session:
        done = await pruning.prune(session, retention_days=30)
        assert await _ids(session) == []
        # and recent events are never removed
        await make_site(session, name="recent")
    async with transaction(sessions) as session:
        assert (await pruning.prune(session, retention_days=30)).events == 0
        assert len(await _ids(session)) == 1
        row = await session.get_one(EventHorizon, 1)
        assert row.cursor == done.horizon


async def test_prune_refuses_bad_arguments(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as session:
        with pytest.raises(InvalidInput, match="more than 0 days") as err:
            await pruning.prune(session, retention_days=0)
        assert err.value.field == "retention_days"
        with pytest.raises(InvalidInput, match="batch"):
            await pruning.prune(session, retention_days=1, batch=0)
        assert await pruning.horizon(session) == 0


async def test_retry_keeps_created_and_counts_the_age_from_the_retry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as session:
        await webhooks.create_target(session, name="r", url="http://127.0.0.1:9/h")
        await make_site(session, name="r0")
        await make_site(session, name="r1")
    created = utcnow() - dt.timedelta(days=2)
    async with transaction(sessions) as session:
        await webhooks.fan_out(session)
        await session.execute(update(WebhookDelivery).values(created=created))
        claimed = await webhooks.claim_deliveries(session, limit=10, lease_seconds=10)
        assert len(claimed) == 2
        fails = [webhooks.Outcome(c.delivery_id, c.attempt, 500, "HTTP 500") for c in claimed]
        settings = {"retry_base": 1.0, "retry_cap": 10.0, "max_age": 86400.0}
        recorded = await webhooks.record_outcomes(session, fails, **settings)
        assert sorted(recorded) == sorted(c.delivery_id for c in claimed)
        rows = [await session.get_one(WebhookDelivery, i) for i in recorded]
        assert {row.state for row in rows} == {"failed"}  # older than a day
        retried = await webhooks.retry_delivery(session, rows[0])
        assert retried.created == created
        assert retried.retried_at is not None
        assert retried.retried_at > created
        assert (retried.state, retried.finished_at) == ("pending", None)
    async with transaction(sessions) as session:
        (again,) = await webhooks.claim_deliveries(session, limit=10, lease_seconds=10)
        assert again.delivery_id == rows[0].id
        assert again.attempt == 2
        fail = webhooks.Outcome(again.delivery_id, again.attempt, 500, "HTTP 500")
        assert await webhooks.record_outcomes(session, [fail], **settings) == [rows[0].id]
        row = await session.get_one(WebhookDelivery, rows[0].id)
        assert row.state == "pending"  # a day from the retry, not from its creation
        assert row.created == created


async def test_prune_needed_only_reads_and_says_when(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with transaction(sessions) as session:
        assert not await pruning.prune_needed(session, retention_days=30)
        await make_site(session, name="n0")
    async with transaction(sessions) as session:
        assert not await pruning.prune_needed(session, retention_days=30)  # recent
        await _age_events(session, OLD)
    async with transaction(sessions) as session:
        assert await pruning.prune_needed(session, retention_days=30)
        await pruning.prune(session, retention_days=30)
    async with transaction(sessions) as session:
        assert not await pruning.prune_needed(session, retention_days=30)
        target = await webhooks.create_target(session, name="n", url="http://127.0.0.1:9/h")
        await make_site(session, name="n1")
    async with transaction(sessions) as session:
        await webhooks.fan_out(session)
        delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
        delivery.state, delivery.finished_at = "delivered", utcnow() - OLD
    async with transaction(sessions) as session:
        assert await pruning.prune_needed(session, retention_days=30)  # an old delivery
        assert target.active


async def test_prune_removes_finished_dns_pushes_older_than_the_retention(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with transaction(sessions) as session:
        for zone, finished in (("old.test", now - OLD), ("new.test", now), ("sending.test", None)):
            session.add(
                DnsPush(zone=zone, started_at=now - OLD, finished_at=finished, state="failed")
            )
    async with transaction(sessions) as session:
        done = await pruning.prune(session, retention_days=30)
        left = set((await session.execute(select(DnsPush.zone))).scalars())
    assert done.deliveries == 1
    assert left == {"new.test", "sending.test"}
