"""The task API's hot statements, written once for both databases, plain SQL on PostgreSQL.

A task round trip (a poll, then a result that steps the job to its next task) is the call
subcontractors make hundreds of times a second. Through the ORM each of its statements costs
several times what the driver itself does, so on PostgreSQL these few statements go to the
session's own psycopg connection, inside the session's transaction:

* ``claim``: lease the free tasks (one ``UPDATE ... RETURNING``); a poll runs it alone on a
  pooled connection in autocommit (``leasing``), and ``release`` gives the leases back
  when the poller has gone meanwhile.
* ``lock_job_and_task``: read and lock a task and its job (job first, as everywhere).
* ``write_step``: the job's and the answered task's changes and the job's next task, in one
  statement, when a step changed nothing else (anything else is left to the ORM's flush).
* ``commit``: the statement the commit sends first (events, their order lock, NOTIFYs) and
  the COMMIT, pipelined: one round trip, and the events' order lock is held only while the
  database commits, not while this process gets round to sending the COMMIT.

Each statement is written once with SQLAlchemy (``Statement``) and runs on either database:
through the session on SQLite, and on PostgreSQL compiled once into psycopg's SQL. Its rows
are plain values: leased tasks are plain records (``LeasedTask``); the locked job and task
become the session's objects through the ORM's public API (``adopt``), so the services and
the engine that work on them are the same on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.types.json import Json
from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnDefault,
    ColumnElement,
    String,
    any_,
    bindparam,
    cast,
    inspect,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstanceState, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Select, Update
from sqlalchemy.types import TypeDecorator

from contractor.models import Base, Job, Site, Task, TaskState
from contractor.services import events

__all__ = [
    "Driver",
    "Held",
    "Lease",
    "LeasedTask",
    "On",
    "Statement",
    "adopt",
    "autocommit",
    "claim",
    "commit",
    "driver",
    "leasing",
    "lock_job_and_task",
    "release",
    "save_step",
    "site_exists",
    "transaction",
    "write_step",
]

Driver = AsyncConnection[Any]
On = AsyncSession | Driver  # where a statement runs: a session, or a connection of its own
Model = TypeVar("Model", bound=Base)

_JOB = Job.metadata.tables["job"]
_TASK = Task.metadata.tables["task"]
_SITE = Site.metadata.tables["site"]
_PSYCOPG = psycopg_dialect()  # type: ignore[no-untyped-call]
_Built = Select[*tuple[Any, ...]] | Update  # what a statement's builder gives
_DRIVER = "contractor.hotpath.driver"  # session.info: (the transaction, its connection)
_KEYS: dict[type[Any], tuple[str, ...]] = {
    Job: tuple(_JOB.columns.keys()),
    Task: tuple(_TASK.columns.keys()),
}


@dataclass(frozen=True)
class Lease:
    """A new lease: a random prefix (the task id follows it), its holder, and the times."""

    prefix: str
    holder: str
    now: dt.datetime
    expires: dt.datetime


@dataclass(frozen=True)
class LeasedTask:
    """A task just leased, as the claim returned it (the columns a poller is sent, and the
    lease's holder)."""

    id: int
    job_id: int
    module: str
    function: str
    parameters: Any
    cookie: str
    attempt: int
    lease: str
    lease_holder: str
    lease_expires_at: dt.datetime


@dataclass(frozen=True)
class Held:
    """A task and its job, locked by this transaction, and the name of the task's site."""

    job: Job
    task: Task
    site: str


# -- running a statement ---------------------------------------------------------------------


class Statement:
    """A statement written once with SQLAlchemy (``build(dialect name)``), run through the
    session on SQLite and, on PostgreSQL, as the SQL it compiles to for psycopg (compiled
    once), with its rows' values converted as the columns' types would."""

    def __init__(self, build: Callable[[str], _Built]) -> None:
        self._build = build
        self._built: dict[str, _Built] = {}
        self._psycopg: _Compiled | None = None

    def statement(self, dialect: str) -> _Built:
        if dialect not in self._built:
            self._built[dialect] = self._build(dialect)
        return self._built[dialect]

    def psycopg(self) -> _Compiled:
        if self._psycopg is None:
            statement = self.statement("postgresql")
            compiled = statement.compile(dialect=_PSYCOPG)
            columns = statement.exported_columns
            self._psycopg = _Compiled(
                compiled.string,
                dict(compiled.params),
                len(columns),
                tuple(
                    (n, column.type)
                    for n, column in enumerate(columns)
                    if isinstance(column.type, TypeDecorator)
                ),
            )
        return self._psycopg

    async def rows(self, on: On, **parameters: Any) -> list[Sequence[Any]]:
        if isinstance(on, AsyncSession):
            connection = await driver(on)
            if connection is None:
                statement = self.statement(on.get_bind().dialect.name)
                result = await on.execute(statement, parameters)
                return list(result.all()) if statement.exported_columns else []
            on = connection
        compiled = self.psycopg()
        cursor = await on.execute(compiled.sql, {**compiled.defaults, **parameters})
        if not compiled.width:  # no rows (an UPDATE without RETURNING)
            return []
        rows: list[Sequence[Any]] = []
        for row in await cursor.fetchall():
            values = list(row)
            for n, column_type in compiled.converted:
                if values[n] is not None:
                    values[n] = column_type.process_result_value(values[n], _PSYCOPG)
            rows.append(values)
        return rows


@dataclass(frozen=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]  # the values bound in the statement itself
    width: int  # result columns
    converted: tuple[tuple[int, TypeDecorator[Any]], ...]  # columns whose type converts


def _one_of(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """``column`` is one of the list bound as ``name``: ``= ANY(array)`` on PostgreSQL (one
    statement whatever the list's length), ``IN (...)`` elsewhere."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]


async def driver(session: AsyncSession) -> Driver | None:
    """The psycopg connection under the session's transaction (PostgreSQL only); looked up
    once per transaction (each look-up is two round trips through SQLAlchemy's greenlet
    bridge, and a result needs it three times)."""
    transaction = session.sync_session.get_transaction()
    known: tuple[object, Driver] | None = session.info.get(_DRIVER)
    if known is not None and transaction is not None and known[0] is transaction:
        return known[1]
    if session.get_bind().dialect.name != "postgresql":
        return None
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    psycopg_connection: Driver = raw.driver_connection  # type: ignore[assignment]
    session.info[_DRIVER] = (session.sync_session.get_transaction(), psycopg_connection)
    return psycopg_connection


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """A pooled psycopg connection in autocommit mode: each statement is its own
    transaction, with no BEGIN and COMMIT round trips (PostgreSQL only). It goes back to
    the pool as it came (on an engine of autocommit connections, as one)."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        psycopg_connection: Driver | None = raw.driver_connection
        assert psycopg_connection is not None
        if psycopg_connection.autocommit:
            yield psycopg_connection
            return
        try:
            await psycopg_connection.set_autocommit(True)
            yield psycopg_connection
        finally:
            if not psycopg_connection.closed:
                try:
                    await psycopg_connection.set_autocommit(False)
                except BaseException:  # a cancellation, say: never pooled in autocommit
                    await connection.invalidate()
                    raise


@asynccontextmanager
async def leasing(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[On]:
    """Where a poll leases tasks: on PostgreSQL a pooled connection in autocommit (the claim
    is one statement, committed at once), elsewhere a transaction of ``sessions``."""
    if engine.dialect.name == "postgresql":
        async with autocommit(engine) as connection:
            yield connection
    else:
        async with sessions() as session, session.begin():
            yield session


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session, one transaction (as ``contractor.db.transaction``), committed on
    PostgreSQL in one round trip together with its events (``commit``)."""
    async with sessions() as session, session.begin():
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


# -- leases ------------------------------------------------------------------------------------


def _claim_statement(dialect: str) -> Update:
    now = bindparam("now", type_=_TASK.c.available_at.type)
    free = (
        select(_TASK.c.id)
        .where(
            # the state written into the statement, not bound: then the planner can use the
            # partial index of open tasks (ix_task_open) whatever plan it keeps
            _TASK.c.state == literal_column(f"'{TaskState.OPEN}'"),
            _TASK.c.site_id
            == select(_SITE.c.id).where(_SITE.c.name == bindparam("site")).scalar_subquery(),
            _one_of(dialect, _TASK.c.module, "modules"),
            _TASK.c.available_at <= now,
            _TASK.c.lease_expires_at.is_(None) | (_TASK.c.lease_expires_at <= now),
        )
        .order_by(_TASK.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    # One statement: lock what is free (concurrent pollers skip each other's rows) and lease
    # it.
    return (
        update(_TASK)
        .where(_TASK.c.id.in_(free.scalar_subquery()))
        .values(
            attempt=_TASK.c.attempt + 1,
            lease=bindparam("prefix", type_=String)
            + literal_column("'-'")
            + cast(_TASK.c.id, String),
            lease_holder=bindparam("holder", type_=String),
            lease_expires_at=bindparam("expires", type_=_TASK.c.lease_expires_at.type),
        )
        .returning(*(_TASK.c[field.name] for field in fields(LeasedTask)))
    )


_CLAIM = Statement(_claim_statement)


async def claim(
    on: On, *, site: str, modules: Sequence[str], limit: int, lease: Lease
) -> list[LeasedTask]:
    """Lease up to ``limit`` free tasks (see ``tasks.claim_tasks``), in id order."""
    rows = await _CLAIM.rows(
        on,
        prefix=lease.prefix,
        holder=lease.holder,
        expires=lease.expires,
        site=site,
        modules=list(modules),
        now=lease.now,
        limit=limit,
    )
    return sorted((LeasedTask(*row) for row in rows), key=lambda task: task.id)


_RELEASE = Statement(
    lambda dialect: (
        update(_TASK)
        .where(_one_of(dialect, _TASK.c.id, "ids"), _one_of(dialect, _TASK.c.lease, "leases"))
        .values(attempt=_TASK.c.attempt - 1, lease=None, lease_holder=None, lease_expires_at=None)
    )
)


async def release(on: On, tasks: Sequence[LeasedTask]) -> None:
    """Give back leases just taken (their poller went away before it got them), as if they
    had never been taken: the attempt goes back too."""
    if tasks:
        await _RELEASE.rows(
            on, ids=[task.id for task in tasks], leases=[task.lease for task in tasks]
        )


_SITE_EXISTS = Statement(
    lambda _: select(literal_column("1")).where(_SITE.c.name == bindparam("name"))
)


async def site_exists(on: On, name: str) -> bool:
    return bool(await _SITE_EXISTS.rows(on, name=name))


# -- the result path ---------------------------------------------------------------------------

_LOCK = Statement(
    lambda _: (
        select(*_JOB.c, *_TASK.c, _SITE.c.name)
        .select_from(
            _JOB.join(_TASK, _TASK.c.job_id == _JOB.c.id).join(_SITE, _SITE.c.id == _TASK.c.site_id)
        )
        .where(_TASK.c.id == bindparam("task_id"))
        .with_for_update(of=(_JOB, _TASK))
    )
)


async def lock_job_and_task(session: AsyncSession, task_id: int) -> Held | None:
    """The task, its job and its site's name, locked (``FOR UPDATE OF job, task``), as the
    session's objects holding the rows just read; None when there is no such task."""
    rows = await _LOCK.rows(session, task_id=task_id)
    if not rows:
        return None
    (row,) = rows
    width = len(_JOB.c)
    job = adopt(session, Job, dict(zip(_KEYS[Job], row[:width], strict=True)))
    task = adopt(session, Task, dict(zip(_KEYS[Task], row[width:-1], strict=True)))
    return Held(job, task, row[-1])


def adopt(session: AsyncSession, model: type[Model], values: dict[str, Any]) -> Model:
    """The session's object for a row just read (``values`` by attribute), holding its
    values and no pending changes, as a query with ``populate_existing`` leaves it: the
    object the session has, or a new one made detached as if loaded
    (``make_transient_to_detached``) and added."""
    existing: Model | None = None
    if session.identity_map:  # a fresh session (the task API's) holds nothing yet
        key = inspect(model).identity_key_from_primary_key((values["id"],))
        found = session.identity_map.get(key)
        existing = found if isinstance(found, model) else None
    if existing is None:
        obj = model(**values)
        make_transient_to_detached(obj)
        session.add(obj)
        return obj
    for name, value in values.items():
        set_committed_value(existing, name, value)
    return existing


def _default(default: Any) -> Any:
    """The value a column's Python-side default (or onupdate) gives."""
    assert isinstance(default, ColumnDefault)
    return default.arg(None) if default.is_callable else default.arg


def _changes(obj: Job | Task) -> dict[str, Any]:
    """The columns assigned since the row was read, and those the model sets on every update
    (the job's ``updated``: set on the object too, as a flush does). A column assigned its
    old value again is written again, which changes nothing."""
    state: InstanceState[Any] = inspect(obj)
    unmodified = state.unmodified
    changes: dict[str, Any] = {}
    for column in obj.__table__.columns:
        if column.key not in unmodified:
            changes[column.key] = state.dict[column.key]
        elif column.onupdate is not None:
            changes[column.key] = _default(column.onupdate)
            setattr(obj, column.key, changes[column.key])
    return changes


def _inserted(obj: Task) -> dict[str, Any]:
    """A new row's values, as a flush inserts them: what the object holds, else the column's
    Python-side default; the id comes from the database."""
    state: InstanceState[Any] = inspect(obj)
    values = {}
    for column in _TASK.columns:
        value = state.dict.get(column.key)
        if value is None and column.default is not None:
            value = _default(column.default)
        if value is not None:
            values[column.key] = value
    return values


def _as_loaded(session: AsyncSession, obj: Job | Task) -> None:
    """The object as a flush leaves it: in the session, nothing pending (its history is
    dropped, as when it was read: ``make_transient_to_detached``)."""
    make_transient(obj)
    make_transient_to_detached(obj)
    session.add(obj)


# Columns psycopg is given as JSON.
_JSON_COLUMNS = {
    table.name: frozenset(column.key for column in table.columns if isinstance(column.type, JSON))
    for table in (_JOB, _TASK)
}


def _adapt(table: str, key: str, value: Any) -> Any:
    return Json(value) if key in _JSON_COLUMNS[table] else value


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
    parts: list[str] = []
    parameters: dict[str, Any] = {}
    for n, obj in enumerate(dirty):
        table = obj.__table__
        assignments = []
        for key, value in _changes(obj).items():
            parameters[f"w{n}_{key}"] = _adapt(table.name, key, value)
            assignments.append(f"{key} = %(w{n}_{key})s")
        parameters[f"w{n}_id"] = obj.id
        parts.append(
            f"w{n} AS (UPDATE {table.name} SET {', '.join(assignments)} WHERE id = %(w{n}_id)s)"
        )
    if new is not None:
        values = _inserted(new)
        parameters.update({f"n_{key}": _adapt("task", key, v) for key, v in values.items()})
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
        _as_loaded(session, obj)
    if new is not None:
        session.expunge(new)
    return True
