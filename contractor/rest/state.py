"""The application's state: what ``create_app`` builds once, typed, for the routes.

``contractor.app.build_state(settings)`` makes it (no I/O); ``create_app`` puts it on the app
(``set_app_state``) and runs its foreman and event loops in the lifespan. Every route reads it
through ``app_state(request.app)``.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from contractor.events.broadcast import EventBroadcaster
from contractor.foreman.engine import Foreman
from contractor.foreman.hub import Hub
from contractor.services.config import ConfigCache
from contractor.services.tasks import TokenCache
from contractor.settings import Settings

__all__ = ["WINDOW_SECONDS", "AppState", "ReportWindow", "app_state", "set_app_state"]

WINDOW_SECONDS = 60.0


class ReportWindow:
    """Discovery reports per site in the last ``WINDOW_SECONDS``, in this process."""

    def __init__(self) -> None:
        self.seen: dict[str, collections.deque[float]] = {}

    def take(self, site: str, limit: int) -> int:
        """0 when the report may go on (counted), else the seconds until one may."""
        now = time.monotonic()
        times = self.seen.setdefault(site, collections.deque())
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        if len(times) >= limit:
            return max(1, math.ceil(times[0] + WINDOW_SECONDS - now))
        times.append(now)
        return 0


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
    # discovery reports per site in the last minute (the per-site throttle)
    discovery_reports: ReportWindow = field(default_factory=ReportWindow)


def set_app_state(app: Starlette, state: AppState) -> None:
    app.state.contractor = state


def app_state(app: Starlette) -> AppState:
    state = app.state.contractor
    assert isinstance(state, AppState)
    return state
