"""The ASGI application: ``uvicorn --factory contractor.app:create_app``.

``create_app`` builds the application's state once (``build_state``: the engine, no I/O
yet, the session factories, the hub, the foreman, the event broadcaster) and the routes,
with one mapping of domain errors to answers for every REST route
(``contractor.rest.errors``); the lifespan migrates the embedded database when asked, runs
the foreman and the event loops, and disposes of the engine. Routes read the state through
``contractor.rest.state.app_state``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import anyio.to_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from contractor import logs, metrics, migrate
from contractor.db import create_engine, create_session_factory
from contractor.events.broadcast import EventBroadcaster
from contractor.events.webhooks import events_running
from contractor.foreman.engine import Foreman, foreman_running
from contractor.foreman.hub import Hub
from contractor.monitoring import HttpMetrics, Monitor, route_templates
from contractor.plugins import foundation_types
from contractor.requestid import RequestIdMiddleware
from contractor.rest.boot import boot_routes
from contractor.rest.config import config_error_answers, config_routes
from contractor.rest.discovery import discovery_routes
from contractor.rest.dns import dns_routes
from contractor.rest.errors import exception_handlers
from contractor.rest.leases import lease_routes
from contractor.rest.limits import BodyLimit, RouteLimit
from contractor.rest.state import AppState, app_state, set_app_state
from contractor.rest.subcontractor import PREFIX as TASK_API
from contractor.rest.subcontractor import subcontractor_routes
from contractor.runtime import tune_gc
from contractor.schema import build_schema
from contractor.schema.view import ContractorGraphQL
from contractor.services.config import ConfigCache
from contractor.services.tasks import TokenCache
from contractor.settings import Settings
from contractor.ui import console_routes

log = logging.getLogger(__name__)

# `contractor serve --workers N` hands its resolved settings to the worker processes here.
SETTINGS_ENV = "CONTRACTOR_SERVE_SETTINGS_JSON"


def build_state(settings: Settings) -> AppState:
    """Everything the app holds, built once (no I/O yet): see ``contractor.rest.state``."""
    foundation_types()  # map every installed plugin's tables before the first query
    engine = create_engine(settings)
    metrics.watch_pool(engine)
    sessions = create_session_factory(engine)
    writer_sessions = create_session_factory(engine, writes=True)
    config_cache = ConfigCache()
    hub = Hub()
    hub.attach(engine)
    broadcaster = EventBroadcaster(
        database_url=settings.database_url, poll_seconds=settings.events_poll_seconds
    )
    broadcaster.attach(engine)
    return AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        writer_sessions=writer_sessions,
        config_cache=config_cache,
        hub=hub,
        foreman=Foreman(
            writer_sessions, settings=settings, hub=hub, cache=config_cache, readers=sessions
        ),
        events=broadcaster,
        subcontractor_tokens=TokenCache(settings.task_token_cache_seconds),
    )


def create_app(settings: Settings | None = None) -> Starlette:
    state = build_state(settings or Settings())
    settings = state.settings
    metrics.instruments().enabled = settings.metrics_enabled
    monitor = Monitor(
        settings,
        engine=state.engine,
        sessions=state.sessions,
        writer_sessions=state.writer_sessions,
        stopping=lambda: state.hub.draining,
        foreman=state.foreman,
    )
    graphql = ContractorGraphQL(
        build_schema(settings),
        settings=settings,
        sessions=state.sessions,
        writer_sessions=state.writer_sessions,
        config_cache=state.config_cache,
        events=state.events,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(migrate.upgrade, settings)
        if settings.gc_tuning:
            tune_gc()
        loop = asyncio.get_running_loop()
        restore = _drain_on_signals(lambda: loop.call_soon_threadsafe(state.hub.drain))
        try:
            async with (
                foreman_running(settings, state.hub, state.foreman),
                events_running(settings, state.events),
            ):
                yield
        finally:
            restore()
            await state.engine.dispose()

    routes = [
        Route("/healthz", healthz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        *dns_routes(),
        *discovery_routes(),  # before /boot/{config_uuid}
        *config_routes(),
        *subcontractor_routes(),
        *boot_routes(),
        *lease_routes(),
        *monitor.routes(),  # /metrics, /readyz
        *console_routes(),  # /ui/: the operator's console (static files)
    ]
    app = Starlette(
        routes=routes,
        exception_handlers=exception_handlers(config_error_answers()),
        # outermost: every answer, an error's too, carries the request's X-Request-ID;
        # then bodies over their route's limit are refused before anything reads them
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(HttpMetrics, templates=route_templates(routes)),
            _body_limit(settings),
        ],
        lifespan=lifespan,
    )
    set_app_state(app, state)
    return app


def _body_limit(settings: Settings) -> Middleware:
    """Every request body limited before it is parsed (``contractor.rest.limits``)."""
    return Middleware(
        BodyLimit,
        default=RouteLimit("/", settings.max_body_bytes, "max_body_bytes"),
        routes=[
            RouteLimit("/graphql", settings.graphql_max_body_bytes, "graphql_max_body_bytes", True),
            RouteLimit(TASK_API, settings.task_max_body_bytes, "task_max_body_bytes"),
        ],
    )


def create_app_from_environment() -> Starlette:
    """The app of one `contractor serve --workers N` process: the settings the command
    resolved, as JSON in ``CONTRACTOR_SERVE_SETTINGS_JSON``."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    logs.configure(settings)
    return create_app(settings)


def _drain_on_signals(drain: Callable[[], object]) -> Callable[[], None]:
    """Call ``drain`` first when SIGINT or SIGTERM arrives, then the handler already there
    (uvicorn's, which begins its shutdown). uvicorn waits for open requests before the app's
    own shutdown runs, so this is how long-polls learn to answer at once. Returns what puts
    the previous handlers back (nothing to do off the main thread, where there are none)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {
        number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)
    }

    def handler(number: int, frame: FrameType | None) -> None:
        drain()
        before = previous[number]
        if callable(before):
            before(number, frame)
        elif before != signal.SIG_IGN:  # the default action: put it back and take it
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)

    for number in previous:
        signal.signal(number, handler)

    def restore() -> None:
        for number, before in previous.items():
            if signal.getsignal(number) is handler:
                signal.signal(number, before)

    return restore


async def healthz(request: Request) -> JSONResponse:
    """Liveness and database reachability, for load balancers and operators."""
    try:
        async with app_state(request.app).engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not healthy"; say which
        log.warning("health check failed: %s", error)
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
