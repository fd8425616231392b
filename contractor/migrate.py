"""Create or upgrade the database schema with Alembic (the only way the schema changes),
and make sure a database is ready before a command works on it (``prepare``)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from contractor.db import create_engine
from contractor.errors import DatabaseNotReady
from contractor.settings import Settings

__all__ = [
    "alembic_config",
    "check",
    "driver_message",
    "prepare",
    "remove_sqlite_database",
    "shown_url",
    "sqlite_file",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    config.attributes["url"] = settings.database_url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision`` (SQLite: the file is created when missing)."""
    _off_loop(lambda: command.upgrade(alembic_config(settings), revision))


def check(settings: Settings) -> None:
    """Raise if the models and the migrated database differ (``alembic check``)."""
    _off_loop(lambda: command.check(alembic_config(settings)))


def shown_url(settings: Settings) -> str:
    """The database URL as messages show it: the password hidden."""
    try:
        return make_url(settings.database_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError) as error:  # its text names the bad part, not the URL
        raise DatabaseNotReady(f"the database URL is not valid: {error}") from None


def sqlite_file(settings: Settings) -> Path | None:
    """The file of an SQLite database (None for PostgreSQL and in-memory SQLite)."""
    if not settings.is_sqlite:
        return None
    database = make_url(settings.database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


async def prepare(settings: Settings, *, upgrade_schema: bool) -> bool:
    """Make sure the database is at the latest schema before a command works on it, or raise
    ``DatabaseNotReady`` (one line naming the database and what to do). With
    ``upgrade_schema`` (`contractor db upgrade`, and every command where `contractor serve`
    migrates: ``Settings.migrate_on_start``, by default the SQLite file) a missing SQLite
    file is created and a database behind is migrated; without, either is refused naming
    `contractor db upgrade`. Returns whether this created the SQLite file; a file it
    created is removed again when the migration fails, so nothing empty is left behind."""
    shown = shown_url(settings)
    path = sqlite_file(settings)
    creating = False
    if path is not None:
        if not path.parent.is_dir():
            raise DatabaseNotReady(
                f"cannot open database {shown}: directory {path.parent} does not exist"
            )
        if path.is_dir():
            raise DatabaseNotReady(f"cannot open database {shown}: {path} is a directory")
        creating = not path.exists()
        if creating and not upgrade_schema:
            raise DatabaseNotReady(
                f"no database at {path.absolute()}: run `contractor db upgrade` to create it"
            )
    script = ScriptDirectory.from_config(alembic_config(settings))
    if not creating:
        current = await _current_revisions(settings, shown)
        heads = set(script.get_heads())
        if current == heads:
            return False
        unknown = sorted(revision for revision in current if not _known(script, revision))
        if unknown:
            raise DatabaseNotReady(
                f"the database {shown} is at revision {', '.join(unknown)}, which this "
                "Contractor does not know (was it made by a newer one?)"
            )
        if not upgrade_schema:
            at = f"at revision {', '.join(sorted(current))}" if current else "empty"
            raise DatabaseNotReady(
                f"the database {shown} is {at}, not at the latest schema "
                f"({', '.join(sorted(heads))}): run `contractor db upgrade`"
            )
    try:
        upgrade(settings)
    except BaseException:
        if creating and path is not None:
            remove_sqlite_database(path)
        raise
    return creating


def remove_sqlite_database(path: Path) -> None:
    """Remove an SQLite database file with its write-ahead log and shared memory."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


async def _current_revisions(settings: Settings, shown: str) -> set[str]:
    """The revisions the database is at (empty for a database without our schema)."""
    verb = "open" if settings.is_sqlite else "reach"
    engine = create_engine(settings)
    try:
        try:
            connection = await engine.connect()
        except (DBAPIError, OSError) as error:
            message = f"cannot {verb} database {shown}: {driver_message(error)}"
            raise DatabaseNotReady(message) from error
        try:
            return await connection.run_sync(_heads)
        except DBAPIError as error:
            raise DatabaseNotReady(
                f"cannot read the schema revision of database {shown}: {driver_message(error)}"
            ) from error
        finally:
            await connection.close()
    finally:
        await engine.dispose()


def _heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def driver_message(error: BaseException) -> str:
    """The driver's own words for ``error``, in one line (libpq's "connection to server at
    ... failed: " prefix left out: the message names the database already)."""
    text = str(getattr(error, "orig", None) or error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = line.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return line[:1].lower() + line[1:] if line[1:2].islower() else line


def _off_loop(work: object) -> None:
    """Alembic's env runs its own event loop; inside a running loop, use a thread."""
    assert callable(work)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        work()
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
