"""``signaling`` as the original's scripts use it: ``reset( pxe_name=... )`` remembers which
boot target is to signal, and the signal endpoint takes only a cookie carrying it, so a
machine still running an earlier boot cannot end the wait of a later one."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import PXE, Job, JobLog
from contractor.services import blueprint as bp_service
from contractor.services import building, jobs
from tests.foreman.conftest import Env
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import job_state, wait_for

TWO_BOOTS = """\
signaling.reset( pxe_name='installer' )
before = signaling.complete
signaling.wait_for_completion()
after = signaling.complete
signaling.reset( pxe_name='sig-wipe' )
signaling.wait_for_completion()
"""


async def _structure_job(env: Env, script: str) -> tuple[str, int]:
    async def setup(session: AsyncSession) -> tuple[str, int]:
        stack = await make_job_stack(session, structure_create=script)
        if (await session.execute(select(PXE.id).where(PXE.name == "sig-wipe"))).first() is None:
            await bp_service.create_pxe(session, name="sig-wipe", boot_script="chain wipe")
        await building.set_built(session, stack.foundation)
        job = await jobs.create_job(
            session, target=stack.structure, script_name="create", creator="alice"
        )
        return stack.structure.config_uuid, job.id

    return await env.run(setup)


async def _waiting_for(env: Env, job_id: int, pxe_name: str) -> Job:
    expected = f"Waiting for the complete signal of the boot of PXE {pxe_name!r}"
    for _ in range(400):
        job = await job_state(env, job_id)
        if job.message == expected:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job never waited for {pxe_name}: {job.message!r}")


async def _signal(env: Env, config_uuid: str, cookie: str | None) -> httpx.Response:
    body = None if cookie is None else json.dumps({"cookie": cookie})
    return await env.http.post(
        f"/api/v1/signal/{config_uuid}",
        content=body,
        headers={"Content-Type": "application/json"} if body else {},
    )


async def _signalled_entries(env: Env, job_id: int) -> int:
    async def work(session: AsyncSession) -> int:
        query = select(JobLog).where(JobLog.job_id == job_id, JobLog.action == "signalled")
        return len(list((await session.execute(query)).scalars()))

    return await env.run(work)


async def test_a_signal_is_taken_only_from_the_boot_the_job_waits_for(env: Env) -> None:
    config_uuid, job_id = await _structure_job(env, TWO_BOOTS)
    first = await _waiting_for(env, job_id, "installer")
    assert first.signal_pxe_name == "installer"
    assert jobs.awaited_signal(first).cookie == f"{job_id}(installer)"

    # no cookie, a malformed one, another job's, another boot's: refused, nothing changed
    missing = await _signal(env, config_uuid, None)
    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "cookie"
    assert "waits for the signal of a boot of PXE 'installer'" in missing.json()["error"]["message"]
    malformed = await _signal(env, config_uuid, "installer")
    assert malformed.status_code == 400
    assert "is not <job id>(<pxe name>)" in malformed.json()["error"]["message"]
    other_job = await _signal(env, config_uuid, f"{job_id + 1000}(installer)")
    assert other_job.status_code == 409
    assert other_job.json()["error"]["code"] == "STALE"
    other_boot = await _signal(env, config_uuid, f"{job_id}(sig-wipe)")
    assert other_boot.status_code == 409
    error = other_boot.json()["error"]
    assert (error["code"], error["field"]) == ("STALE", "cookie")
    assert "from a boot of PXE 'sig-wipe'" in error["message"]
    assert "waits for one of 'installer'" in error["message"]
    job = await job_state(env, job_id)
    assert (job.signalled, job.state) == (False, "queued")
    assert await _signalled_entries(env, job_id) == 0

    taken = await _signal(env, config_uuid, f"{job_id}(installer)")
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"status": "received", "job_id": job_id}

    # the next boot: the installer's late signal is now stale
    await _waiting_for(env, job_id, "sig-wipe")
    stale = await _signal(env, config_uuid, f"{job_id}(installer)")
    assert stale.status_code == 409
    assert "a stale boot" in stale.json()["error"]["message"]
    assert (await job_state(env, job_id)).signalled is False
    assert (await _signal(env, config_uuid, f"{job_id}(sig-wipe)")).status_code == 200
    done = await wait_for(env, job_id, "done")
    variables = json.loads(done.runner_state)["variables"]
    assert (variables["before"], variables["after"]) == (False, True)
    assert await _signalled_entries(env, job_id) == 2


async def test_reset_without_a_pxe_name_takes_any_signal_naming_the_job(env: Env) -> None:
    config_uuid, job_id = await _structure_job(
        env, "signaling.reset()\nsignaling.wait_for_completion()\n"
    )
    for _ in range(400):
        if (await job_state(env, job_id)).message == "Waiting for the complete signal":
            break
        await asyncio.sleep(0.05)
    assert (await job_state(env, job_id)).signal_pxe_name is None
    # a cookie for another job is still an earlier boot's
    assert (await _signal(env, config_uuid, f"{job_id + 7}(installer)")).status_code == 409
    assert (await _signal(env, config_uuid, f"{job_id}(anything)")).status_code == 200
    await wait_for(env, job_id, "done")


async def test_reset_refuses_an_unknown_pxe_and_a_wrong_keyword(env: Env) -> None:
    _, unknown = await _structure_job(env, "signaling.reset( pxe_name='no-such-boot' )\n")
    job = await wait_for(env, unknown, "aborted")
    assert 'parameter "pxe_name"' in job.message
    assert 'signaling.reset(): no PXE named "no-such-boot"' in job.message
    assert job.signal_pxe_name is None

    async def second(session: AsyncSession) -> int:
        stack = await make_job_stack(session, foundation_create="signaling.reset( pxe='x' )\n")
        created = await jobs.create_job(
            session, target=stack.foundation, script_name="create", creator="alice"
        )
        return created.id

    wrong = await wait_for(env, await env.run(second), "aborted")
    assert 'signaling.reset() has no parameter "pxe" (parameters: pxe_name)' in wrong.message
