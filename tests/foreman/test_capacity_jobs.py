"""A Complex's capacity refresh in real jobs (the task API in-process, answers given by the
test): one job per member, its task for the Complex type's module with the member's
endpoint and credentials, the answer recorded on the member; a bad answer is a job error
naming the member and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput, InvalidState
from contractor.models import ComplexMember
from contractor.services import building, complexes
from tests.factories import make_stack, unique
from tests.foreman.conftest import Env
from tests.foreman.test_http import wait_for


async def _complex(session: AsyncSession, *, built: bool = True, kind: str = "simulated") -> Any:
    site, foundation, structure = await make_stack(session)
    complex_ = await complexes.create_complex(session, name=unique("cx"), site=site, type=kind)
    member = await complexes.add_complex_member(
        session,
        complex_,
        structure,
        endpoint="simulated://h1?cpus=16" if kind == "simulated" else "",
        username="admin",
        password="hunter2",
    )
    if built:
        await building.set_built(session, foundation)
        await building.set_structure_built(session, structure)
    return site, complex_, member, structure


async def _refresh(env: Env) -> tuple[str, int, int, str]:
    async def work(session: AsyncSession) -> tuple[str, int, int, str]:
        site, complex_, member, structure = await _complex(session)
        [job] = await complexes.refresh_capacity(session, complex_, creator="alice")
        assert job.structure_id == structure.id
        assert job.script_name == "refresh_capacity"
        return site.name, job.id, member.id, structure.hostname

    return await env.run(work)


async def _answer(env: Env, site: str, data: dict[str, Any]) -> dict[str, Any]:
    token = await env.token(site, ["simulated"])
    for _ in range(20):
        polled = await env.call(token, "poll", {"site": site, "modules": ["simulated"], "wait": 5})
        if polled.json()["tasks"]:
            break
    [task] = polled.json()["tasks"]
    body = {"task_id": task["task_id"], "cookie": task["cookie"], "lease": task["lease"]}
    answered = await env.call(token, "result", {**body, "data": data})
    assert answered.status_code == 200, answered.text
    return dict(task)


async def _member(env: Env, member_id: int) -> ComplexMember:
    async def work(session: AsyncSession) -> ComplexMember:
        return await session.get_one(ComplexMember, member_id)

    return await env.run(work)


async def test_the_answer_is_recorded_on_the_member(env: Env) -> None:
    site, job_id, member_id, _ = await _refresh(env)
    task = await _answer(env, site, {"cpus": 16, "memory_mb": 65536, "disk_gb": 500})
    assert task["function"] == "host_capacity"
    assert task["parameters"] == {
        "endpoint": "simulated://h1?cpus=16",
        "username": "admin",
        "password": "hunter2",  # only the subcontractor holding the task sees it
    }
    job = await wait_for(env, job_id, "done", "error", "aborted")
    assert job.state == "done", job.message
    member = await _member(env, member_id)
    assert (member.cpu_count, member.memory_mb, member.disk_gb) == (16, 65536, 500)
    assert member.capacity_read_at is not None


async def test_a_bad_answer_is_a_job_error_naming_the_member(env: Env) -> None:
    site, job_id, member_id, hostname = await _refresh(env)
    await _answer(env, site, {"cpus": "many", "memory_mb": 1, "disk_gb": 1})
    job = await wait_for(env, job_id, "done", "error", "aborted")
    assert job.state == "error"
    assert f"member {hostname} of complex" in job.message
    assert "cpus must be a whole number" in job.message
    member = await _member(env, member_id)
    assert (member.cpu_count, member.capacity_read_at) == (None, None)


async def test_refresh_refuses_what_cannot_be_read(env: Env) -> None:
    async def work(session: AsyncSession) -> None:
        _, generic, _, _ = await _complex(session, kind="generic")
        with pytest.raises(InvalidInput, match="setComplexMemberCapacity") as error:
            await complexes.refresh_capacity(session, generic, creator="alice")
        assert error.value.field == "complex"
        _, unbuilt, _, structure = await _complex(session, built=False)
        with pytest.raises(InvalidState, match=f"members {structure.hostname} are not built"):
            await complexes.refresh_capacity(session, unbuilt, creator="alice")
        with pytest.raises(InvalidInput, match="is not the hostname of a member"):
            await complexes.refresh_capacity(session, unbuilt, creator="alice", member="nope")

    await env.run(work)
