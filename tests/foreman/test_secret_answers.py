"""A BMC password a subcontractor echoes back (in a result, in an error message) is masked
before Contractor keeps or shows anything of it: the job's message, log, variables and
runner state, the events, a webhook's body and the server's log lines never hold it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.services.secrets import MASK
from tests.events.realparts import Receiver, wait_for
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_ipmi_job
from tests.foreman.test_http import job_state
from tests.foreman.test_http import wait_for as wait_for_state
from tests.serving import free_port

SECRET = "hunter2-bmc-password"
SCRIPT = "foundation.power_on()\nfoundation.power_off()\n"
JOB = """query ($id: Int!) {
  job(id: $id) { state message variables log { message } tasks { parameters } }
}"""
EVENTS = '{ events(filter: {objectTypes: ["job"]}) { events { kind payload } } }'


async def _poll(env: Env, token: str, site: str) -> dict[str, Any]:
    response = await env.call(token, "poll", {"site": site, "modules": ["ipmi"], "wait": 10})
    assert response.status_code == 200, response.text
    (task,) = response.json()["tasks"]
    assert task["parameters"]["connection"]["password"] == SECRET
    return dict(task)


async def test_an_echoed_password_is_masked_everywhere(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    for logger in ("contractor", "strawberry", "httpx", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=logger)

    async def setup(session: AsyncSession) -> tuple[str, int]:
        stack, job_id = await make_ipmi_job(session, SCRIPT, SECRET)
        return stack.site.name, job_id

    receiver = Receiver(free_port())
    receiver.start()
    try:
        admin = await env.user_token("admin")
        created = await env.graphql(
            admin,
            'mutation ($u: String!) { createWebhookTarget(name: "w", url: $u, '
            'filter: {objectTypes: ["job"]}) { __typename } }',
            {"u": receiver.url},
        )
        assert created["createWebhookTarget"]["__typename"] == "CreatedWebhookTarget"
        site, job_id = await env.run(setup)
        token = await env.token(site, ["ipmi"])

        # a result echoing the password: inside a string, nested, as a key, and the
        # parameters sent back whole; "off" is not the answer power_on waits for, so the
        # job's message shows this answer while it asks again
        task = await _poll(env, token, site)
        echoed = {
            "state": "off",
            "detail": f"logged in as admin/{SECRET} at 10.0.0.9",
            "nested": {"tries": [1, {"said": f"pw={SECRET};"}]},
            SECRET: "as a key",
            "echo": task["parameters"],
        }
        reply = await env.call(
            token,
            "result",
            {k: task[k] for k in ("task_id", "cookie", "lease")} | {"data": echoed},
        )
        assert reply.status_code == 200, reply.text
        await asyncio.sleep(0)
        asking = await job_state(env, job_id)
        assert "asking again" in asking.message
        assert MASK in asking.message
        assert SECRET not in asking.message

        # then an error whose message holds the password: the job stops in error
        task = await _poll(env, token, site)
        error = await env.call(
            token,
            "error",
            {k: task[k] for k in ("task_id", "cookie", "lease")}
            | {"message": f"BMC refused login root/{SECRET} (and {SECRET}!)"},
        )
        assert error.status_code == 200, error.text
        failed = await wait_for_state(env, job_id, "error")
        assert failed.message == (
            f"ipmi.set_power failed: BMC refused login root/{MASK} (and {MASK}!)"
        )
        assert SECRET not in (failed.runner_state or "")

        operator = await env.user_token("operator")
        shown = await env.graphql(operator, JOB, {"id": job_id})
        assert shown["job"]["state"] == "ERROR"
        assert f"root/{MASK}" in shown["job"]["message"]
        assert any(f"root/{MASK}" in (e["message"] or "") for e in shown["job"]["log"])
        events = await env.graphql(operator, EVENTS)
        assert any(f"root/{MASK}" in str(e["payload"]) for e in events["events"]["events"])

        def delivered_error() -> bool:
            return any(f"root/{MASK}".encode() in r.body for r in receiver.unique().values())

        await wait_for(delivered_error, 30, "the webhook delivery of the job's error")
        bodies = [r.body for r in receiver.unique().values()]
        assert bodies
        assert not any(SECRET.encode() in body for body in bodies)
        assert SECRET not in str(shown)
        assert SECRET not in str(events)
    finally:
        receiver.stop()
    logged = [record.getMessage() for record in caplog.records] + [caplog.text]
    assert not any(SECRET in line for line in logged)
