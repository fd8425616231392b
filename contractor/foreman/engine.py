"""The stepping engine: claim a due job, run a slice of its script, save everything at once.

A job is *due* when its ``step_at`` has come; creating it, a task result, a signal, an
operator action or a timer (``delay``, a retry interval, the waiting re-check) sets
``step_at``. ``Foreman.run`` steps due jobs with a few concurrent workers, each claiming one
job at a time (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so any number of foreman processes
share the work; SQLite: one process, plain transactions), and sleeps until the hub says
something happened or the next timer is due. One step saves the runner state, the job's
state, message and progress, the script's changes and the new task in one transaction (a
step that aborts the job writes none of the script's changes); a step that fails
unexpectedly aborts that job only, in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor.errors import ContractorError
from contractor.foreman.hub import Hub
from contractor.foreman.modules import JobContext
from contractor.logs import job_and_task
from contractor.metrics import instruments
from contractor.models import (
    STEPPABLE_JOB_STATES,
    Dependency,
    Foundation,
    Job,
    JobState,
    Structure,
    Task,
    utcnow,
)
from contractor.services import building, jobs
from contractor.services.config import ConfigCache
from contractor.services.observability import on_commit
from contractor.settings import Settings
from tscript import (
    ExecutionError,
    Pause,
    Runner,
    RunResult,
    UnrecoverableError,
)

__all__ = ["Foreman", "foreman_running", "restore_runner", "run_step", "step_job"]

log = logging.getLogger(__name__)

ACTOR = "foreman"
SLICE_STEPS = 1000
SHUTDOWN_SECONDS = 10.0
SLICES_PER_STEP = 20


class _Everything(Collection[str]):
    """Every module name: the engine makes a task for any module; who serves it is the
    poller's business."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


EVERY_MODULE = _Everything()


def restore_runner(job: Job, context: JobContext) -> Runner | None:
    """The job's runner (None before its first step)."""
    if not job.runner_state:
        return None
    return Runner.from_json(job.runner_state, context.modules())


def _timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


async def step_job(
    session: AsyncSession, job: Job, *, settings: Settings, cache: ConfigCache | None = None
) -> None:
    """One step of a (locked) due job; the caller commits. A waiting job starts if it may
    now; a queued one loads its context and runner and runs (``run_step``)."""
    now = utcnow()
    job.step_at = None
    if job.state == JobState.WAITING:
        before = jobs.progress_of(job)
        await jobs.lock_start_order(session, job.site_id, finishing=False)
        reason = await jobs.waiting_reason(session, job)
        if reason is not None:
            job.message = reason
            job.step_at = now + dt.timedelta(seconds=settings.foreman_waiting_recheck_seconds)
            jobs.report_progress(session, job, before, actor=ACTOR)
            return
        jobs.set_state(session, job, JobState.QUEUED, actor=ACTOR, action="started", message="")
        job.started_at = now
    if job.state != JobState.QUEUED:
        return
    context = await JobContext.load(session, job, settings=settings, cache=cache)
    runner = restore_runner(job, context) or Runner(job.script_source, context.modules())
    await run_step(session, job, context, runner)


async def run_step(
    session: AsyncSession, job: Job, context: JobContext, runner: Runner, *, flush: bool = True
) -> None:
    """The script's next slice for a (locked) queued job, with its ``context`` (loaded for a
    step) and ``runner`` at hand, as ``step_job`` or a result just taken has them; the caller
    commits. ``flush=False`` leaves the last changes unflushed, for a caller that writes
    them."""
    now = utcnow()
    job.step_at = None
    before = jobs.progress_of(job)
    result: RunResult | None = None
    # A signal's transition is logged once the job's progress is saved, so its event
    # carries the line and percent where the script stopped.
    transition: tuple[str, str] | None = None
    try:
        for _ in range(SLICES_PER_STEP):
            result = runner.run(SLICE_STEPS)
            if result.state == "message":
                job.message = result.message
            elif result.state != "budget":
                break
        else:
            job.step_at = now  # a long computation: continue in the next step
    except Pause as signal:
        transition = (JobState.PAUSED, str(signal))
    except ExecutionError as signal:
        await jobs.cancel_open_tasks(session, job, now=now)
        transition = (JobState.ERROR, str(signal))
    except UnrecoverableError as signal:
        await jobs.cancel_open_tasks(session, job, now=now)
        transition = (JobState.ABORTED, str(signal))
    if transition is None or transition[0] != JobState.ABORTED:
        refused = await context.check(session)
        if refused is not None:
            await jobs.cancel_open_tasks(session, job, now=now)
            transition = (JobState.ABORTED, str(refused))
    task = None
    if transition is None and result is not None and result.state == "waiting":
        job.message = result.message
        task = runner.to_subcontractor(EVERY_MODULE)
        wake = runner.next_wake()
        if wake is not None:
            job.step_at = _timestamp(wake)
    job.runner_state = runner.dumps()
    job.status = runner.status()
    job.line = runner.line
    if transition is not None:
        state, message = transition
        jobs.set_state(session, job, state, actor=ACTOR, action=state, message=message)
    if transition is None or transition[0] != JobState.ABORTED:
        # An aborted job cannot go on, so what its script changed in this step is dropped.
        # Paused and error steps keep it: the job continues after the point they stopped.
        await context.apply(session)
    else:
        await context.apply_recorded(session)  # what exists outside is never forgotten
    if task is not None:
        session.add(
            Task(
                job_id=job.id,
                site_id=job.site_id,
                module=task["module"],
                function=task["function"],
                parameters=task["parameters"],
                cookie=task["cookie"],
                available_at=now,
            )
        )
        await jobs.announce(session, jobs.TASKS_CHANNEL)
        on_commit(session, instruments().task_created)
    if result is not None and result.state == "done" and job.state == JobState.QUEUED:
        await finish_job(session, job, now=now)
    elif transition is None:
        jobs.report_progress(session, job, before, actor=ACTOR)
    if flush:
        await session.flush()


async def finish_job(session: AsyncSession, job: Job, *, now: dt.datetime) -> None:
    """The script ended: change the target's state, mark the job done, and let waiting jobs
    of the site check again whether they may start."""
    target = await jobs.target_of(session, job)
    try:
        await _change_target(session, target, job.script_name)
    except ContractorError as error:
        jobs.set_state(
            session,
            job,
            JobState.ERROR,
            actor=ACTOR,
            action="error",
            message=f"the script finished but the target could not change: {error.message}",
        )
        return
    jobs.set_state(session, job, JobState.DONE, actor=ACTOR, action="done", message="done", now=now)
    await session.flush()  # the job is no longer waiting-or-queued when the site is woken
    if await jobs.wake_waiting(session, job.site_id, now=now):
        await jobs.announce(session, jobs.JOBS_CHANNEL)  # the foreman has jobs to step


async def _change_target(session: AsyncSession, target: Any, script_name: str) -> None:
    if script_name not in ("create", "destroy"):
        return
    create = script_name == "create"
    if isinstance(target, Foundation):
        if create:
            await building.set_built(session, target)
            return
        structure = await building.foundation_structure(session, target)
        if structure is not None and structure.state == "built":
            await building.set_structure_destroyed(session, structure)
        await building.set_destroyed(session, target)
    elif isinstance(target, Structure):
        if create:
            await building.set_structure_built(session, target)
        else:
            await building.set_structure_destroyed(session, target)
    else:
        assert isinstance(target, Dependency)
        if create:
            await building.set_dependency_built(session, target)
        else:
            await building.set_dependency_destroyed(session, target)


class Foreman:
    """Steps due jobs until stopped; see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        settings: Settings,
        hub: Hub,
        cache: ConfigCache | None = None,
        readers: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions = sessions
        # Looking for due jobs only reads: on SQLite that must not take the write lock.
        self.readers = readers or sessions
        self.settings = settings
        self.hub = hub
        self.cache = cache
        self.steps = 0
        self.last_round: float | None = None  # time.monotonic() of the loop's last round

    async def _claim_and_step(self) -> bool:
        """Claim one due job and step it; False when none is due."""
        async with self.sessions() as session:
            job_id: int | None = None
            try:
                async with session.begin():
                    query = (
                        select(Job)
                        .where(Job.step_at <= utcnow(), Job.state.in_(STEPPABLE_JOB_STATES))
                        .order_by(Job.step_at, Job.id)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                    job = (await session.execute(query)).scalar_one_or_none()
                    if job is None:
                        return False
                    job_id = job.id
                    with job_and_task(job_id=job_id):
                        await step_job(session, job, settings=self.settings, cache=self.cache)
                self.steps += 1
                return True
            except Exception as error:  # a poison job must not stop the others
                if job_id is None:
                    raise
                with job_and_task(job_id=job_id):
                    log.exception("stepping job %s failed", job_id)
                await self._abort(job_id, error)
                return True

    async def _abort(self, job_id: int, error: Exception) -> None:
        async with self.sessions() as session, session.begin():
            job = await jobs.lock_job(session, job_id)
            if job.finished_at is not None:
                return
            await jobs.cancel_open_tasks(session, job, now=utcnow())
            jobs.set_state(
                session,
                job,
                JobState.ABORTED,
                actor=ACTOR,
                action="aborted",
                message=f"Unknown Runtime Exception ({type(error).__name__}): {error}",
            )

    async def schedule(self) -> tuple[int, dt.datetime | None]:
        """How many jobs are due now (up to the concurrency) and when the next one after
        them is, in one read (no lock: on SQLite it must not take the write lock)."""
        limit = self.settings.foreman_concurrency
        async with self.readers() as session:
            query = (
                select(Job.step_at)
                .where(Job.step_at.is_not(None), Job.state.in_(STEPPABLE_JOB_STATES))
                .order_by(Job.step_at)
                .limit(limit + 1)
            )
            times = [at for at in (await session.execute(query)).scalars() if at is not None]
        now = utcnow()
        due = sum(1 for at in times if at <= now)
        later = next((at for at in times if at > now), None)
        return min(due, limit), later

    async def step_due(self) -> int:
        """Step every due job (several at once); returns how many steps were taken."""
        before = self.steps
        due, _ = await self.schedule()
        await self._step(due)
        return self.steps - before

    async def _step(self, due: int) -> None:
        if due == 0:
            return
        bind = self.sessions.kw.get("bind")
        sqlite = bind is not None and bind.dialect.name == "sqlite"
        workers = 1 if sqlite else due
        claims = due  # as many claims as jobs were due; the run loop looks again afterwards

        async def worker() -> None:
            nonlocal claims
            while claims > 0:
                claims -= 1
                if not await self._claim_and_step():
                    return

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def next_due(self) -> dt.datetime | None:
        async with self.readers() as session:
            query = select(func.min(Job.step_at)).where(Job.state.in_(STEPPABLE_JOB_STATES))
            return (await session.execute(query)).scalar_one_or_none()

    async def run(self, stop: asyncio.Event) -> None:
        """Step due jobs until ``stop`` is set."""
        idle = self.settings.foreman_idle_seconds
        while not stop.is_set():
            self.last_round = time.monotonic()  # /readyz: a loop that stops coming is stalled
            woken = self.hub.jobs.waiter()
            try:
                due, later = await self.schedule()
                if due:
                    await self._step(due)
                    continue  # look again at once: stepping may have made more work due
            except Exception:  # the database went away: try again shortly
                log.exception("foreman loop failed; retrying")
                later = None
            timeout = idle
            if later is not None:
                timeout = min(idle, max((later - utcnow()).total_seconds(), 0.0))
            if timeout <= 0:
                continue
            stopping = asyncio.ensure_future(stop.wait())
            waking = asyncio.ensure_future(woken.wait())
            try:
                await asyncio.wait(
                    {stopping, waking}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopping.cancel()
                waking.cancel()


@asynccontextmanager
async def foreman_running(settings: Settings, hub: Hub, foreman: Foreman) -> AsyncIterator[None]:
    """While inside: on PostgreSQL, listen for notifications; with ``foreman_enabled``, step
    jobs. Both stop when the block ends."""
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    if not settings.is_sqlite:
        running.append(asyncio.create_task(hub.listen(settings.database_url)))
    if settings.foreman_enabled:
        running.append(asyncio.create_task(foreman.run(stop)))
    try:
        yield
    finally:
        stop.set()
        for task in running:
            task.cancel()
        if running:  # bounded: a task that ignored its cancellation must not hold shutdown
            done, stuck = await asyncio.wait(running, timeout=SHUTDOWN_SECONDS)
            for task in stuck:
                log.error("%s did not stop within %ss", task.get_name(), SHUTDOWN_SECONDS)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    log.error("%s stopped with an error", task.get_name(), exc_info=error)
