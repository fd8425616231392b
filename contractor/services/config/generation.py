"""The config generation: a counter that every change to a configuration source bumps.

A ``ConfigCache`` entry is valid for one generation. ``config_sources_changed`` marks the
session; the bump itself (an ``UPDATE`` of the single ``config_generation`` row) happens just
before the transaction commits, by a session hook that ``contractor.db`` installs on every
session factory (``install_generation_bump``), so the row lock is held only for the commit.
The bump also announces ``CONFIG_CHANNEL`` (on PostgreSQL its NOTIFY rides on the same
statement), which wakes whoever waits for configurations to change: the boot data long-polls.
"""

from __future__ import annotations

from typing import Final, TypeVar

from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from contractor.models import ConfigGeneration
from contractor.services.events.outbox import ANNOUNCE_KEY

RowT = TypeVar("RowT")

__all__ = [
    "CONFIG_CHANNEL",
    "config_sources_changed",
    "current_generation",
    "has_pending_changes",
    "install_generation_bump",
]

_GENERATION_ROW: Final = 1
_CHANGED: Final = "contractor.config.changed"
CONFIG_CHANNEL: Final = "contractor_config"


def config_sources_changed(session: AsyncSession) -> None:
    """Record that this transaction changes something configurations are built from.

    Services call it whenever they change a Site, BluePrint, Foundation, Structure, interface,
    address or anything else a layer reads. The config generation is bumped just before the
    transaction commits (so its row lock is held only for the commit), and until then this
    session never reads or fills a shared ``ConfigCache``.
    """
    session.sync_session.info[_CHANGED] = True


async def config_changed(session: AsyncSession, row: RowT) -> RowT:
    """Flush a change to something configurations are built from (see
    ``config_sources_changed``) and hand back the changed ``row``."""
    config_sources_changed(session)
    await session.flush()
    return row


def install_generation_bump(session_class: type[Session]) -> None:
    """Bump the config generation at the commit of every session of ``session_class`` that
    ``config_sources_changed`` marked (``contractor.db`` calls this for each session factory
    it builds, each with a class of its own: install it once per class)."""
    event.listen(session_class, "before_commit", _bump_before_commit)


def _bump_before_commit(session: Session) -> None:
    if session.in_nested_transaction() or not session.info.get(_CHANGED):
        return  # a savepoint: the outermost commit bumps
    bump = (
        update(ConfigGeneration)
        .where(ConfigGeneration.id == _GENERATION_ROW)
        .values(value=ConfigGeneration.value + 1)
    )
    connection = session.connection()
    if connection.dialect.name == "postgresql":  # the NOTIFY in the same round trip
        bump = bump.returning(func.pg_notify(CONFIG_CHANNEL, ""))
    connection.execute(bump)
    # this process's waiters: fired by the hub at the commit (``contractor.foreman.hub``)
    connection.info.setdefault(ANNOUNCE_KEY, set()).add(CONFIG_CHANNEL)
    session.info[_CHANGED] = False


def has_pending_changes(session: AsyncSession) -> bool:
    return bool(session.sync_session.info.get(_CHANGED))


async def current_generation(session: AsyncSession) -> int:
    """The committed config generation as this transaction sees it; -1 when the counter row
    is missing (a database not built by the migrations), which disables caching: without
    the row no change could ever be noticed."""
    query = select(ConfigGeneration.value).where(ConfigGeneration.id == _GENERATION_ROW)
    value = (await session.execute(query)).scalar_one_or_none()
    return -1 if value is None else int(value)
