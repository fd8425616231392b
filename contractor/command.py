"""What every ``contractor`` command shares: each failure reported in one line (its traceback
only with ``contractor --debug``), and the database made ready the way ``contractor serve``
makes it.

A command reads its settings with ``settings_of(ctx)``, works on the database with
``run(settings, work)`` (which prepares it first) and lets errors rise; to refuse, it raises
``Failure`` (what it was asked cannot be done) or ``EnvironmentFailure`` (what it needs
around it is wrong). ``ContractorGroup`` (the ``contractor`` group) reports them::

    raised                                      exit  shown
    click.UsageError (bad flags, arguments)     2     click's usage message
    EnvironmentFailure, DatabaseNotReady        2     Error: <one line naming it>
      (unreachable, missing, behind), OSError,
      other database errors
    Failure, ContractorError, ClickException    1     Error: <its message>
    anything else (a bug)                       1     Error: unexpected <type>: <message>
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.errors import ContractorError, DatabaseNotReady
from contractor.plugins import foundation_types
from contractor.settings import Settings

__all__ = [
    "DEBUG",
    "ContractorGroup",
    "EnvironmentFailure",
    "Failure",
    "directory_for_output",
    "file_for_input",
    "file_for_output",
    "keep_created_database",
    "prepare",
    "run",
    "settings_of",
]

T = TypeVar("T")

DEBUG = "contractor.debug"
"""The ``click.Context.meta`` key of ``contractor --debug``."""
_CREATED = "contractor.created_database"


class Failure(click.ClickException):
    """A failure reported as one line: what the command was asked to do cannot be done."""

    exit_code = 1


class EnvironmentFailure(Failure):
    """A failure reported as one line: what the command needs around it (the database, a
    file, a port) is not as it must be."""

    exit_code = 2


class ContractorGroup(click.Group):
    """The ``contractor`` group: what its commands raise is reported as the module's table
    says, with the traceback first under ``--debug``; and when a command fails, an SQLite
    file that ``run`` created for it is removed again (a failed command leaves nothing)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._reporting(ctx)
        except click.exceptions.Exit as done:
            if done.exit_code:
                _remove_created(ctx)
            raise
        except BaseException:
            _remove_created(ctx)
            raise

    def _reporting(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
            raise  # click reports these itself (EOFError at a prompt: "Aborted!")
        except Exception as error:
            if ctx.meta.get(DEBUG):
                traceback.print_exc(file=sys.stderr)
            raise failure(error) from None


def keep_created_database(ctx: click.Context) -> None:
    """The command committed work and still exits non-zero (a load of several files where
    some failed): an SQLite file ``run`` created for it stays."""
    ctx.meta.pop(_CREATED, None)


def _remove_created(ctx: click.Context) -> None:
    created = ctx.meta.pop(_CREATED, None)
    if created is not None:
        migrate.remove_sqlite_database(created)


def failure(error: Exception) -> Failure:
    """``error`` as the one line and exit status ``contractor`` reports it with."""
    if isinstance(error, DatabaseNotReady):
        return EnvironmentFailure(str(error))
    if isinstance(error, ContractorError):
        return Failure(str(error))
    if isinstance(error, OSError):
        return EnvironmentFailure(_os_error(error))
    if isinstance(error, DBAPIError):
        return EnvironmentFailure(f"database error: {migrate.driver_message(error)}")
    lines = str(error).strip().splitlines()
    return Failure(
        f"unexpected {type(error).__name__}: {lines[0] if lines else '(no message)'} "
        "(`contractor --debug ...` shows the traceback)"
    )


def _os_error(error: OSError) -> str:
    what = error.strerror or str(error)
    if error.filename is None:
        return what
    if error.filename2 is not None:
        return f"{error.filename} -> {error.filename2}: {what}"
    return f"{error.filename}: {what}"


def directory_for_output(path: Path, what: str) -> None:
    """Create directory ``path`` (for ``what``), before a command does any work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EnvironmentFailure(f"cannot create {what} {path}: {error.strerror}") from None


def file_for_output(path: Path, what: str) -> None:
    """Check that file ``path`` (for ``what``) can be written, before a command does any
    work (so that a failed write does not come after the work)."""
    if not path.parent.is_dir():
        why = f"directory {path.parent} does not exist"
    elif path.is_dir():
        why = "it is a directory"
    else:
        return
    raise EnvironmentFailure(f"cannot write {what} {path}: {why}")


def file_for_input(path: Path, what: str) -> None:
    """Check that file ``path`` (for ``what``) can be read."""
    try:
        path.open("rb").close()
    except OSError as error:
        raise EnvironmentFailure(f"cannot read {what} {path}: {error.strerror}") from None


def settings_of(ctx: click.Context) -> Settings:
    """The settings the ``contractor`` group built for this invocation."""
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


def prepare(settings: Settings, *, upgrade_schema: bool) -> bool:
    """``migrate.prepare`` from a command (outside an event loop)."""
    return asyncio.run(migrate.prepare(settings, upgrade_schema=upgrade_schema))


def run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction on a fresh engine, once the database is
    ready as `contractor serve` makes it (see ``run_with_sessions``)."""

    async def in_transaction(sessions: async_sessionmaker[AsyncSession]) -> T:
        async with transaction(sessions) as session:
            session.info["actor"] = f"cli:{getpass.getuser()}"  # for its events
            return await work(session)

    return run_with_sessions(settings, in_transaction)


def run_with_sessions(
    settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run ``work(sessions)`` (writer sessions) on a fresh engine, once the database is
    ready as `contractor serve` makes it (``migrate.prepare``: the SQLite default created
    or migrated; otherwise refused in one line naming `contractor db upgrade`). An SQLite
    file created here is removed again if the command fails (``ContractorGroup``)."""

    async def main() -> T:
        foundation_types()
        engine = create_engine(settings)
        try:
            return await work(create_session_factory(engine, writes=True))
        finally:
            await engine.dispose()

    if prepare(settings, upgrade_schema=settings.migrate_on_start):
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[_CREATED] = migrate.sqlite_file(settings)
    return asyncio.run(main())
