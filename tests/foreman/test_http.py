"""Whole jobs driven over HTTP: the foreman steps them inside the app, a fake subcontractor
polls the task API (long-polling), answers, and the targets change state."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.foreman import results
from contractor.models import Foundation, Job, Structure
from contractor.rest.subcontractor import TaskOut
from contractor.services import job_actions, jobs
from tests.foreman.conftest import Env
from tests.foreman.inventory import Stack, make_job_stack

WAIT = 20.0  # every wait below is bounded by this


def answer_for(task: dict[str, Any]) -> dict[str, Any]:
    """A simulated machine that does what it is told."""
    if task["function"] == "set_power":
        return {"state": task["parameters"]["state"].replace("soft_", "")}
    if task["function"] == "power_state":
        return {"state": "off"}
    if task["function"] == "port_state":
        return {"state": "open"}
    return {}


async def answer_over_http(
    http: httpx.AsyncClient, site: str, modules: list[str], count: int
) -> list[str]:
    """A real task client on ``http`` (its base URL and token set): long-poll the task API
    and answer ``count`` tasks; returns their functions in the order answered."""
    functions: list[str] = []
    while len(functions) < count:
        response = await http.post(
            "/api/v1/subcontractor/poll", json={"site": site, "modules": modules, "wait": 10}
        )
        assert response.status_code == 200, response.text
        for task in response.json()["tasks"]:
            reply = await http.post(
                "/api/v1/subcontractor/result",
                json={
                    "task_id": task["task_id"],
                    "cookie": task["cookie"],
                    "lease": task["lease"],
                    "data": answer_for(task),
                },
            )
            assert reply.status_code == 200, reply.text
            functions.append(task["function"])
    return functions


async def serve(env: Env, token: str, site: str, modules: list[str], count: int) -> list[Any]:
    """Answer ``count`` tasks; returns them."""
    done: list[Any] = []
    while len(done) < count:
        response = await env.call(
            token, "poll", {"site": site, "modules": modules, "max_tasks": 5, "wait": 5}
        )
        assert response.status_code == 200, response.text
        for task in response.json()["tasks"]:
            reply = await env.call(
                token,
                "result",
                {
                    "task_id": task["task_id"],
                    "cookie": task["cookie"],
                    "lease": task["lease"],
                    "data": answer_for(task),
                },
            )
            assert reply.status_code == 200, reply.text
            done.append(task)
    return done


async def job_state(env: Env, job_id: int) -> Job:
    async def work(session: AsyncSession) -> Job:
        return await jobs.get_job(session, job_id)

    return await env.run(work)


async def wait_for(env: Env, job_id: int, *states: str) -> Job:
    async def poll() -> Job:
        while True:
            job = await job_state(env, job_id)
            if job.state in states:
                return job
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), WAIT)


async def test_create_and_destroy_over_http(env: Env) -> None:
    stack: Stack = await env.run(make_job_stack)
    token = await env.token(stack.site.name, ["simulated", "iputils"])

    async def create(session: AsyncSession) -> tuple[int, int]:
        foundation_job = await jobs.create_job(
            session, target=stack.foundation, script_name="create", creator="alice"
        )
        structure_job = await jobs.create_job(
            session, target=stack.structure, script_name="create", creator="alice"
        )
        return foundation_job.id, structure_job.id

    foundation_job, structure_job = await env.run(create)
    tasks = await asyncio.wait_for(
        serve(env, token, stack.site.name, ["simulated", "iputils"], 4), WAIT
    )
    assert [t["function"] for t in tasks] == ["set_power", "power_state", "set_power", "port_state"]
    assert (await wait_for(env, foundation_job, "done")).message == "done"
    await wait_for(env, structure_job, "done")

    async def states(session: AsyncSession) -> tuple[str, str, Any]:
        foundation = await session.get_one(Foundation, stack.foundation.id)
        structure = await session.get_one(Structure, stack.structure.id)
        return foundation.state, structure.state, structure.config_values

    assert await env.run(states) == ("built", "built", {"installed": True})

    async def destroy(session: AsyncSession) -> tuple[int, int, str]:
        structure = await session.get_one(Structure, stack.structure.id)
        foundation = await session.get_one(Foundation, stack.foundation.id)
        structure_job = await jobs.create_job(
            session, target=structure, script_name="destroy", creator="alice"
        )
        foundation_job = await jobs.create_job(
            session, target=foundation, script_name="destroy", creator="alice"
        )
        return structure_job.id, foundation_job.id, structure.config_uuid

    structure_job, foundation_job, old_uuid = await env.run(destroy)
    paused = await wait_for(env, structure_job, "paused")
    assert paused.message.startswith("wipe it")
    foundation_waiting = await job_state(env, foundation_job)
    assert foundation_waiting.state == "waiting"

    async def resume(session: AsyncSession) -> None:
        job = await jobs.lock_job(session, structure_job)
        await job_actions.resume_job(session, job, actor="alice")

    await env.run(resume)
    await wait_for(env, structure_job, "done")
    await asyncio.wait_for(serve(env, token, stack.site.name, ["simulated"], 1), WAIT)
    await wait_for(env, foundation_job, "done")

    async def after(session: AsyncSession) -> tuple[str, str, bool]:
        foundation = await session.get_one(Foundation, stack.foundation.id)
        structure = await session.get_one(Structure, stack.structure.id)
        return foundation.state, structure.state, structure.config_uuid != old_uuid

    assert await env.run(after) == ("planned", "planned", True)


async def test_a_result_is_taken_when_stepping_after_it_fails(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result path steps the job itself; if that step blows up (injected here, once),
    the result is still taken and the engine steps the job instead."""
    stack = await env.run(
        lambda s: make_job_stack(s, foundation_create="foundation.power_state()\n" * 2)
    )
    token = await env.token(stack.site.name, ["simulated"])
    job = await env.run(
        lambda s: jobs.create_job(s, target=stack.foundation, script_name="create", creator="a")
    )
    job_id = job.id
    failures: list[int] = []
    step = results.run_step

    async def failing_once(session: AsyncSession, job: Job, *args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(job.id)
            raise RuntimeError("injected")
        await step(session, job, *args, **kwargs)

    monkeypatch.setattr(results, "run_step", failing_once)
    tasks = await asyncio.wait_for(serve(env, token, stack.site.name, ["simulated"], 2), WAIT)
    assert failures == [job_id]
    assert [(t["function"], t["attempt"]) for t in tasks] == [("power_state", 1)] * 2
    for task in tasks:  # as the OpenAPI document describes them
        assert TaskOut.model_validate(task).model_dump() == task
    assert (await wait_for(env, job_id, "done")).message == "done"
