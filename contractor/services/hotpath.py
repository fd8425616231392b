"""Plain SQL for the task API's hot statements on PostgreSQL.

A task round trip (a poll, then a result that steps the job to its next task) is the call
subcontractors make hundreds of times a second. Through the ORM each of its statements costs
several times what the driver itself does, so on PostgreSQL these few statements go to the
session's own psycopg connection, inside the session's transaction:

* ``claim``: lease the free tasks (one ``UPDATE ... RETURNING``); a poll runs it alone on a
  pooled connection in autocommit (``autocommit``), and ``release`` gives the leases back
  when the poller has gone meanwhile.
* ``lock_job_and_task``: read and lock a task and its job (job first, as everywhere).
* ``write_step``: the job's and the answered task's changes and the job's next task, in one
  statement, when a step changed nothing else (anything else is left to the ORM's flush).
* ``commit``: the statement the commit sends first (events, their order lock, NOTIFYs) and
  the COMMIT, pipelined: one round trip, and the events' order lock is held only while the
  database commits, not while this process gets round to sending the COMMIT.

The rows come back as ORM objects, so the services around them are the same on both
databases; on SQLite (and whenever a row is already in the session) the ORM does the work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Json
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class

from contractor import db
from contractor.models import Job, Task, TaskState, utcnow
from contractor.services import events

__all__ = [
    "Driver",
    "Held",
    "Lease",
    "autocommit",
    "claim",
    "commit",
    "driver",
    "lock_job_and_task",
    "release",
    "save_step",
    "site_exists",
    "transaction",
    "write_step",
]

Driver = AsyncConnection[Any]


@dataclass(frozen=True)
class Lease:
    """A new lease: a random prefix (the task id follows it), its holder, and the times."""

    prefix: str
    holder: str
    now: dt.datetime
    expires: dt.datetime


@dataclass(frozen=True)
class Held:
    """A task and its job, locked by this transaction, and the name of the task's site."""

    job: Job
    task: Task
    site: str


_JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)
_TASK_COLUMNS = tuple(column.key for column in Task.__table__.columns)
_JSON_COLUMNS = frozenset({"status", "parameters"})
_COLUMN_KEYS = {Job: frozenset(_JOB_COLUMNS), Task: frozenset(_TASK_COLUMNS)}
_TIME_COLUMNS = frozenset(
    {
        "created",
        "updated",
        "step_at",
        "started_at",
        "finished_at",
        "lease_expires_at",
        "available_at",
    }
)


async def driver(session: AsyncSession) -> Driver | None:
    """The psycopg connection under the session's transaction (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    psycopg_connection: Driver = raw.driver_connection  # type: ignore[assignment]
    return psycopg_connection


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """A pooled psycopg connection in autocommit mode: each statement is its own
    transaction, with no BEGIN and COMMIT round trips (PostgreSQL only)."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        psycopg_connection: Driver | None = raw.driver_connection
        assert psycopg_connection is not None
        await psycopg_connection.set_autocommit(True)
        try:
            yield psycopg_connection
        finally:
            if not psycopg_connection.closed:
                await psycopg_connection.set_autocommit(False)


async def site_exists(connection: Driver, name: str) -> bool:
    cursor = await connection.execute("SELECT 1 FROM site WHERE name = %(name)s", {"name": name})
    return await cursor.fetchone() is not None


async def release(connection: Driver, tasks: Sequence[Task]) -> None:
    """Give back leases just taken (their poller went away before it got them), as if they
    had never been taken: the attempt goes back too."""
    await connection.execute(
        "UPDATE task SET attempt = attempt - 1, lease = NULL, lease_holder = NULL,"
        " lease_expires_at = NULL WHERE id = ANY(%(ids)s) AND lease = ANY(%(leases)s)",
        {"ids": [task.id for task in tasks], "leases": [task.lease for task in tasks]},
    )


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """``contractor.db.transaction``, committed on PostgreSQL in one round trip together with
    its events (``commit``)."""
    async with db.transaction(sessions) as session:
        yield session
        connection = await driver(session)
        if connection is not None:
            await commit(session, connection)


async def commit(session: AsyncSession, connection: Driver) -> None:
    """Commit the session's transaction now, in one round trip (see the module docstring).
    The session's own commit afterwards finds nothing left to send: it fires this process's
    wake-ups as always."""
    statement = await session.run_sync(events.commit_statement)
    async with connection.pipeline():
        if statement is not None:
            await connection.execute(*statement)
        await connection.execute("COMMIT")


def _value(key: str, value: Any) -> Any:
    if key in _TIME_COLUMNS and value is not None:
        return value.astimezone(dt.UTC)
    return value


def _columns(table: str, names: Sequence[str]) -> str:
    return ", ".join(f"{table}.{name}" for name in names)


def _row(model: type[Any], names: Sequence[str], values: Sequence[Any]) -> Any:
    """A new (transient) object of ``model`` holding a row's values, set as loading does:
    straight into its state, without an attribute event per column."""
    obj = manager_of_class(model).new_instance()
    obj.__dict__.update(
        (name, _value(name, value)) for name, value in zip(names, values, strict=True)
    )
    return obj


_CLAIM = f"""
UPDATE task
   SET attempt = attempt + 1,
       lease = %(prefix)s || '-' || id::text,
       lease_holder = %(holder)s,
       lease_expires_at = %(expires)s
 WHERE id IN (
       SELECT id FROM task
        WHERE state = 'open'
          AND site_id = (SELECT id FROM site WHERE name = %(site)s)
          AND module = ANY(%(modules)s)
          AND available_at <= %(now)s
          AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
        ORDER BY id
        LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED)
RETURNING {_columns("task", _TASK_COLUMNS)}
"""


async def claim(
    connection: Driver,
    *,
    site: str,
    modules: Sequence[str],
    limit: int,
    lease: Lease,
) -> list[Task]:
    """Lease up to ``limit`` free tasks (see ``tasks.claim_tasks``); the tasks come back as
    plain (transient) objects in id order."""
    cursor = await connection.execute(
        _CLAIM,
        {
            "prefix": lease.prefix,
            "holder": lease.holder,
            "expires": lease.expires,
            "site": site,
            "modules": list(modules),
            "now": lease.now,
            "limit": limit,
        },
    )
    rows = await cursor.fetchall()
    return sorted((_row(Task, _TASK_COLUMNS, row) for row in rows), key=lambda task: task.id)


_LOCK = f"""
SELECT {_columns("job", _JOB_COLUMNS)}, {_columns("task", _TASK_COLUMNS)}, site.name
  FROM job
  JOIN task ON task.job_id = job.id
  JOIN site ON site.id = task.site_id
 WHERE task.id = %(task_id)s
   FOR UPDATE OF job, task
"""


async def lock_job_and_task(session: AsyncSession, connection: Driver, task_id: int) -> Held | None:
    """The task, its job and its site's name, locked (``FOR UPDATE OF job, task``), as
    objects of the session. None when there is no such task or when the session holds
    either row already (the caller reads them through the ORM then: the locks are taken)."""
    cursor = await connection.execute(_LOCK, {"task_id": task_id})
    row = await cursor.fetchone()
    if row is None:
        return None
    width = len(_JOB_COLUMNS)
    job_values, task_values, site_name = row[:width], row[width:-1], row[-1]
    identities = session.identity_map
    job_key = inspect(Job).identity_key_from_primary_key((job_values[0],))
    task_key = inspect(Task).identity_key_from_primary_key((task_values[0],))
    if job_key in identities or task_key in identities:
        return None
    job = _row(Job, _JOB_COLUMNS, job_values)
    task = _row(Task, _TASK_COLUMNS, task_values)
    for obj in (job, task):
        make_transient_to_detached(obj)
        session.add(obj)
    return Held(job, task, site_name)


def _changes(obj: Any) -> dict[str, Any]:
    """The columns assigned since the row was read (``committed_state`` holds their earlier
    values: the same record the flush reads); one assigned its old value again is written
    again, which changes nothing."""
    state = inspect(obj)
    columns = _COLUMN_KEYS[type(obj)]
    return {key: state.dict[key] for key in state.committed_state if key in columns}


def _adapt(key: str, value: Any) -> Any:
    return Json(value) if key in _JSON_COLUMNS else value


# The columns of a new task, with the values the model's defaults would give.
_NEW_TASK = ("job_id", "site_id", "module", "function", "parameters", "cookie", "available_at")


async def save_step(session: AsyncSession) -> None:
    """Write what a step changed: in one statement on PostgreSQL when ``write_step`` can,
    else by the ORM's flush."""
    connection = await driver(session)
    if connection is None or not await write_step(session, connection):
        await session.flush()


async def write_step(session: AsyncSession, connection: Driver) -> bool:
    """Write what a step changed in one statement, when that is only columns of jobs and
    tasks already in the session and at most one new task; False (nothing written) for
    anything else, which the ORM's flush then writes."""
    if session.deleted or len(session.new) > 1:
        return False
    new = next(iter(session.new), None)
    if new is not None and not isinstance(new, Task):
        return False
    dirty = [obj for obj in session.dirty if session.is_modified(obj)]
    if any(not isinstance(obj, (Job, Task)) for obj in dirty):
        return False
    now = utcnow()
    parts: list[str] = []
    parameters: dict[str, Any] = {}
    for n, obj in enumerate(dirty):
        changes = _changes(obj)
        if isinstance(obj, Job):
            changes.setdefault("updated", now)  # the model's onupdate
        table = obj.__tablename__
        assignments = []
        for key, value in changes.items():
            parameters[f"w{n}_{key}"] = _adapt(key, value)
            assignments.append(f"{key} = %(w{n}_{key})s")
        parameters[f"w{n}_id"] = obj.id
        parts.append(
            f"w{n} AS (UPDATE {table} SET {', '.join(assignments)} WHERE id = %(w{n}_id)s)"
        )
    if new is not None:
        values = {key: getattr(new, key) for key in _NEW_TASK}
        values.update(state=TaskState.OPEN, attempt=0, created=now)
        parameters.update({f"n_{key}": _adapt(key, value) for key, value in values.items()})
        final = (
            f"INSERT INTO task ({', '.join(values)}) "
            f"VALUES ({', '.join(f'%(n_{key})s' for key in values)}) RETURNING id"
        )
    elif parts:
        final = "SELECT NULL"
    else:
        return True
    statement = f"WITH {', '.join(parts)} {final}" if parts else final
    await connection.execute(statement, parameters)
    for obj in dirty:
        # As a flush leaves them: nothing pending (the same private call the flush makes;
        # tests/services/test_hotpath.py checks that the session is clean afterwards).
        state = inspect(obj)
        state._commit_all(state.dict, session.sync_session.identity_map)
    if new is not None:
        session.expunge(new)
    return True
