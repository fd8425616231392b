"""The ``aws`` type's functions in real jobs (the task API in-process, the answers given by
the test): the instance an answer reports is recorded even when the step then aborts the
job, its address lands in IPAM, and a bad config value stops the job naming the foundation
and the value before any task is sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Address, Foundation, Job, Task
from contractor.plugins.aws import AwsFoundation
from contractor.services import building, jobs, network
from contractor.services import site as site_service
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import wait_for

CREATE = """\
instance = foundation.create()
foundation.set_interface_macs( interface_list=instance['interface_list'] )
foundation.set_ip_addresses( ip_address_map=instance['ip_address_map'] )
"""
SHAPE = {"awsec2_image_id": "ami-12c6146b", "awsec2_subnet_id": "subnet-0123abcd"}
ANSWER = {
    "instance_id": "i-0123456789abcdef0",
    "state": "running",
    "interface_list": [{"name": "eth0", "mac": "02:00:00:00:00:07"}],
    "ip_address_map": {"eth0": "10.77.1.4"},
    "public_ip_address_map": {"eth0": "54.1.2.3"},
}


async def _aws_job(env: Env, config: dict[str, Any], *, block: str | None) -> tuple[int, str]:
    async def work(session: AsyncSession) -> tuple[int, str]:
        stack = await make_job_stack(session, foundation_type="aws", foundation_create=CREATE)
        await site_service.update_site(session, stack.site, config_values=config)
        await building.update_foundation(session, stack.foundation, fields={"region": "eu-west-1"})
        if block is not None:
            await network.create_address_block(session, site=stack.site, name="a", subnet=block)
        job = await jobs.create_job(
            session, target=stack.foundation, script_name="create", creator="alice"
        )
        return job.id, stack.site.name

    return await env.run(work)


async def _answer_create(env: Env, job_id: int, site: str) -> dict[str, Any]:
    token = await env.token(site, ["aws"])
    for _ in range(20):
        polled = await env.call(token, "poll", {"site": site, "modules": ["aws"], "wait": 5})
        if polled.json()["tasks"]:
            break
    [task] = polled.json()["tasks"]
    assert task["function"] == "create"
    assert task["parameters"]["client_token"].endswith(f"-{job_id}")  # the job's own token
    body = {"task_id": task["task_id"], "cookie": task["cookie"], "lease": task["lease"]}
    answered = await env.call(token, "result", {**body, "data": ANSWER})
    assert answered.status_code == 200, answered.text
    return task


async def _foundation_of(env: Env, job_id: int) -> Foundation:
    async def work(session: AsyncSession) -> Foundation:
        job = await session.get_one(Job, job_id)
        assert job.foundation_id is not None
        return await session.get_one(Foundation, job.foundation_id)

    return await env.run(work)


async def test_the_instance_is_recorded_with_its_address(env: Env) -> None:
    job_id, site = await _aws_job(env, SHAPE, block="10.77.1.0/24")
    await _answer_create(env, job_id, site)
    job = await wait_for(env, job_id, "done")
    assert job.state == "done", job.message
    foundation = await _foundation_of(env, job_id)
    assert isinstance(foundation, AwsFoundation)
    assert foundation.instance_id == "i-0123456789abcdef0"
    assert foundation.public_ip_address == "54.1.2.3"

    async def addresses(session: AsyncSession) -> list[tuple[Any, ...]]:
        query = select(Address.interface_name, Address.offset, Address.is_primary)
        return [tuple(row) for row in await session.execute(query)]

    assert await env.run(addresses) == [("eth0", 4, True)]


async def test_an_aborted_step_still_records_the_instance(env: Env) -> None:
    # no address block holds the instance's address: the job aborts at set_ip_addresses,
    # but the instance exists, so the foundation keeps its id
    job_id, site = await _aws_job(env, SHAPE, block=None)
    await _answer_create(env, job_id, site)
    job = await wait_for(env, job_id, "aborted")
    assert "'eth0': no address block of site" in job.message
    assert "holds 10.77.1.4" in job.message
    foundation = await _foundation_of(env, job_id)
    assert isinstance(foundation, AwsFoundation)
    assert foundation.instance_id == "i-0123456789abcdef0"


async def test_a_malformed_arn_stops_the_job_before_any_task(env: Env) -> None:
    config = {**SHAPE, "awsec2_iam_instance_profile": "arn:aws:iam::123:role/web"}
    job_id, _ = await _aws_job(env, config, block=None)
    job = await wait_for(env, job_id, "error", "aborted")
    assert "config value awsec2_iam_instance_profile must be an instance profile ARN" in (
        job.message
    )
    assert f"foundation '{(await _foundation_of(env, job_id)).locator}'" in job.message

    async def tasks(session: AsyncSession) -> list[Task]:
        return list((await session.execute(select(Task).where(Task.job_id == job_id))).scalars())

    assert await env.run(tasks) == []
