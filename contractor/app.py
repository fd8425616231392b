"""The ASGI application: ``uvicorn --factory contractor.app:create_app``.

The lifespan owns the engine; routes read it from ``request.app.state``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.plugins import foundation_types
from contractor.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        foundation_types()  # map every installed plugin's tables before the first query
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(migrate.upgrade, settings)
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessions = create_session_factory(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)
    app.state.settings = settings
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
