"""IPMI credentials reach only the subcontractor's task (never GraphQL, logs or the runner
state), and a booted machine's signal lets a waiting job go on."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.services import building, jobs
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_ipmi_job, make_job_stack
from tests.foreman.test_http import job_state, wait_for

SECRET = "hunter2-bmc-password"


async def test_ipmi_password_only_in_the_task(env: Env) -> None:
    async def setup(session: AsyncSession) -> tuple[str, str, int]:
        stack, job_id = await make_ipmi_job(session, "foundation.power_on()\n", SECRET)
        return stack.site.name, stack.foundation.locator, job_id

    site, locator, job_id = await env.run(setup)
    token = await env.token(site, ["ipmi"])
    response = await env.call(token, "poll", {"site": site, "modules": ["ipmi"], "wait": 5})
    (task,) = response.json()["tasks"]
    assert task["function"] == "set_power"
    assert task["parameters"]["connection"] == {
        "host": "10.0.0.9",
        "port": 623,
        "username": "admin",
        "password": SECRET,
    }
    operator = await env.user_token("operator")
    data = await env.graphql(
        operator,
        "query($id: Int!, $l: String!) { job(id: $id) { variables message "
        "log { message } tasks { parameters } } foundation(locator: $l) { typeFields } }",
        {"id": job_id, "l": locator},
    )
    assert SECRET not in str(data)
    assert data["job"]["tasks"][0]["parameters"]["connection"]["password"] == "********"
    assert "password" not in data["foundation"]["typeFields"]
    assert SECRET not in (await job_state(env, job_id)).runner_state


async def test_signal_from_a_booted_machine(env: Env) -> None:
    async def setup(session: AsyncSession) -> tuple[str, int]:
        stack = await make_job_stack(
            session,
            structure_create="signaling.reset()\nsignaling.wait_for_completion()\nok = true\n",
        )
        await building.set_built(session, stack.foundation)
        job = await jobs.create_job(
            session, target=stack.structure, script_name="create", creator="alice"
        )
        return stack.structure.config_uuid, job.id

    config_uuid, job_id = await env.run(setup)
    await wait_for(env, job_id, "queued")

    async def waiting_for_signal() -> None:
        for _ in range(400):
            if (await job_state(env, job_id)).message == "Waiting for the complete signal":
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the job never waited for the signal")

    await waiting_for_signal()
    unknown = await env.http.post("/api/v1/signal/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    response = await env.http.post(f"/api/v1/signal/{config_uuid}")
    assert response.status_code == 200, response.text
    done = await wait_for(env, job_id, "done")
    assert done.finished_at is not None
