"""A task's result, composed: the services take it, the engine steps the job.

``take_result`` is what the task API's ``result`` route calls. In one transaction the
services check the answer and lock the task and its job (``tasks.hold_result``: the current
lease and cookie, a job that takes results), the job's runner takes the result
(``tasks.hand_over``), and a queued job takes its next step right there (``run_step``: the
job is locked and its runner loaded already, the engine would only read them again). Should
that step fail unexpectedly, everything is rolled back and the result is taken again alone
(``tasks.keep_result``); the engine then steps the job, and aborts it if the step fails
there too. On PostgreSQL the step is written and committed in one round trip each
(``contractor.services.hotpath``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor.foreman.engine import run_step
from contractor.foreman.modules import JobContext
from contractor.metrics import instruments
from contractor.models import Job, JobState, Task
from contractor.services import hotpath, jobs, tasks
from contractor.services.config import ConfigCache
from contractor.services.observability import on_commit
from contractor.settings import Settings
from tscript import Runner

__all__ = ["Answer", "StepFailed", "accept_result", "take_result"]

log = logging.getLogger(__name__)


class StepFailed(Exception):
    """Stepping a job after taking its result failed unexpectedly (see ``accept_result``)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"stepping job {job_id} after a result failed")
        self.job_id = job_id


class Answer(TypedDict):
    """A subcontractor's result for a task: ``data`` for the task it holds under ``lease``,
    answering the job's call ``cookie``."""

    token: tasks.Identity
    task_id: int
    cookie: str
    lease: str
    data: dict[str, Any]


async def take_result(
    sessions: async_sessionmaker[AsyncSession],
    *,
    settings: Settings,
    cache: ConfigCache | None = None,
    **answer: Unpack[Answer],
) -> int:
    """Take a task's result and step its job, committed; the job's id (see the module
    docstring)."""

    async def attempt(step: bool) -> Job:
        async with hotpath.transaction(sessions) as session:
            return await accept_result(session, settings=settings, cache=cache, step=step, **answer)

    try:
        job = await attempt(step=True)
    except StepFailed as failed:  # all rolled back: take the result alone
        log.exception("%s; the engine steps it", failed)
        job = await attempt(step=False)
    return job.id


async def accept_result(
    session: AsyncSession,
    *,
    settings: Settings,
    cache: ConfigCache | None = None,
    step: bool = False,
    **answer: Unpack[Answer],
) -> Job:
    """Take a task's result (exactly once); the job steps again soon. With ``step``, a queued
    job takes its next step here, in this transaction; should that step fail unexpectedly,
    ``StepFailed`` is raised and the caller rolls back (``take_result``)."""
    started = time.perf_counter()
    token, cookie = answer["token"], answer["cookie"]
    held = await tasks.hold_result(
        session, token=token, task_id=answer["task_id"], cookie=cookie, lease=answer["lease"]
    )
    job = held.job
    step = step and job.state == JobState.QUEUED
    context = await JobContext.load(session, job, settings=settings, cache=cache, for_step=step)
    runner = Runner.from_json(job.runner_state, context.modules())
    message = tasks.hand_over(
        held, runner, cookie=cookie, data=answer["data"], foundation=context.foundation
    )
    if not step:
        await tasks.keep_result(session, job, runner, message, actor=f"subcontractor {token.name}")
        return job
    try:
        await run_step(session, job, context, runner, flush=False)
        if any(isinstance(new, Task) for new in session.new):
            on_commit(session, lambda: instruments().next_task(time.perf_counter() - started))
        await hotpath.save_step(session)
    except Exception as error:
        raise StepFailed(job.id) from error
    if job.step_at is not None:  # a timer or more to run: the engine takes it from here
        await jobs.announce(session, jobs.JOBS_CHANNEL)
    return job
