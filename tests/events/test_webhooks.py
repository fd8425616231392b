"""The webhook worker's queue of claimed deliveries: one that waited in the queue until its
lease would no longer cover its request is not posted, but handed back by the next round
(due again at once) and claimed anew, as a new attempt."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import select

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.events import webhooks as worker_module
from contractor.events.broadcast import EventBroadcaster
from contractor.events.http import Answer, WebhookClient
from contractor.models import WebhookDelivery, utcnow
from contractor.services import site as sites
from contractor.services import webhooks
from contractor.settings import Settings


class Recording(WebhookClient):
    """Answers every post with 204 and notes the attempt numbers, in order."""

    def __init__(self) -> None:
        super().__init__(timeout=5.0)
        self.attempts: list[str] = []

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        self.attempts.append(headers["X-Contractor-Attempt"])
        return Answer(204, "")


async def test_a_claim_queued_past_its_lease_is_handed_back_not_posted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hooks.sqlite3", auto_migrate=False)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        writers = create_session_factory(engine, writes=True)
        async with transaction(writers) as session:
            await webhooks.create_target(session, name="q", url="http://127.0.0.1:9/hook")
        async with transaction(writers) as session:
            for index in range(3):
                await sites.create_site(session, name=f"q{index}")
        broadcaster = EventBroadcaster(database_url=settings.database_url)
        worker = worker_module.WebhookWorker(writers, settings=settings, broadcaster=broadcaster)
        client = Recording()

        async def deliveries() -> list[WebhookDelivery]:
            async with create_session_factory(engine)() as session:
                rows = await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
                return list(rows.scalars())

        # every claim's time to post is already over when it reaches the front of the queue
        monkeypatch.setattr(worker_module, "_post_within", lambda timeout: -1.0)
        await worker._round(client)
        assert client.attempts == []
        rows = await deliveries()
        assert [(row.state, row.attempts) for row in rows] == [("pending", 1)] * 3
        assert all(row.next_attempt_at > utcnow() for row in rows)  # still leased

        # the next round gives them back and claims them again: posted as second attempts
        monkeypatch.undo()
        await worker._round(client)
        for task in list(worker._tasks):
            await task
        assert client.attempts == ["2", "2", "2"]
        await worker._round(client)  # records the outcomes
        rows = await deliveries()
        assert [(row.state, row.attempts) for row in rows] == [("delivered", 2)] * 3
    finally:
        await engine.dispose()
