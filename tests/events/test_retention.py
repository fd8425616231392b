"""Retention against real parts: `contractor events prune` removes old events, a subscriber
or reader resuming from a pruned cursor gets a clear PRUNED error instead of silently
missing events, the horizon itself is a good place to resume, and `contractor serve` prunes
on its own every interval."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Event
from contractor.services import pruning
from contractor.services import site as sites
from contractor.settings import Settings
from tests.events.realparts import Subscription, graphql, prepared_database
from tests.serving import clean_env, contractor_serve

SITES = """
subscription ($after: String) {
  events(filter: {objectTypes: ["site"]}, after: $after) { cursor kind objectName }
}"""
PAGE = "query ($after: String) { events(after: $after) { events { cursor } cursor } }"


async def _age_everything(url: str, days: float) -> int:
    """Make every event ``days`` older; returns the newest cursor."""
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine)) as session:
            rows = list((await session.execute(select(Event))).scalars())
            for row in rows:
                row.at -= dt.timedelta(days=days)
            return max(row.id for row in rows)
    finally:
        await engine.dispose()


async def _horizon(url: str) -> int:
    engine = create_engine(Settings(database_url=url))
    try:
        async with create_session_factory(engine)() as session:
            return await pruning.horizon(session)
    finally:
        await engine.dispose()


async def _cli(url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "contractor",
        "events",
        "prune",
        *args,
        env=clean_env(CONTRACTOR_DATABASE_URL=url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def _raw(base: str, token: str, document: str, **variables: Any) -> Any:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    return response.json()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_resuming_from_a_pruned_cursor_is_refused(backend: str, tmp_path: Path) -> None:
    url, token = await prepared_database(backend, tmp_path)
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine)) as session:
            for index in range(3):
                await sites.create_site(session, name=f"old{index}")
    finally:
        await engine.dispose()

    code, out = await _cli(url, "--retention-days", "0")
    assert code == 2
    assert "--retention-days" in out
    assert await _horizon(url) == 0
    newest = await _age_everything(url, 40)
    code, out = await _cli(url, "--json")
    assert code == 0, out
    assert json.loads(out.splitlines()[-1]) == {"events": 3, "deliveries": 0, "horizon": newest}

    env = clean_env(
        CONTRACTOR_DATABASE_URL=url,
        CONTRACTOR_AUTO_MIGRATE="false",
        CONTRACTOR_LOG_LEVEL="warning",
        CONTRACTOR_FOREMAN_ENABLED="false",
        CONTRACTOR_WEBHOOKS_ENABLED="false",
        CONTRACTOR_EVENTS_PRUNE_INTERVAL_SECONDS="0.3",
    )
    with contractor_serve(env, tmp_path) as base:
        async with asyncio.timeout(60):
            async with Subscription(base, token, SITES, after=str(newest - 1)) as subscription:
                data, errors = await subscription.rest()
            assert data == []
            assert len(errors) == 1
            assert f"events up to cursor {newest} were removed" in errors[0]["message"]
            page = await _raw(base, token, PAGE, after="1")
            assert page["data"] is None
            assert "were removed" in page["errors"][0]["message"]
            # without a cursor the page starts at the oldest event kept: nothing
            assert (await graphql(base, token, PAGE))["events"] == {
                "events": [],
                "cursor": str(newest),
            }
            # resuming from the horizon misses nothing
            async with Subscription(base, token, SITES, after=str(newest)) as subscription:
                await graphql(base, token, 'mutation { createSite(name: "new") { __typename } }')
                event = (await subscription.next())["events"]
            assert (event["kind"], event["objectName"]) == ("created", "new")
            # the server prunes by itself: once the new event is old, it goes too
            latest = await _age_everything(url, 40)
            deadline = asyncio.get_running_loop().time() + 20
            while await _horizon(url) != latest:
                assert asyncio.get_running_loop().time() < deadline, "the server did not prune"
                await asyncio.sleep(0.2)
            page = await _raw(base, token, PAGE, after=str(newest))
            assert "were removed" in page["errors"][0]["message"]
