"""Create or upgrade the database schema with Alembic (the only way the schema changes)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from contractor.settings import Settings

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
