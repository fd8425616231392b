"""Operator actions on a job: pause, resume, reset, roll back and cancel.

Each checks the job's state, moves it with ``jobs.set_state`` (which writes the log and the
event) and sets ``step_at`` where the engine should step the job again. Callers lock the job
first (``jobs.lock_job``). Like every service they flush and never commit.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidState
from contractor.models import Job, JobState, utcnow
from contractor.services.events import announce
from contractor.services.jobs import JOBS_CHANNEL, cancel_open_tasks, set_state
from tscript import Runner


def _require(job: Job, *states: str, action: str) -> None:
    if job.state not in states:
        raise InvalidState(
            f"job {job.id} is {job.state}; {action} needs it {' or '.join(states)}",
            field="id",
        )


async def pause_job(session: AsyncSession, job: Job, *, actor: str) -> Job:
    """queued -> paused. A task already handed out keeps running; its answer is accepted
    and the job continues with it when resumed."""
    _require(job, JobState.QUEUED, action="pause")
    set_state(
        session, job, JobState.PAUSED, actor=actor, action="paused", message="paused by " + actor
    )
    await session.flush()
    return job


async def resume_job(session: AsyncSession, job: Job, *, actor: str) -> Job:
    _require(job, JobState.PAUSED, action="resume")
    return await _queue_again(session, job, actor=actor, action="resumed", now=utcnow())


async def _queue_again(
    session: AsyncSession, job: Job, *, actor: str, action: str, now: dt.datetime
) -> Job:
    """Back to queued and due ``now``: the engine steps the job soon."""
    set_state(session, job, JobState.QUEUED, actor=actor, action=action, message="")
    job.step_at = now
    await announce(session, JOBS_CHANNEL)
    await session.flush()
    return job


async def reset_job(session: AsyncSession, job: Job, *, actor: str, runner: Runner | None) -> Job:
    """error -> queued: the failed step is tried again (a lost task is sent again, a runaway
    loop gets another step allowance)."""
    _require(job, JobState.ERROR, action="reset")
    now = utcnow()
    await cancel_open_tasks(session, job, now=now)
    if runner is not None:
        runner.clear_dispatched()
        runner.reset_step_ceiling()
        job.runner_state = runner.dumps()
    return await _queue_again(session, job, actor=actor, action="reset", now=now)


async def rollback_job(
    session: AsyncSession, job: Job, *, actor: str, runner: Runner | None
) -> Job:
    """error -> queued after the waiting function agreed to roll back; the cookie changes, so
    a late answer to the old task is refused."""
    _require(job, JobState.ERROR, action="rollback")
    if runner is None:
        raise InvalidState(f"job {job.id} has not started a function to roll back", field="id")
    answer = runner.rollback()
    if answer != "Done":
        raise InvalidState(f"job {job.id} cannot roll back: {answer}", field="id")
    now = utcnow()
    await cancel_open_tasks(session, job, now=now)
    job.runner_state = runner.dumps()
    return await _queue_again(session, job, actor=actor, action="rolled back", now=now)


async def cancel_job(session: AsyncSession, job: Job, *, actor: str) -> Job:
    """Any unfinished job -> aborted and finished: the target is left as it is and may get a
    new job; unanswered tasks are withdrawn."""
    if job.finished_at is not None:
        raise InvalidState(f"job {job.id} is already finished ({job.state})", field="id")
    now = utcnow()
    await cancel_open_tasks(session, job, now=now)
    set_state(
        session,
        job,
        JobState.ABORTED,
        actor=actor,
        action="cancelled",
        message=f"cancelled by {actor}",
        now=now,
    )
    await announce(session, JOBS_CHANNEL)
    await session.flush()
    return job
