"""The application's state: what ``create_app`` builds once, typed, for the routes.

``contractor.app.build_state(settings)`` makes it (no I/O); ``create_app`` puts it on the app
(``set_app_state``) and runs its foreman and event loops in the lifespan. Every route reads it
through ``app_state(request.app)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from contractor.events.broadcast import EventBroadcaster
from contractor.foreman.engine import Foreman
from contractor.foreman.hub import Hub
from contractor.services.config import ConfigCache
from contractor.services.tasks import TokenCache
from contractor.settings import Settings

__all__ = ["AppState", "app_state", "set_app_state"]


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    # Readers; writers begin with the write lock held on SQLite (``contractor.db``).
    sessions: async_sessionmaker[AsyncSession]
    writer_sessions: async_sessionmaker[AsyncSession]
    config_cache: ConfigCache  # composed configs, checked against the database
    hub: Hub  # wakes pollers and the foreman when a transaction announces work
    foreman: Foreman
    events: EventBroadcaster
    subcontractor_tokens: TokenCache  # checked subcontractor tokens, for a few seconds


def set_app_state(app: Starlette, state: AppState) -> None:
    app.state.contractor = state


def app_state(app: Starlette) -> AppState:
    state = app.state.contractor
    assert isinstance(state, AppState)
    return state
