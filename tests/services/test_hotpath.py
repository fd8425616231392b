"""The task API's plain SQL on PostgreSQL (``contractor.services.hotpath``): leases taken in
autocommit and given back, job and task read into the session, and a step written in one
statement only when it changed nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contractor.db import create_engine, create_session_factory
from contractor.models import Event, Job, JobLog, Task, utcnow
from contractor.services import hotpath, jobs
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.foreman.inventory import make_job_stack


@pytest.fixture
async def engine(own_pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=own_pg_url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _job_with_task(engine: AsyncEngine) -> tuple[int, Any, str]:
    """A committed queued job with one open task, and a token for its site."""
    async with create_session_factory(engine)() as session, session.begin():
        stack = await make_job_stack(session)
        job = await jobs.create_job(
            session, target=stack.foundation, script_name="create", creator="alice"
        )
        job.state = "queued"
        await session.flush()
        session.add(
            Task(
                job_id=job.id,
                site_id=stack.site.id,
                module="simulated",
                function="power_state",
                parameters={"password": "s3cret"},
                cookie="c1",
                available_at=utcnow(),
            )
        )
        new = await task_service.create_subcontractor_token(
            session, name="sub1", sites=[stack.site.name], modules=["simulated"]
        )
        return job.id, task_service.Subcontractor.of(new.token), stack.site.name


async def test_claim_in_autocommit_and_release(engine: AsyncEngine) -> None:
    job_id, token, site = await _job_with_task(engine)
    async with hotpath.autocommit(engine) as connection:
        (task,) = await task_service.claim_tasks(
            connection, token=token, site=site, modules=["simulated"], limit=5, lease_seconds=30
        )
        assert (task.job_id, task.attempt, task.lease_holder) == (job_id, 1, "sub1")
        assert task.lease is not None
        assert task.lease.endswith(f"-{task.id}")
        assert task.lease_expires_at is not None
        assert task.lease_expires_at.tzinfo is not None
        assert task.parameters == {"password": "s3cret"}
        # committed at once: another connection sees the lease
        async with create_session_factory(engine)() as other:
            assert (await other.get_one(Task, task.id)).lease == task.lease
        assert (
            await task_service.claim_tasks(
                connection, token=token, site=site, modules=["simulated"], limit=5, lease_seconds=30
            )
            == []
        )
        await hotpath.release(connection, [task])
    async with create_session_factory(engine)() as session:
        again = await session.get_one(Task, task.id)
        assert (again.attempt, again.lease, again.lease_holder) == (0, None, None)
    assert not connection.autocommit  # back to the pool as it came


async def test_claim_for_several_modules(engine: AsyncEngine) -> None:
    job_id, _, site = await _job_with_task(engine)
    token = task_service.Subcontractor("sub3", "k3", (site,), ("ipmi", "simulated"))
    async with hotpath.autocommit(engine) as connection:
        tasks = await task_service.claim_tasks(
            connection,
            token=token,
            site=site,
            modules=["ipmi", "simulated"],
            limit=5,
            lease_seconds=30,
        )
    assert [(task.job_id, task.module, task.lease_holder) for task in tasks] == [
        (job_id, "simulated", "sub3")
    ]


async def test_claim_refusals(engine: AsyncEngine) -> None:
    _, token, site = await _job_with_task(engine)
    gone = task_service.Subcontractor("sub2", "k", ("nowhere",), ("simulated",))
    refusals = [
        (token, "elsewhere", "simulated", task_service.Forbidden, "may not take tasks of site"),
        (token, site, "ipmi", task_service.Forbidden, "module 'ipmi'"),
        (gone, "nowhere", "simulated", task_service.NotFound, "site 'nowhere' does not exist"),
    ]
    async with hotpath.autocommit(engine) as connection:
        for who, where, module, error, message in refusals:
            with pytest.raises(error, match=message):
                await task_service.claim_tasks(
                    connection, token=who, site=where, modules=[module], limit=1, lease_seconds=30
                )


async def test_lock_reads_rows_into_the_session_or_refreshes_its_own(engine: AsyncEngine) -> None:
    job_id, _, site = await _job_with_task(engine)
    async with create_session_factory(engine)() as session, session.begin():
        task_id = (await session.execute(select(Task.id).where(Task.job_id == job_id))).scalar_one()
        session.expunge_all()
        found = await hotpath.lock_job_and_task(session, task_id)
        assert found is not None
        job, task, site_name = found.job, found.task, found.site
        assert (job.id, task.id, site_name) == (job_id, task_id, site)
        assert job in session
        assert task in session
        assert not session.dirty
        assert job.step_at is None or job.step_at.tzinfo is not None
        job.message = "not saved"
        held = await hotpath.lock_job_and_task(session, task_id)  # held: the session's own
        assert held is not None
        assert (held.job, held.task) == (job, task)
        assert job.message != "not saved"  # as read, as populate_existing leaves it
        assert not session.is_modified(job)
        assert await hotpath.lock_job_and_task(session, 10**9) is None  # missing


async def test_write_step_writes_job_task_and_new_task_in_one_go(engine: AsyncEngine) -> None:
    job_id, _, _ = await _job_with_task(engine)
    async with create_session_factory(engine)() as session, session.begin():
        connection = await hotpath.driver(session)
        assert connection is not None
        task_id = (await session.execute(select(Task.id).where(Task.job_id == job_id))).scalar_one()
        session.expunge_all()
        found = await hotpath.lock_job_and_task(session, task_id)
        assert found is not None
        job, task = found.job, found.task
        before = job.updated
        job.message, job.status, job.line = "step two", {"percent": 50.0}, 2
        task.state, task.finished_at = "done", utcnow()
        session.add(
            Task(
                job_id=job.id,
                site_id=task.site_id,
                module="simulated",
                function="set_power",
                parameters={"state": "on"},
                cookie="c2",
                available_at=utcnow(),
            )
        )
        assert await hotpath.write_step(session, connection)
        assert not session.dirty  # nothing left for a flush
        assert not session.new
        assert job in session
    async with create_session_factory(engine)() as session:
        job = await session.get_one(Job, job_id)
        assert (job.message, job.status, job.line) == ("step two", {"percent": 50.0}, 2)
        assert job.updated > before
        rows = await session.execute(select(Task).where(Task.job_id == job_id).order_by(Task.id))
        done, new = rows.scalars().all()
        assert (done.state, done.finished_at is not None) == ("done", True)
        assert (new.function, new.parameters, new.state, new.attempt) == (
            "set_power",
            {"state": "on"},
            "open",
            0,
        )
        assert new.created is not None
        assert new.lease is None


async def test_write_step_leaves_anything_else_to_the_flush(engine: AsyncEngine) -> None:
    job_id, _, _ = await _job_with_task(engine)
    async with create_session_factory(engine)() as session, session.begin():
        connection = await hotpath.driver(session)
        assert connection is not None
        job = await session.get_one(Job, job_id)
        job.message = "paused"
        jobs.write_log(
            session, job, actor="t", action="paused", from_state="queued", to_state="paused"
        )
        assert not await hotpath.write_step(session, connection)  # a log row: not ours
        assert job in session.dirty  # untouched, for the flush
        await session.flush()
        logs = (await session.execute(select(JobLog).where(JobLog.job_id == job_id))).scalars()
        assert "paused" in [log.action for log in logs]


async def test_no_driver_on_sqlite(sqlite_url: str) -> None:
    engine = create_engine(Settings(database_url=sqlite_url))
    try:
        async with create_session_factory(engine)() as session:
            assert await hotpath.driver(session) is None
    finally:
        await engine.dispose()


async def test_commit_sends_events_and_commit_in_one_go(engine: AsyncEngine) -> None:
    job_id, _, _ = await _job_with_task(engine)
    async with create_session_factory(engine)() as session, session.begin():
        connection = await hotpath.driver(session)
        assert connection is not None
        job = await session.get_one(Job, job_id)
        before = jobs.progress_of(job)
        job.message = "half way"
        jobs.report_progress(session, job, before, actor="test")
        await jobs.announce(session, jobs.TASKS_CHANNEL)
        await hotpath.commit(session, connection)
        # committed already: another connection sees the change and its event
        async with create_session_factory(engine)() as other:
            assert (await other.get_one(Job, job_id)).message == "half way"
            kinds = (
                await other.execute(
                    select(Event.kind).where(Event.object_type == "job", Event.object_id == job_id)
                )
            ).scalars()
            assert "progress" in list(kinds)
    # the session's own commit after it sent nothing more and failed nothing
    async with create_session_factory(engine)() as other:
        count = (
            await other.execute(
                select(func.count())
                .select_from(Event)
                .where(Event.object_type == "job", Event.object_id == job_id)
            )
        ).scalar_one()
        assert count == 2  # created and progress, each once


async def test_the_statements_run_on_both_databases(session: AsyncSession) -> None:
    """The claim, the release, the lock and the site check are each written once: through
    the session on SQLite, as plain SQL on its connection on PostgreSQL."""
    stack = await make_job_stack(session)
    job = await jobs.create_job(
        session, target=stack.foundation, script_name="create", creator="alice"
    )
    job.state = "queued"
    session.add(
        Task(
            job_id=job.id,
            site_id=stack.site.id,
            module="simulated",
            function="power_state",
            parameters={},
            cookie="c1",
            available_at=utcnow(),
        )
    )
    await session.flush()
    site = stack.site.name
    token = task_service.Subcontractor("sub1", "k", (site,), ("ipmi", "simulated"))
    (task,) = await task_service.claim_tasks(
        session, token=token, site=site, modules=["ipmi", "simulated"], limit=5, lease_seconds=30
    )
    assert (task.job_id, task.attempt, task.lease_holder) == (job.id, 1, "sub1")
    assert task.lease_expires_at.tzinfo is not None
    await hotpath.release(session, [task])
    held = await hotpath.lock_job_and_task(session, task.id)
    assert held is not None
    assert held.job is job  # the session's own object, as the row now is
    assert (held.task.attempt, held.task.lease, held.site) == (0, None, site)
    assert await hotpath.site_exists(session, site)
    assert not await hotpath.site_exists(session, "nowhere")
