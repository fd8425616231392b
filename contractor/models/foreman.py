"""Jobs, their log, remote tasks and subcontractor tokens (the foreman's tables).

A job runs one script against one target (a Foundation, a Structure or a Dependency); at most
one unfinished job per target. ``step_at`` drives the engine: a job whose ``step_at`` has come
is stepped by whichever foreman claims it first (``FOR UPDATE SKIP LOCKED``); ``NULL`` means
nothing to do until an event (a result, an operator action) sets it again.

A task is one remote step of a job, leased to one subcontractor at a time; see
``contractor.services.tasks`` for the lease rules and ``docs/foreman.md`` for the protocol.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import (
    Base,
    Timestamped,
    UTCDateTime,
    one_of,
    partial_index,
    utcnow,
)


class JobState(StrEnum):
    """A job's state (the state machine is drawn in ``contractor.services.jobs``)."""

    WAITING = "waiting"
    QUEUED = "queued"
    PAUSED = "paused"
    ERROR = "error"
    ABORTED = "aborted"
    DONE = "done"

    @property
    def finished(self) -> bool:
        return self in FINISHED_JOB_STATES


class TaskState(StrEnum):
    """A task's state: open until answered, failed, or cancelled with its job."""

    OPEN = "open"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_STATES = tuple(JobState)
FINISHED_JOB_STATES = frozenset({JobState.DONE, JobState.ABORTED})
# Jobs the engine steps when their ``step_at`` is due.
STEPPABLE_JOB_STATES = (JobState.WAITING, JobState.QUEUED)
TASK_STATES = tuple(TaskState)
TARGET_KINDS = ("foundation", "structure", "dependency")


def _unfinished_unique(column: str) -> Index:
    return partial_index(
        f"uq_job_unfinished_{column}", column, where="finished_at IS NULL", unique=True
    )


class Job(Timestamped, Base):
    """One script running against one target; the runner state is TScript's JSON."""

    __tablename__ = "job"
    __table_args__ = (
        one_of("state", JOB_STATES, name="state_known"),
        CheckConstraint(
            "(CASE WHEN foundation_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN structure_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN dependency_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_target",
        ),
        _unfinished_unique("foundation_id"),
        _unfinished_unique("structure_id"),
        _unfinished_unique("dependency_id"),
        Index("ix_job_step_at", "step_at"),
        # A finishing job wakes its site's waiting jobs: found without the site's history.
        partial_index("ix_job_waiting", "site_id", "id", where="state = 'waiting'"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"), index=True)
    target_kind: Mapped[str] = mapped_column(String(10))
    foundation_id: Mapped[int | None] = mapped_column(
        ForeignKey("foundation.id", ondelete="CASCADE")
    )
    structure_id: Mapped[int | None] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    dependency_id: Mapped[int | None] = mapped_column(
        ForeignKey("dependency.id", ondelete="CASCADE")
    )
    target_description: Mapped[str] = mapped_column(String(200))
    script_name: Mapped[str] = mapped_column(String(50))
    script_source: Mapped[str] = mapped_column(Text)
    runner_state: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default=JobState.WAITING)
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    line: Mapped[int | None] = mapped_column(Integer)
    # When the engine should step the job next (NULL: only when something happens).
    step_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Set by a booted machine through the signalling endpoint; read by ``signaling``.
    signalled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The one place the PXE target a job waits to hear from is kept: set by
    # ``signaling.reset( pxe_name=... )``, read through ``services.jobs.awaited_signal``; a
    # signal is accepted only with a cookie naming it (``<job id>(<pxe name>)``). NULL: any
    # signal for the target is taken.
    signal_pxe_name: Mapped[str | None] = mapped_column(String(50))
    creator: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.script_name} {self.target_description} {self.state}>"


class JobLog(Base):
    """An audit row for every job transition and operator action; kept when targets go."""

    __tablename__ = "job_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, index=True)  # no foreign key: outlives the job
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[str | None] = mapped_column(String(10))
    to_state: Mapped[str | None] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text, default="")


class Task(Base):
    """A remote step of a job, handed to one subcontractor at a time under a lease."""

    __tablename__ = "task"
    __table_args__ = (
        one_of("state", TASK_STATES, name="state_known"),
        partial_index("ix_task_open", "site_id", "module", "id", where="state = 'open'"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    module: Mapped[str] = mapped_column(String(40))
    function: Mapped[str] = mapped_column(String(60))
    # May hold secrets (BMC passwords): sent to the subcontractor, never logged or shown.
    parameters: Mapped[Any] = mapped_column(JSON)
    cookie: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(10), default=TaskState.OPEN)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease: Mapped[str | None] = mapped_column(String(40))
    lease_holder: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Not handed out before this (a retryable error backs off).
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class SubcontractorToken(Timestamped, Base):
    """A subcontractor identity's bearer token ``sct_<key>.<secret>``, scoped to sites and
    modules. The secret is 256 random bits, so a SHA-256 of it is enough to store."""

    __tablename__ = "subcontractor_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    modules: Mapped[list[str]] = mapped_column(JSON, default=list)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
