"""The ``job(id)`` subscription against real processes: a WebSocket client watches a job
that the foreman steps and a real HTTP task client answers, from waiting to done; on
PostgreSQL the foreman is a separate `contractor foreman` process (its events reach the
server through LISTEN/NOTIFY), on SQLite it runs inside `contractor serve`."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from contractor.db import create_engine, create_session_factory, transaction
from contractor.plugins import foundation_types
from contractor.rest.state import app_state
from contractor.services import jobs
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.events.realparts import Subscription, graphql, prepared_database
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import answer_over_http
from tests.foreman.test_processes import contractor_foreman
from tests.serving import clean_env, contractor_serve

WATCH = """
subscription ($id: Int!) {
  job(id: $id) { jobId kind cursor actor state progress line message finished }
}"""
SCRIPT = """\
begin( description="build the machine" )
  foundation.power_on()
  state = foundation.power_state()
  password = 'hunter2'
  foundation.power_off()
end
"""


async def _setup(url: str) -> tuple[int, int, str, str, str]:
    """A waiting create job (its foundation is not located yet) and a subcontractor token;
    (job id, second job id, site, locator, token)."""
    foundation_types()
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine)) as session:
            stack = await make_job_stack(session, foundation_create=SCRIPT, locate=False)
            other = await make_job_stack(session, foundation_create=SCRIPT, locate=False)
            job = await jobs.create_job(
                session, target=stack.foundation, script_name="create", creator="alice"
            )
            cancelled = await jobs.create_job(
                session, target=other.foundation, script_name="create", creator="alice"
            )
            token = await task_service.create_subcontractor_token(
                session, name="sub", sites=[stack.site.name], modules=["simulated"]
            )
            return job.id, cancelled.id, stack.site.name, stack.foundation.locator, token.text
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_job_subscription_follows_a_job_to_its_end(backend: str, tmp_path: Path) -> None:
    url, admin = await prepared_database(backend, tmp_path)
    job_id, cancelled_id, site, locator, sub_token = await _setup(url)
    common = {
        "CONTRACTOR_DATABASE_URL": url,
        "CONTRACTOR_AUTO_MIGRATE": "false",
        "CONTRACTOR_LOG_LEVEL": "warning",
        "CONTRACTOR_WEBHOOKS_ENABLED": "false",
        "CONTRACTOR_FOREMAN_IDLE_SECONDS": "0.5",
        "CONTRACTOR_FOREMAN_WAITING_RECHECK_SECONDS": "0.3",
    }
    separate = backend == "postgresql"
    env = clean_env(**common, CONTRACTOR_FOREMAN_ENABLED=str(not separate).lower())
    with ExitStack() as stack:
        base = stack.enter_context(contractor_serve(env, tmp_path))
        if separate:
            stack.enter_context(contractor_foreman(clean_env(**common), tmp_path))
        async with asyncio.timeout(90):
            async with Subscription(base, admin, WATCH, id=job_id) as watch:
                first = (await watch.next())["job"]
                assert (first["jobId"], first["kind"], first["state"]) == (
                    job_id,
                    "current",
                    "WAITING",
                )
                assert first["finished"] is False
                waiting = [first]  # until the foreman has looked at it once
                while "waiting for foundation" not in waiting[-1]["message"]:
                    waiting.append((await watch.next())["job"])
                assert [u["kind"] for u in waiting[1:]] in ([], ["progress"])
                # the foundation is located: the job starts; a task client answers its steps
                await graphql(
                    base,
                    admin,
                    "mutation ($l: String!) { locateFoundation(locator: $l) { __typename } }",
                    l=locator,
                )
                headers = {"Authorization": f"Bearer {sub_token}"}
                async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                    functions = await answer_over_http(http, site, ["simulated"], 3)
                updates, errors = await watch.rest()
            assert functions == ["set_power", "power_state", "set_power"]
            assert errors == []

            # a job that is cancelled while watched ends the subscription too
            async with Subscription(base, admin, WATCH, id=cancelled_id) as watch:
                assert (await watch.next())["job"]["state"] == "WAITING"
                await graphql(
                    base,
                    admin,
                    "mutation ($id: Int!) { cancelJob(id: $id) { __typename } }",
                    id=cancelled_id,
                )
                cancelled, cancel_errors = await watch.rest()
            # a finished job: how it ended, then the end
            async with Subscription(base, admin, WATCH, id=job_id) as watch:
                again, again_errors = await watch.rest()
            # an unknown job: a clear error
            async with Subscription(base, admin, WATCH, id=999999) as watch:
                unknown, unknown_errors = await watch.rest()

    updates = [u["job"] for u in updates]
    assert all(u["jobId"] == job_id for u in updates)
    kinds = [u["kind"] for u in updates]
    assert kinds[-1] == "done"
    assert "started" in kinds
    assert kinds.count("progress") >= 3  # one per remote step at least
    states = [u["state"] for u in updates]
    assert states[-1] == "DONE"
    assert set(states) <= {"WAITING", "QUEUED", "DONE"}
    assert [u["finished"] for u in updates] == [False] * (len(updates) - 1) + [True]
    cursors = [int(u["cursor"]) for u in updates]
    assert cursors == sorted(set(cursors))
    assert cursors[0] > int(first["cursor"])
    progress = [u["progress"] for u in updates]
    assert progress == sorted(progress)
    assert progress[-1] == 100.0
    assert any(0 < p < 100 for p in progress)
    assert "power on: waiting for the subcontractor" in [u["message"] for u in updates]
    assert {u["line"] for u in updates if u["kind"] == "progress"} - {None}
    assert {u["actor"] for u in updates} <= {"foreman", "subcontractor sub"}
    assert all("hunter2" not in str(u) for u in updates)

    assert cancel_errors == []
    assert [(u["job"]["kind"], u["job"]["state"], u["job"]["finished"]) for u in cancelled] == [
        ("cancelled", "ABORTED", True)
    ]
    assert cancelled[0]["job"]["actor"] == "root"

    assert again_errors == []
    assert [(u["job"]["kind"], u["job"]["state"], u["job"]["finished"]) for u in again] == [
        ("current", "DONE", True)
    ]
    assert again[0]["job"]["progress"] == 100.0

    assert unknown == []
    assert [e["message"] for e in unknown_errors] == ["job 999999 does not exist"]


async def test_job_subscription_needs_the_reader_role(tmp_path: Path) -> None:
    """A context without a principal is refused before the operation runs, by the schema's
    anonymous rule (``schema.anonymous``; the resolver's own role check stands behind it).
    Over a WebSocket, a connection without credentials is closed before any operation runs:
    ``test_websockets_need_credentials``."""
    from contractor.app import create_app
    from contractor.schema.anonymous import AUTHENTICATION_REQUIRED
    from contractor.schema.context import Context
    from contractor.schema.loaders import Loaders

    url, _admin = await prepared_database("sqlite", tmp_path)
    app = create_app(Settings(database_url=url, auto_migrate=False, foreman_enabled=False))
    async with app.router.lifespan_context(app):
        schema = app.routes[1].endpoint.schema  # type: ignore[attr-defined]
        context = Context(
            settings=app_state(app).settings,
            sessions=app_state(app).sessions,
            writer_sessions=app_state(app).writer_sessions,
            principal=None,
            loaders=Loaders(app_state(app).sessions),
            events=app_state(app).events,
        )
        results: Any = await schema.subscribe(
            WATCH, variable_values={"id": 1}, context_value=context
        )
        first = await anext(results)
        await results.aclose()
    assert first.data is None
    assert [e.message for e in first.errors] == [AUTHENTICATION_REQUIRED]
