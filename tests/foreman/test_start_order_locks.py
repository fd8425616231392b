"""Two transactions finishing jobs of one site at the same moment (two foreman processes, or
`contractor serve` and `contractor foreman`) on PostgreSQL: each wakes the site's waiting
jobs, and neither waits for a job row the other holds, so they cannot deadlock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor.db import create_engine, create_session_factory, transaction
from contractor.foreman.engine import finish_job, step_job
from contractor.models import Foundation, Job, utcnow
from contractor.services import blueprint as bp_service
from contractor.services import building, jobs
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import make_foundation, make_foundation_blueprint, make_site, unique
from tests.foreman.inventory import make_job_stack


@pytest.fixture
async def sessions(foreman_pg_template: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = make_pg_database("contractor_locks", template=foreman_pg_template)
    engine = create_engine(Settings(database_url=url))
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


SETTINGS = Settings(database_url="sqlite://")


async def _site_with_jobs(
    sessions: async_sessionmaker[AsyncSession], count: int, *, locate: bool = True
) -> tuple[int, list[int]]:
    """A site and ``count`` foundations in it, each with a create job that is still waiting."""
    async with transaction(sessions) as session:
        site = await make_site(session)
        blueprint = await make_foundation_blueprint(session, foundation_types=["manual"])
        script = await bp_service.create_script(session, name=unique("script"), source="pass\n")
        await bp_service.link_script(session, blueprint=blueprint, role="create", script=script)
        ids = []
        for _ in range(count):
            foundation = await make_foundation(session, site, blueprint)
            if locate:
                await building.set_located(session, foundation)
            job = await jobs.create_job(
                session, target=foundation, script_name="create", creator="alice"
            )
            job.step_at = None  # not due: only the wake-ups below make them due
            ids.append(job.id)
        return site.id, ids


async def _finish(session: AsyncSession, job_id: int) -> None:
    job = await jobs.lock_job(session, job_id)
    job.state = "queued"
    await finish_job(session, job, now=utcnow())


async def test_two_finishes_in_one_site_do_not_deadlock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    site_id, (first, second, waiting) = await _site_with_jobs(sessions, 3)
    async with sessions() as holder, holder.begin():
        # This transaction holds the second job (as the transaction stepping it would) ...
        await jobs.lock_job(holder, second)

        async def other() -> None:
            async with transaction(sessions) as session:
                await _finish(session, first)

        # ... while another finishes the first job and wakes the site: it skips the held job
        # instead of waiting for it while it holds the first one.
        finishing = asyncio.create_task(other())
        await asyncio.wait_for(asyncio.shield(finishing), timeout=10)
        await _finish(holder, second)  # the holder wakes the site too, and needs its turn
    await finishing
    async with sessions() as session:
        rows = {
            job.id: job
            for job in (
                await session.execute(select(Job).where(Job.id.in_([first, second, waiting])))
            )
            .scalars()
            .all()
        }
        assert (rows[first].state, rows[second].state) == ("done", "done")
        assert rows[waiting].state == "waiting"
        assert rows[waiting].step_at is not None  # woken by both
        foundations = (
            (await session.execute(select(Foundation).where(Foundation.site_id == site_id)))
            .scalars()
            .all()
        )
        assert sorted(f.state for f in foundations) == ["built", "built", "located"]


async def test_a_waiting_check_sees_a_finish_that_commits_meanwhile(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A structure's create job waits for its foundation to be built. Its check and the
    foundation job's finish take turns: a check that starts while the finish is open waits
    for it, then sees the built foundation and starts (it does not wait for a re-check)."""
    async with transaction(sessions) as session:
        stack = await make_job_stack(session, foundation_create="pass\n")
        finisher_id = (
            await jobs.create_job(
                session, target=stack.foundation, script_name="create", creator="alice"
            )
        ).id
        waiting_id = (
            await jobs.create_job(
                session, target=stack.structure, script_name="create", creator="alice"
            )
        ).id
    locked = asyncio.Event()
    checked = asyncio.Event()
    go = asyncio.Event()

    async def check() -> None:
        async with transaction(sessions) as session:
            job = await jobs.lock_job(session, waiting_id)  # a foreman claimed it ...
            locked.set()
            await go.wait()
            await step_job(session, job, settings=SETTINGS)  # ... and checks it now
            checked.set()

    checking = asyncio.create_task(check())
    await asyncio.wait_for(locked.wait(), timeout=10)
    async with sessions() as finisher, finisher.begin():
        # The finish skips the claimed job when it wakes the site, and holds the site's turn
        # until it commits.
        await _finish(finisher, finisher_id)
        go.set()
        await asyncio.sleep(0.3)
        assert not checked.is_set()  # the check waits for the finisher's turn
    await asyncio.wait_for(checking, timeout=10)
    async with sessions() as session:
        job = await session.get_one(Job, waiting_id)
        assert job.state == "queued", job.message  # started: its remote steps are next
