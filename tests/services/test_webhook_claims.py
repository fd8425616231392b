"""Claiming webhook deliveries: oldest first, one per object at a time, leased, within the
per-target limit; after a fan-out in the same transaction without re-reading its targets
and events (the worker's round is one transaction), and with them read when it did not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.services import site as sites
from contractor.services import webhooks
from tests.factories import make_site


@contextmanager
def statements(session: AsyncSession) -> Iterator[list[str]]:
    """The SQL statements ``session`` sends inside the block."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    engine = session.get_bind().engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _delivered(claimed: list[webhooks.Claimed]) -> list[webhooks.Outcome]:
    return [webhooks.Outcome(c.delivery_id, c.attempt, 204, None) for c in claimed]


async def test_claims_after_a_fan_out_in_order_one_per_object(session: AsyncSession) -> None:
    target = await webhooks.create_target(
        session, name="claims", url="http://127.0.0.1:9/hook", secret="s" * 20
    )
    first = await make_site(session, name="claim-a")
    await make_site(session, name="claim-b")
    await session.commit()  # (a savepoint: the outbox writes the events at each commit)
    await sites.update_site(session, first, description="changed")
    await make_site(session, name="claim-c")
    await session.commit()
    assert await webhooks.fan_out(session) == 4
    with statements(session) as sent:
        claimed = await webhooks.claim_deliveries(
            session, limit=10, lease_seconds=60, per_target=64
        )
    # the candidates, then locking and leasing them: the fan-out loaded target and events
    assert len(sent) == 2, sent
    # claim-a's update waits for its creation to be delivered; the rest in cursor order
    assert [(c.event.object_name, c.event.kind) for c in claimed] == [
        ("claim-a", "created"),
        ("claim-b", "created"),
        ("claim-c", "created"),
    ]
    assert {(c.target_id, c.url, c.secret, c.attempt) for c in claimed} == {
        (target.id, "http://127.0.0.1:9/hook", "s" * 20, 1)
    }
    # leased: not claimed again while the lease runs
    assert await webhooks.claim_deliveries(session, limit=10, lease_seconds=60) == []

    await webhooks.record_outcomes(
        session, _delivered(claimed[:1]), retry_base=1, retry_cap=10, max_age=3600
    )
    session.expunge_all()  # a later transaction: nothing loaded yet
    with statements(session) as sent:
        (update,) = await webhooks.claim_deliveries(session, limit=10, lease_seconds=60)
    assert len(sent) == 4, sent  # and the target and the event read, one statement each
    assert (update.event.object_name, update.event.kind) == ("claim-a", "updated")
    assert (update.url, update.secret, update.attempt) == ("http://127.0.0.1:9/hook", "s" * 20, 1)


async def test_claims_stay_within_the_per_target_limit(session: AsyncSession) -> None:
    target = await webhooks.create_target(session, name="limit", url="http://127.0.0.1:9/h")
    for index in range(5):
        await make_site(session, name=f"limit-{index}")
    await session.commit()
    await webhooks.fan_out(session)
    two = await webhooks.claim_deliveries(
        session, limit=10, lease_seconds=60, busy={target.id: 1}, per_target=3
    )
    assert [c.event.object_name for c in two] == ["limit-0", "limit-1"]
    none = await webhooks.claim_deliveries(
        session, limit=10, lease_seconds=60, busy={target.id: 3}, per_target=3
    )
    assert none == []
    rest = await webhooks.claim_deliveries(session, limit=2, lease_seconds=60, per_target=64)
    assert [c.event.object_name for c in rest] == ["limit-2", "limit-3"]
