"""Jobs: creation with the reference's rules, start ordering and the log.

A job runs one script (``create``, ``destroy`` or a utility name) against one Foundation,
Structure or Dependency, at most one unfinished job per target. States::

    waiting --may start--> queued --script pauses / operator pauses--> paused --resume--> queued
    queued --ExecutionError / subcontractor error--> error --reset | rollback--> queued
    queued --unrecoverable error--> aborted        any unfinished --cancel--> aborted (finished)
    queued --script ends--> done (the target becomes built / destroyed)

Every transition and operator action (``job_actions``) writes a ``JobLog`` row. The engine
(``contractor.foreman.engine``) steps jobs; these functions only change rows and set
``step_at`` so the engine steps the job soon. Like every service they flush and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, InvalidState, NotFound
from contractor.metrics import instruments
from contractor.models import (
    FINISHED_JOB_STATES,
    BluePrint,
    Dependency,
    Event,
    Foundation,
    Job,
    JobLog,
    JobState,
    Structure,
    Task,
    TaskState,
    utcnow,
)
from contractor.services.blueprint import find_script
from contractor.services.events import ANNOUNCE_KEY, announce, record_event
from contractor.services.observability import on_commit
from tscript import ParseError, parse

__all__ = [
    "ANNOUNCE_KEY",
    "FINISHED_STATES",
    "JOBS_CHANNEL",
    "TASKS_CHANNEL",
    "AwaitedSignal",
    "Target",
    "announce",
    "awaited_signal",
    "cancel_open_tasks",
    "create_job",
    "expect_signal",
    "get_job",
    "job_and_cursor",
    "job_for_target",
    "job_logs",
    "lock_job",
    "lock_start_order",
    "progress_of",
    "report_progress",
    "set_state",
    "signal_cookie",
    "target_of",
    "waiting_reason",
    "wake_waiting",
    "write_log",
]

Target = Foundation | Structure | Dependency
FINISHED_STATES = FINISHED_JOB_STATES
JOBS_CHANNEL = "contractor_jobs"
TASKS_CHANNEL = "contractor_tasks"


# -- reading ------------------------------------------------------------------------------


async def get_job(session: AsyncSession, job_id: int) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", field="id")
    return job


async def job_and_cursor(session: AsyncSession, job_id: int) -> tuple[Job, int]:
    """The job and the newest event cursor, read together (one statement, one snapshot):
    every later change of the job has an event after that cursor."""
    newest = select(func.coalesce(func.max(Event.id), 0)).scalar_subquery()
    row = (await session.execute(select(Job, newest).where(Job.id == job_id))).first()
    if row is None:
        raise NotFound(f"job {job_id} does not exist", field="id")
    return row[0], int(row[1])


async def lock_job(session: AsyncSession, job_id: int) -> Job:
    """The job, locked for this transaction (``populate_existing``: never a stale copy)."""
    query = (
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    job = (await session.execute(query)).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_id} does not exist", field="id")
    return job


def _target_column(target: Target) -> Any:
    if isinstance(target, Foundation):
        return Job.foundation_id
    if isinstance(target, Structure):
        return Job.structure_id
    return Job.dependency_id


async def job_for_target(session: AsyncSession, target: Target) -> Job | None:
    """The target's unfinished job, if any."""
    query = select(Job).where(_target_column(target) == target.id, Job.finished_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def target_of(session: AsyncSession, job: Job) -> Target:
    if job.foundation_id is not None:
        return await session.get_one(Foundation, job.foundation_id)
    if job.structure_id is not None:
        return await session.get_one(Structure, job.structure_id)
    assert job.dependency_id is not None
    return await session.get_one(Dependency, job.dependency_id)


async def foundation_of(session: AsyncSession, job: Job) -> Foundation | None:
    """The foundation a job's script works on: its own, its structure's, or that of the
    structure its dependency's script runs for (None for a dependency without one)."""
    foundation_id = job.foundation_id
    structure_id = job.structure_id
    if job.dependency_id is not None:
        dependency = await session.get_one(Dependency, job.dependency_id)
        structure_id = dependency.script_structure_id or dependency.structure_id
    if foundation_id is None and structure_id is not None:
        structure = await session.get_one(Structure, structure_id)
        foundation_id = structure.foundation_id
    if foundation_id is None:
        return None
    return await session.get_one(Foundation, foundation_id)


def signal_cookie(job_id: int, pxe_name: str) -> str:
    """The cookie a machine booted from ``pxe_name`` signals job ``job_id`` with, as the
    original wrote it: ``42(disk-wipe)``."""
    return f"{job_id}({pxe_name})"


@dataclass(frozen=True)
class AwaitedSignal:
    """What a job waits to hear from: the PXE target whose boot is to signal (None: any
    signal to the target's config UUID is taken) and whether the signal came."""

    job_id: int
    pxe_name: str | None
    complete: bool

    @property
    def cookie(self) -> str | None:
        return signal_cookie(self.job_id, self.pxe_name) if self.pxe_name is not None else None


def awaited_signal(job: Job) -> AwaitedSignal:
    """The one read of the PXE target a job expects to signal (``Job.signal_pxe_name``, set
    by ``signaling.reset( pxe_name=... )`` through ``expect_signal``)."""
    return AwaitedSignal(job.id, job.signal_pxe_name, bool(job.signalled))


def expect_signal(job: Job, pxe_name: str | None) -> None:
    """Clear the job's completion flag and remember which boot target is to signal next."""
    job.signalled = False
    job.signal_pxe_name = pxe_name


async def job_logs(session: AsyncSession, job_ids: Sequence[int]) -> dict[int, list[JobLog]]:
    rows = await session.execute(
        select(JobLog).where(JobLog.job_id.in_(job_ids)).order_by(JobLog.id)
    )
    found: dict[int, list[JobLog]] = {job_id: [] for job_id in job_ids}
    for row in rows.scalars():
        found[row.job_id].append(row)
    return found


# -- the log and transitions ----------------------------------------------------------------


def write_log(
    session: AsyncSession,
    job: Job,
    *,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    message: str = "",
) -> None:
    session.add(
        JobLog(
            job_id=job.id,
            actor=actor,
            action=action,
            from_state=from_state,
            to_state=to_state,
            message=message[:2000],
        )
    )
    record_event(
        session,
        kind=action.replace(" ", "_"),
        object=job,
        actor=actor,
        payload=_job_payload(job, state=to_state, from_state=from_state, message=message),
    )


def progress_of(job: Job) -> tuple[str, float, int | None]:
    """What a watcher of the job sees move: its message, percent complete and line."""
    percent = 100.0 if job.state == JobState.DONE else float((job.status or {}).get("percent", 0.0))
    return job.message, percent, job.line


def _job_payload(
    job: Job, *, state: str | None, from_state: str | None, message: str
) -> dict[str, Any]:
    _message, percent, line = progress_of(job)
    return {
        "state": state,
        "from_state": from_state,
        "message": message[:2000],
        "progress": percent,
        "line": line,
        "script_name": job.script_name,
        "target_kind": job.target_kind,
        "target": job.target_description,
    }


def report_progress(
    session: AsyncSession, job: Job, before: tuple[str, float, int | None], *, actor: str
) -> None:
    """Write a ``progress`` event when the job's message, percent or line moved since
    ``before`` (``progress_of`` taken earlier in this transaction); the ``job``
    subscription streams these between transitions."""
    if progress_of(job) == before:
        return
    record_event(
        session,
        kind="progress",
        object=job,
        actor=actor,
        payload=_job_payload(job, state=job.state, from_state=job.state, message=job.message),
    )


def set_state(
    session: AsyncSession,
    job: Job,
    state: str,
    *,
    actor: str,
    action: str,
    message: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Move ``job`` to ``state`` and log it; finished states stop stepping."""
    before = job.state
    job.state = state
    on_commit(session, lambda: instruments().job_transition(before, state))
    if message is not None:
        job.message = message
    if state in FINISHED_STATES or state in (JobState.PAUSED, JobState.ERROR):
        job.step_at = None
    if state == JobState.DONE or (state == JobState.ABORTED and action == "cancelled"):
        job.finished_at = now or utcnow()
    write_log(
        session,
        job,
        actor=actor,
        action=action,
        from_state=before,
        to_state=state,
        message=job.message if message is None else message,
    )


async def cancel_open_tasks(session: AsyncSession, job: Job, *, now: dt.datetime) -> int:
    """Close the job's unanswered tasks: a late answer to them is refused as stale."""
    result = await session.execute(
        update(Task)
        .where(Task.job_id == job.id, Task.state == TaskState.OPEN)
        .values(state=TaskState.CANCELLED, finished_at=now, lease=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- creating -------------------------------------------------------------------------------


def _describe(target: Target) -> str:
    if isinstance(target, Foundation):
        return f"foundation {target.locator}"
    if isinstance(target, Structure):
        return f"structure {target.hostname}"
    return f"dependency {target.id}"


async def _supporting(session: AsyncSession, target: Target) -> Target | None:
    """What the target stands on: Structure -> its Foundation, Foundation -> its Dependency,
    Dependency -> its Structure or parent Dependency."""
    if isinstance(target, Structure):
        return await session.get_one(Foundation, target.foundation_id)
    if isinstance(target, Foundation):
        query = select(Dependency).where(Dependency.foundation_id == target.id)
        return (await session.execute(query)).scalar_one_or_none()
    if target.structure_id is not None:
        return await session.get_one(Structure, target.structure_id)
    assert target.dependency_id is not None
    return await session.get_one(Dependency, target.dependency_id)


def _built(target: Target) -> bool:
    return target.state == "built"


async def _script_for(session: AsyncSession, target: Target, script_name: str) -> str:
    """The script text: from the target's blueprint (or its ancestors); a dependency runs its
    own script names on its script structure and has nothing to run when they are unset."""
    if isinstance(target, Dependency):
        name = target.create_script_name if script_name == "create" else target.destroy_script_name
        if name is None:
            return f"# dependency {target.id}: no {script_name} script\n"
        holder_id = target.script_structure_id or target.structure_id
        if holder_id is None:
            raise InvalidInput(
                f"dependency {target.id} has a {script_name} script but no structure to run it on",
                field="dependency",
            )
        holder = await session.get_one(Structure, holder_id)
        blueprint = await session.get_one(BluePrint, holder.blueprint_id)
        role = name
    else:
        blueprint = await session.get_one(BluePrint, target.blueprint_id)
        role = script_name
    script = await find_script(session, blueprint, role)
    if script is None:
        raise NotFound(
            f"blueprint {blueprint.name!r} (and its parents) has no {role!r} script",
            field="name",
        )
    return script.source


async def create_job(
    session: AsyncSession,
    *,
    target: Target,
    script_name: str,
    creator: str,
    source: str | None = None,
) -> Job:
    """A new ``waiting`` job; the engine starts it once the start ordering allows.

    ``create`` needs the target not built, ``destroy`` and utility scripts need it built;
    what the target stands on may only have a job of the same kind (create/destroy).
    ``source``: a built-in utility script run instead of the blueprint's (a Complex
    member's capacity refresh)."""
    if not creator:
        raise InvalidInput("a job needs a creator", field="creator")
    if not isinstance(script_name, str) or not script_name or len(script_name) > 50:
        raise InvalidInput("the script name must be 1 to 50 characters", field="name")
    if isinstance(target, Dependency) and script_name not in ("create", "destroy"):
        raise InvalidInput("dependencies run only their create and destroy scripts", field="name")
    described = _describe(target)
    existing = await job_for_target(session, target)
    if existing is not None:
        raise Conflict(
            f"{described} already has job {existing.id} ({existing.script_name}, "
            f"{existing.state}); finish or cancel it first",
            field="id",
        )
    supporting = await _supporting(session, target)
    supporting_job = await job_for_target(session, supporting) if supporting is not None else None
    if script_name == "create":
        if _built(target):
            raise InvalidState(f"{described} is already built")
    elif script_name == "destroy":
        if not _built(target):
            raise InvalidState(f"{described} is not built")
        if supporting is not None and not _built(supporting):
            raise InvalidState(f"{_describe(supporting)} is not built")
    elif not _built(target):
        raise InvalidState(f"{described} must be built to run script {script_name!r}")
    if (
        script_name in ("create", "destroy")
        and supporting_job is not None
        and supporting_job.script_name != script_name
    ):  # what the target stands on may only have a job of the same kind
        raise Conflict(
            f"{_describe(supporting)} has a {supporting_job.script_name} job "  # type: ignore[arg-type]
            f"({supporting_job.id})",
            field="id",
        )
    if source is None:
        source = await _script_for(session, target, script_name)
    elif script_name in ("create", "destroy"):
        raise InvalidInput("a built-in script is a utility script", field="name")
    try:
        parse(source)
    except ParseError as error:
        raise InvalidInput(
            f"the {script_name} script of {described} does not parse: line {error.line}, "
            f"column {error.column}: {error.message}",
            field="name",
        ) from None
    site_id = await _site_id(session, target)
    job = Job(
        site_id=site_id,
        target_kind=type(target).__name__.lower()
        if not isinstance(target, Foundation)
        else "foundation",
        foundation_id=target.id if isinstance(target, Foundation) else None,
        structure_id=target.id if isinstance(target, Structure) else None,
        dependency_id=target.id if isinstance(target, Dependency) else None,
        target_description=described,
        script_name=script_name,
        script_source=source,
        runner_state="",
        state=JobState.WAITING,
        message="",
        status={},
        creator=creator,
        step_at=utcnow(),
    )
    session.add(job)
    await session.flush()
    write_log(
        session, job, actor=creator, action="created", from_state=None, to_state=JobState.WAITING
    )
    await announce(session, JOBS_CHANNEL)
    await session.flush()
    return job


async def _site_id(session: AsyncSession, target: Target) -> int:
    if isinstance(target, Foundation | Structure):
        return target.site_id
    structure_id = target.script_structure_id or target.structure_id
    node: Dependency = target
    while structure_id is None:
        assert node.dependency_id is not None
        node = await session.get_one(Dependency, node.dependency_id)
        structure_id = node.structure_id
    return (await session.get_one(Structure, structure_id)).site_id


# -- start ordering ---------------------------------------------------------------------------

# The advisory lock namespace of a site's start ordering ("jobs" as a number); the key inside
# it is the site id. PostgreSQL keeps two-number keys apart from one-number keys.
_START_ORDER_LOCK = int.from_bytes(b"jobs", "big")


async def lock_start_order(session: AsyncSession, site_id: int, *, finishing: bool) -> None:
    """Take the site's start-ordering turn for this transaction (PostgreSQL; SQLite's single
    writer already serialises). A job that finishes (``finishing``: exclusive) and a waiting
    job that checks whether it may start (shared: checks do not wait for each other) take
    turns, so a check never misses a finish that commits while it runs."""
    if session.get_bind().dialect.name == "postgresql":
        take = func.pg_advisory_xact_lock if finishing else func.pg_advisory_xact_lock_shared
        await session.execute(select(take(_START_ORDER_LOCK, site_id)))


async def wake_waiting(session: AsyncSession, site_id: int, *, now: dt.datetime) -> int:
    """Make the site's waiting jobs due, so they check again whether they may start; returns
    how many were made due (the caller wakes the foreman only if any were).

    Takes the site's start-ordering turn first. A waiting job locked by another transaction is
    skipped instead of waited for: the transaction holding it is either stepping it (and
    checks after this one commits, waiting for the same turn) or waking it too. Waiting for
    such rows could deadlock with another process waking the same site in another order."""
    await lock_start_order(session, site_id, finishing=True)
    # 'waiting' written into the statement, not bound: then the planner can use the partial
    # index of waiting jobs (ix_job_waiting) whatever plan it keeps for the statement.
    waiting = select(Job.id).where(Job.site_id == site_id, Job.state == literal_column("'waiting'"))
    if session.get_bind().dialect.name == "postgresql":
        waiting = waiting.order_by(Job.id).with_for_update(skip_locked=True)
    woken = await session.execute(
        update(Job)
        .where(Job.id.in_(waiting.scalar_subquery()))
        .values(step_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session="fetch")
    )
    return len(woken.all())


async def _has_job(session: AsyncSession, target: Target) -> bool:
    return await job_for_target(session, target) is not None


async def waiting_reason(session: AsyncSession, job: Job) -> str | None:
    """Why the job may not start yet, or None when it may (the reference's ``can_start``)."""
    target = await target_of(session, job)
    name = job.script_name
    if name not in ("create", "destroy"):
        return None
    if isinstance(target, Foundation):
        if name == "create":
            if target.state == "planned":
                return f"waiting for foundation {target.locator} to be located"
            dependency = await _supporting(session, target)
            if dependency is not None and not _built(dependency):
                return f"waiting for dependency {dependency.id} to be built"
            return None
        structure = (
            await session.execute(select(Structure).where(Structure.foundation_id == target.id))
        ).scalar_one_or_none()
        if structure is not None and (_built(structure) or await _has_job(session, structure)):
            return f"waiting for structure {structure.hostname} to be destroyed"
        return None
    if isinstance(target, Structure):
        if name == "create":
            foundation = await session.get_one(Foundation, target.foundation_id)
            if foundation.state != "built":
                return f"waiting for foundation {foundation.locator} to be built"
            return None
        dependants = (
            await session.execute(select(Dependency).where(Dependency.structure_id == target.id))
        ).scalars()
        for dependency in dependants:
            if _built(dependency) or await _has_job(session, dependency):
                return f"waiting for dependency {dependency.id} to be destroyed"
        return None
    if name == "create":
        supporting = await _supporting(session, target)
        if supporting is not None and not _built(supporting):
            return f"waiting for {_describe(supporting)} to be built"
        return None
    if target.foundation_id is not None:
        foundation = await session.get_one(Foundation, target.foundation_id)
        if foundation.state != "planned" or await _has_job(session, foundation):
            return f"waiting for foundation {foundation.locator} to be destroyed"
        return None
    children = await session.execute(
        select(func.count())
        .select_from(Dependency)
        .where(Dependency.dependency_id == target.id, Dependency.built_at.is_not(None))
    )
    if children.scalar_one():
        return f"waiting for the dependencies on dependency {target.id} to be destroyed"
    return None
