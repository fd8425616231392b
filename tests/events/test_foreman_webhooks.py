"""Webhook delivery inside `contractor foreman`, and with several processes delivering at
once (PostgreSQL): every delivery arrives exactly once, in order per object."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import select

from contractor.db import create_engine, create_session_factory
from contractor.models import WebhookDelivery, utcnow
from contractor.settings import Settings
from tests.events.realparts import Receiver, graphql, prepared_database, wait_for
from tests.foreman.test_processes import contractor_foreman
from tests.serving import clean_env, contractor_serve, free_port

CREATE_SITE = "mutation ($name: String!) { createSite(name: $name) { __typename } }"
UPDATE_SITE = """
mutation ($name: String!, $d: String!) { updateSite(name: $name, description: $d) { __typename } }
"""


def _in_order_per_object(receiver: Receiver) -> None:
    with receiver.lock:
        arrivals = list(receiver.received)
    for site in {r.event["objectName"] for r in arrivals}:
        cursors = [int(r.event["cursor"]) for r in arrivals if r.event["objectName"] == site]
        assert cursors == sorted(cursors), site


async def test_foreman_delivers_and_shares_the_work_with_serve(tmp_path: Path) -> None:
    url, token = await prepared_database("postgresql", tmp_path)
    common = {
        "CONTRACTOR_DATABASE_URL": url,
        "CONTRACTOR_AUTO_MIGRATE": "false",
        "CONTRACTOR_LOG_LEVEL": "warning",
        "CONTRACTOR_FOREMAN_ENABLED": "false",
        "CONTRACTOR_WEBHOOK_PER_TARGET": "4",
    }
    receiver = Receiver(free_port(), delay=0.02)
    receiver.start()
    try:
        with ExitStack() as stack:
            # the API process delivers nothing: the foreman does it all
            quiet = stack.enter_context(
                contractor_serve(clean_env(**common, CONTRACTOR_WEBHOOKS_ENABLED="false"), tmp_path)
            )
            stack.enter_context(contractor_foreman(clean_env(**common), tmp_path))
            await graphql(
                quiet,
                token,
                'mutation ($u: String!) { createWebhookTarget(name: "f", url: $u) { __typename } }',
                u=receiver.url,
            )
            for index in range(4):
                await graphql(quiet, token, CREATE_SITE, name=f"f{index}")
            async with asyncio.timeout(60):
                await wait_for(lambda: len(receiver.unique()) == 4, 30, "the foreman's deliveries")
            # now a second process delivers too, while changes keep coming
            busy = stack.enter_context(
                contractor_serve(clean_env(**common, CONTRACTOR_WEBHOOKS_ENABLED="true"), tmp_path)
            )
            expected = 4
            for round_ in range(6):
                for index in range(4):
                    await graphql(
                        (quiet, busy)[index % 2],
                        token,
                        UPDATE_SITE,
                        name=f"f{index}",
                        d=f"r{round_}",
                    )
                    expected += 1
            for index in range(4, 8):
                await graphql(busy, token, CREATE_SITE, name=f"f{index}")
                expected += 1
            async with asyncio.timeout(60):
                await wait_for(lambda: len(receiver.unique()) == expected, 45, "every delivery")
                await asyncio.sleep(1.0)  # anything sent twice would arrive by now
            log = await graphql(
                quiet, token, '{ webhookDeliveries(target: "f", first: 100) { state attempts } }'
            )
            by_state = await graphql(
                quiet,
                token,
                '{ done: webhookDeliveries(target: "f", states: [DELIVERED], first: 100) { id } '
                ' open: webhookDeliveries(target: "f", states: [PENDING, FAILED]) { id } }',
            )
    finally:
        receiver.stop()
    assert len(receiver.received) == expected  # each delivery id posted once
    assert len(receiver.unique()) == expected
    _in_order_per_object(receiver)
    assert {(d["state"], d["attempts"]) for d in log["webhookDeliveries"]} == {("DELIVERED", 1)}
    assert (len(by_state["done"]), by_state["open"]) == (expected, [])


async def test_a_stopping_worker_hands_back_what_it_had_not_posted(tmp_path: Path) -> None:
    """Deliveries are claimed ahead of free request slots; a worker that stops gracefully
    gives those back at once (only requests cut short wait for their leases)."""
    url, token = await prepared_database("sqlite", tmp_path)
    env = clean_env(
        CONTRACTOR_DATABASE_URL=url,
        CONTRACTOR_AUTO_MIGRATE="false",
        CONTRACTOR_LOG_LEVEL="warning",
        CONTRACTOR_FOREMAN_ENABLED="false",
        CONTRACTOR_WEBHOOK_PER_TARGET="2",
        CONTRACTOR_WEBHOOK_TIMEOUT_SECONDS="30",
    )
    receiver = Receiver(free_port(), delay=5.0)
    receiver.start()
    try:
        with contractor_serve(env, tmp_path) as base:
            await graphql(
                base,
                token,
                'mutation ($u: String!) { createWebhookTarget(name: "h", url: $u) { __typename } }',
                u=receiver.url,
            )
            for index in range(8):
                await graphql(base, token, CREATE_SITE, name=f"h{index}")
            # two requests out, the other six claimed and queued (claimed ahead: up to
            # CLAIM_AHEAD times the two request slots)
            await asyncio.sleep(1.5)
    finally:
        receiver.stop()
    engine = create_engine(Settings(database_url=url))
    try:
        async with create_session_factory(engine)() as session:
            rows = (await session.execute(select(WebhookDelivery))).scalars().all()
    finally:
        await engine.dispose()
    now = utcnow()
    assert len(rows) == 8
    assert {row.state for row in rows} == {"pending"}
    leased = [row for row in rows if row.next_attempt_at > now]
    assert len(leased) == 2  # the two cut short; the queued six are due again now
    assert sum(1 for row in rows if row.attempts == 1) == 8
