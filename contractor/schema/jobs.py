"""Jobs in GraphQL: starting create, destroy and utility jobs, the operator actions (pause,
resume, reset, rollback, cancel) and job queries with progress, variables and log.

Job mutations need the operator role; each runs in one transaction and answers the job or
an ``Error``. Variables and task parameters are shown with secrets masked.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated, Any, Self, TypedDict, Unpack

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.errors import InvalidInput
from contractor.events.broadcast import EventBroadcaster
from contractor.foreman.engine import restore_runner
from contractor.foreman.modules import JobContext
from contractor.models import JobState, TaskState
from contractor.schema.building import Foundation, Structure
from contractor.schema.common import Row, optional
from contractor.schema.complexes import Dependency
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import fetched, lookup, mutation, subscription
from contractor.schema.permissions import Operator, Reader
from contractor.services import building, inventory, job_actions, jobs
from contractor.services.events import EventFilter
from contractor.services.secrets import MASK, is_secret_name
from tscript import Runner

__all__ = ["JobMutation", "JobQuery", "JobSubscription", "JobUpdate", "mask_secrets"]


def mask_secrets(value: Any) -> Any:
    """``value`` with every map entry whose key names a secret (``services.secrets``, the
    same rule that finds a task's secrets) replaced by a mask."""
    if isinstance(value, dict):
        return {
            key: MASK if is_secret_name(key) else mask_secrets(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


# The models' enums are the GraphQL enums: one list of job states, one of task states.
strawberry.enum(JobState, name="JobState")
strawberry.enum(TaskState, name="TaskState")


@strawberry.type(description="One entry of a job's log: a transition or an operator action.")
class JobLogEntry(Row):
    at: dt.datetime
    actor: str
    action: str
    from_state: JobState | None
    to_state: JobState | None
    message: str

    @classmethod
    def of(cls, row: models.JobLog) -> Self:
        return cls.from_row(
            row,
            from_state=None if row.from_state is None else JobState(row.from_state),
            to_state=None if row.to_state is None else JobState(row.to_state),
        )


@strawberry.type(description="A remote step of a job (parameters shown with secrets masked).")
class JobTask(Row):
    id: int
    module: str
    function: str
    state: TaskState
    attempt: int
    lease_holder: str | None
    lease_expires_at: dt.datetime | None
    parameters: JSON
    created: dt.datetime

    @classmethod
    def of(cls, row: models.Task) -> Self:
        return cls.from_row(
            row, state=TaskState(row.state), parameters=JSON(mask_secrets(row.parameters))
        )


@strawberry.type(description="A script running against a foundation, structure or dependency.")
class Job(Row):
    id: int
    state: JobState
    script_name: str
    target_kind: str
    target: str = strawberry.field(description="What the job runs on, in words.")
    message: str
    line: int | None = strawberry.field(description="The script line it is at.")
    creator: str
    created: dt.datetime
    updated: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    row: strawberry.Private[models.Job]

    @classmethod
    def of(cls, row: models.Job) -> Self:
        return cls.from_row(row, state=JobState(row.state), target=row.target_description)

    @strawberry.field(description="Percent complete (0 to 100).")
    def progress(self) -> float:
        if self.row.state == "done":
            return 100.0
        return float((self.row.status or {}).get("percent", 0.0))

    @strawberry.field(description="Progress per enclosing block of the script.")
    def status(self) -> JSON:
        return JSON(self.row.status or {})

    @strawberry.field(description="The script's variables (secrets masked).")
    def variables(self) -> JSON:
        if not self.row.runner_state:
            return JSON({})
        saved = json.loads(self.row.runner_state)
        return JSON(mask_secrets(saved.get("variables") or {}))

    @strawberry.field(description="The script text the job runs.")
    def script(self) -> str:
        return self.row.script_source

    foundation = fetched(Foundation, models.Foundation.id, "foundation_id")
    structure = fetched(Structure, models.Structure.id, "structure_id")
    dependency = fetched(Dependency, models.Dependency.id, "dependency_id")

    @strawberry.field(description="Every transition and operator action, oldest first.")
    async def log(self, info: Info) -> list[JobLogEntry]:
        rows = await info.context.loaders.many(models.JobLog.job_id, models.JobLog.id).load(
            self.row.id
        )
        return [JobLogEntry.of(row) for row in rows]

    @strawberry.field(description="The job's remote steps, oldest first.")
    async def tasks(self, info: Info) -> list[JobTask]:
        rows = await info.context.loaders.many(models.Task.job_id, models.Task.id).load(self.row.id)
        return [JobTask.of(row) for row in rows]


JobResult = Annotated[Job | AnyError, strawberry.union("JobResult")]


@strawberry.type(
    description="A job as it moves: first how it is when the subscription starts, then one "
    "update per transition or progress step, the last one in a finished state."
)
class JobUpdate:
    job_id: int
    kind: str = strawberry.field(
        description="`current` for the first update; then what happened: `started`, "
        "`progress`, `paused`, `resumed`, `error`, `reset`, `rolled_back`, `aborted`, "
        "`cancelled`, `done`, ..."
    )
    cursor: str = strawberry.field(description="The event it comes from (as in `events`).")
    at: dt.datetime
    actor: str | None
    state: JobState
    progress: float = strawberry.field(description="Percent complete (0 to 100).")
    line: int | None = strawberry.field(description="The script line it is at.")
    message: str
    finished: bool = strawberry.field(
        description="True in a final state (done or aborted): nothing follows."
    )

    @classmethod
    def current(cls, row: models.Job, cursor: int) -> JobUpdate:
        message, percent, line = jobs.progress_of(row)
        return cls(
            job_id=row.id,
            kind="current",
            cursor=str(cursor),
            at=row.updated,
            actor=None,
            state=JobState(row.state),
            progress=percent,
            line=line,
            message=message,
            finished=row.state in jobs.FINISHED_STATES,
        )

    def after(self, event: models.Event) -> JobUpdate:
        """This update moved on by one of the job's events (fields it lacks stay)."""
        payload = mask_secrets(event.payload or {})
        state = payload.get("state") or self.state.value
        return JobUpdate(
            job_id=self.job_id,
            kind=event.kind,
            cursor=str(event.id),
            at=event.at,
            actor=event.actor,
            state=JobState(state),
            progress=float(payload.get("progress", self.progress)),
            line=payload.get("line", self.line),
            message=str(payload.get("message", self.message)),
            finished=state in jobs.FINISHED_STATES,
        )


@strawberry.type
class JobSubscription:
    @subscription(
        Reader,
        description="A job's state, progress, line and message: first as they are now, then "
        "at every change until the job is done or aborted (then the subscription completes).",
    )
    async def job(self, info: Info, id: int) -> AsyncGenerator[JobUpdate, None]:
        broadcaster: EventBroadcaster | None = info.context.events
        if broadcaster is None:
            raise InvalidInput("this server does not stream events", field="job")
        async with info.context.sessions() as session:
            row, cursor = await jobs.job_and_cursor(session, id)
        update = JobUpdate.current(row, cursor)
        yield update
        if update.finished:
            return
        wanted = EventFilter.build(object_types=["job"], object_id=id)
        async with aclosing(broadcaster.subscribe(wanted, cursor)) as stream:
            async for event in stream:
                update = update.after(event)
                yield update
                if update.finished:
                    return


MAX_JOBS = 500


@strawberry.type
class JobQuery:
    job = lookup(Job, jobs.get_job, id=int, description="A job by id.")

    @strawberry.field(
        description="Jobs, newest first: unfinished ones unless finished is true; optionally "
        "of one state, site, foundation (locator) or structure (id); at most `first` (1 to "
        "500).",
        extensions=[Reader()],
    )
    async def jobs(
        self,
        info: Info,
        state: JobState | None = None,
        site: str | None = None,
        finished: bool = False,
        foundation: str | None = None,
        structure: int | None = None,
        first: int = MAX_JOBS,
    ) -> list[Job]:
        if not 1 <= first <= MAX_JOBS:
            raise InvalidInput(f"first must be between 1 and {MAX_JOBS}", field="first")
        async with info.context.sessions() as session:
            rows = await inventory.list_jobs(
                session,
                state=None if state is None else state.value,
                site=site,
                finished=finished,
                foundation=await optional(building.get_foundation, session, foundation),
                structure=await optional(building.get_structure_by_id, session, structure),
                limit=first,
            )
        return [Job.of(row) for row in rows]


class FoundationOrStructure(TypedDict, total=False):
    """The arguments naming a utility job's target: a foundation (locator) or a structure
    (id)."""

    foundation: str | None
    structure: int | None


class JobTarget(FoundationOrStructure, total=False):
    """The arguments naming a job's target: exactly one of a foundation (locator), a
    structure (id) or a dependency (id)."""

    dependency: int | None


async def _target(session: AsyncSession, **target: Unpack[JobTarget]) -> jobs.Target:
    foundation, structure = target.get("foundation"), target.get("structure")
    dependency = target.get("dependency")
    given = [x for x in (foundation, structure, dependency) if x is not None]
    if len(given) != 1:
        raise InvalidInput(
            "name exactly one target: foundation (locator), structure (id) or dependency (id)",
            field="foundation",
        )
    if foundation is not None:
        return await building.get_foundation(session, foundation)
    if structure is not None:
        return await building.get_structure_by_id(session, structure)
    assert dependency is not None
    return await building.get_dependency(session, dependency)


async def _runner(session: AsyncSession, info: Info, job: models.Job) -> Runner | None:
    """The job's runner as saved (None before its first step)."""
    if not job.runner_state:
        return None
    context = await JobContext.load(session, job, settings=info.context.settings, for_step=False)
    return restore_runner(job, context)


_TARGET_HELP = "Exactly one of foundation (locator), structure (id) or dependency (id)."


def _start(script_name: str) -> Any:
    """The mutation starting the target's ``script_name`` job."""

    async def start(session: AsyncSession, actor: str, **target: Unpack[JobTarget]) -> JobResult:
        found = await _target(session, **target)
        job = await jobs.create_job(session, target=found, script_name=script_name, creator=actor)
        return Job.of(job)

    description = f"Start the target's {script_name} job. {_TARGET_HELP}"
    return mutation(Operator, description=description)(start)


@strawberry.type
class JobMutation:
    do_create = _start("create")
    do_destroy = _start("destroy")

    @mutation(
        Operator,
        description="Run a utility script of the target's blueprint (not create or destroy) "
        "on a built foundation or structure.",
    )
    async def do_job(
        session: AsyncSession, actor: str, name: str, **target: Unpack[FoundationOrStructure]
    ) -> JobResult:
        if name in ("create", "destroy"):
            raise InvalidInput(f"use do{name.capitalize()} for the {name} script", field="name")
        found = await _target(session, **target)
        return Job.of(await jobs.create_job(session, target=found, script_name=name, creator=actor))

    @mutation(Operator, description="Pause a queued job (a task already out still counts).")
    async def pause_job(session: AsyncSession, actor: str, id: int) -> JobResult:
        return Job.of(
            await job_actions.pause_job(session, await jobs.lock_job(session, id), actor=actor)
        )

    @mutation(Operator, description="Resume a paused job.")
    async def resume_job(session: AsyncSession, actor: str, id: int) -> JobResult:
        job = await jobs.lock_job(session, id)
        return Job.of(await job_actions.resume_job(session, job, actor=actor))

    @mutation(Operator, description="Try the failed step of a job in error again.")
    async def reset_job(session: AsyncSession, info: Info, actor: str, id: int) -> JobResult:
        job = await jobs.lock_job(session, id)
        runner = await _runner(session, info, job)
        return Job.of(await job_actions.reset_job(session, job, actor=actor, runner=runner))

    @mutation(
        Operator,
        description="Roll back the waiting function of a job in error, then try it again.",
    )
    async def rollback_job(session: AsyncSession, info: Info, actor: str, id: int) -> JobResult:
        job = await jobs.lock_job(session, id)
        runner = await _runner(session, info, job)
        return Job.of(await job_actions.rollback_job(session, job, actor=actor, runner=runner))

    @mutation(
        Operator, description="Abort an unfinished job for good; the target is left as it is."
    )
    async def cancel_job(session: AsyncSession, actor: str, id: int) -> JobResult:
        return Job.of(
            await job_actions.cancel_job(session, await jobs.lock_job(session, id), actor=actor)
        )
