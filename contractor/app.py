"""The ASGI application: ``uvicorn --factory contractor.app:create_app``.

``create_app`` builds the engine (no I/O yet) and the routes; the lifespan migrates the
embedded database when asked and disposes of the engine. Routes read ``engine``,
``sessions`` and ``settings`` from ``request.app.state``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.events.broadcast import EventBroadcaster
from contractor.events.webhooks import events_running
from contractor.foreman.engine import Foreman, foreman_running
from contractor.foreman.hub import Hub
from contractor.plugins import foundation_types
from contractor.rest.config import config_routes
from contractor.rest.dns import dns_routes
from contractor.rest.subcontractor import subcontractor_routes
from contractor.runtime import tune_gc
from contractor.schema import build_schema
from contractor.schema.view import ContractorGraphQL
from contractor.services.config import ConfigCache
from contractor.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    foundation_types()  # map every installed plugin's tables before the first query
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    writer_sessions = create_session_factory(engine, writes=True)
    config_cache = ConfigCache()  # composed configs, checked against the database
    hub = Hub()  # wakes pollers and the foreman when a transaction announces work
    hub.attach(engine)
    foreman = Foreman(
        writer_sessions, settings=settings, hub=hub, cache=config_cache, readers=sessions
    )
    broadcaster = EventBroadcaster(
        database_url=settings.database_url, poll_seconds=settings.events_poll_seconds
    )
    broadcaster.attach(engine)
    graphql = ContractorGraphQL(
        build_schema(settings),
        settings=settings,
        sessions=sessions,
        writer_sessions=writer_sessions,
        config_cache=config_cache,
        events=broadcaster,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(migrate.upgrade, settings)
        if settings.gc_tuning:
            tune_gc()
        loop = asyncio.get_running_loop()
        # Called by `contractor serve` from its signal handler when shutdown begins.
        app.state.begin_shutdown = lambda: loop.call_soon_threadsafe(hub.drain)
        try:
            async with (
                foreman_running(settings, hub, foreman),
                events_running(settings, broadcaster),
            ):
                yield
        finally:
            await engine.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *dns_routes(),
            *config_routes(),
            *subcontractor_routes(),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.writer_sessions = writer_sessions
    app.state.config_cache = config_cache
    app.state.hub = hub
    app.state.foreman = foreman
    app.state.events = broadcaster
    return app


async def healthz(request: Request) -> JSONResponse:
    """Liveness and database reachability, for load balancers and operators."""
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not healthy"; say which
        log.warning("health check failed: %s", error)
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
