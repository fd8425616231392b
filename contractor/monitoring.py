"""``/metrics`` and ``/readyz`` of a process (``contractor serve``, ``contractor foreman``),
and the per-request HTTP metrics of ``contractor serve``.

``Monitor`` answers both routes for one process:

* ``GET /metrics``: the Prometheus text format (``contractor.metrics``). A client either
  sends ``Authorization: Bearer <token>`` (the ``metrics_token`` setting, or any active API
  token of any role) or comes from a network in ``metrics_allow_networks``; otherwise 401.
  While the process is shutting down it answers 503 (``SHUTTING_DOWN``) at once. The
  database's gauges are read at most every ``metrics_cache_seconds`` and for at most
  ``READ_TIMEOUT`` seconds: an unreachable database never holds a scrape, it shows as
  ``contractor_metrics_database_up 0``.
* ``GET /readyz``: each component's readiness (database, migrations, foreman loop, webhook
  worker, shutdown); 200 when all are ready, else 503 with the reasons. Cheap, and open (a
  load balancer asks it): it says what is wrong, never hosts or credentials.

Paths under ``/metrics/`` that are not ``/metrics`` answer 404 naming the one there is.
``monitor_app`` is the small app ``contractor foreman`` serves them with (and ``/healthz``).
This module sits beside the layers (it composes ``services`` and ``db``): ``contractor.app``
and ``contractor.foreman.cli`` import it, nothing below them does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
import uvicorn
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor import metrics, requestid
from contractor.db import transaction
from contractor.errors import Unauthorized, excerpt
from contractor.metrics import Snapshot
from contractor.models import utcnow
from contractor.services import auth, observability
from contractor.settings import Settings

__all__ = [
    "READ_TIMEOUT",
    "HttpMetrics",
    "Monitor",
    "monitor_app",
    "monitor_serving",
    "route_templates",
]

log = logging.getLogger(__name__)
access_log = logging.getLogger("access")

READ_TIMEOUT = 5.0  # seconds a scrape or a readiness check waits for the database
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_VERIFIED_KEEP = 64  # API tokens whose secret was verified, by digest (argon2 is slow)


class Looping(Protocol):
    """A foreman: when its loop last came round (``time.monotonic()``; None: not yet)."""

    last_round: float | None


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"code": code, "message": message, "field": None, "request_id": requestid.current()}
    return JSONResponse({"error": body}, status_code=status, headers=headers or None)


@dataclass
class _Cached:
    at: float
    snapshot: Snapshot


class Monitor:
    """``/metrics`` and ``/readyz`` for one process (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        writer_sessions: async_sessionmaker[AsyncSession],
        stopping: Callable[[], bool],
        foreman: Looping | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.writer_sessions = writer_sessions
        self.stopping = stopping
        self.foreman = foreman if settings.foreman_enabled else None
        self.started = time.monotonic()
        self._networks = [
            ipaddress.ip_network(network, strict=False)
            for network in settings.metrics_allow_networks
        ]
        token = settings.metrics_token
        self._token = token.get_secret_value().encode() if token is not None else None
        self._verified: dict[bytes, str] = {}  # an API token's digest -> its key
        self._cached: _Cached | None = None
        self._reading = asyncio.Lock()
        self._heads: set[str] | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/metrics/{rest:path}", self.not_metrics),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    # -- /metrics ----------------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        if self.stopping():
            return _error(
                503,
                "SHUTTING_DOWN",
                "this process is shutting down; scrape another",
                **{"Retry-After": "5"},
            )
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        families = list(metrics.snapshot_families(await self._snapshot()))
        # under `serve --workers` this reads every worker's files: off the event loop
        body = await anyio.to_thread.run_sync(metrics.exposition, families)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    async def not_metrics(self, request: Request) -> Response:
        where = excerpt(request.url.path, 80)
        return _error(404, "NOT_FOUND", f"no metrics at {where}: they are at /metrics (GET)")

    async def _refusal(self, request: Request) -> Response | None:
        """None when the client may scrape, else the 401 saying why not."""
        header = request.headers.get("authorization")
        if header is None:
            if self._from_allowed_network(request):
                return None
            return _error(
                401,
                "UNAUTHORIZED",
                "/metrics needs 'Authorization: Bearer <token>' (the metrics token or an API "
                "token), or a client address in metrics_allow_networks",
                **{"WWW-Authenticate": 'Bearer realm="contractor"'},
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        try:
            if scheme.lower() != "bearer" or not token:
                raise Unauthorized("the Authorization header must read 'Bearer <token>'")
            await self._check_token(token)
        except Unauthorized as error:
            return _error(
                401,
                "UNAUTHORIZED",
                error.message,
                **{"WWW-Authenticate": 'Bearer realm="contractor"'},
            )
        return None

    def _from_allowed_network(self, request: Request) -> bool:
        if not self._networks or request.client is None:
            return False
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    async def _check_token(self, token: str) -> None:
        given = token.encode()
        if self._token is not None and hmac.compare_digest(given, self._token):
            return
        if not token.startswith("ctr_"):
            raise Unauthorized("invalid metrics token")
        digest = hashlib.sha256(given).digest()
        key = self._verified.get(digest)
        if key is not None:  # verified before: only its standing is read again
            async with transaction(self.sessions) as session:
                await auth.recheck_token(session, key)
            return
        async with transaction(self.writer_sessions) as session:
            await auth.authenticate_token(session, token)
        if len(self._verified) >= _VERIFIED_KEEP:
            self._verified.pop(next(iter(self._verified)))
        self._verified[digest] = auth.token_key(token)

    async def _snapshot(self) -> Snapshot:
        async with self._reading:  # concurrent scrapes share one read
            cached = self._cached
            now = time.monotonic()
            if cached is not None and now - cached.at < self.settings.metrics_cache_seconds:
                return cached.snapshot
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    async with transaction(self.sessions) as session:
                        snapshot = await observability.snapshot(session)
            except Exception as error:  # the gauges are left out; the counters still answer
                log.warning("metrics: reading the database's gauges failed: %s", error)
                return Snapshot(database_up=False)
            self._cached = _Cached(now, snapshot)
            return snapshot

    # -- /readyz -----------------------------------------------------------------------

    async def readyz(self, request: Request) -> Response:
        components: dict[str, dict[str, Any]] = {}
        if self.stopping():
            components["shutdown"] = {"ready": False, "reason": "shutting down"}
        database = await self._database()
        components["database"] = database
        if database["ready"]:
            components["migrations"] = await self._migrations()
            # the tables it reads may not be there yet
            if self.settings.webhooks_enabled and components["migrations"]["ready"]:
                components["webhooks"] = await self._webhooks()
        components["foreman"] = self._foreman()
        reasons = [
            f"{name}: {part['reason']}" for name, part in components.items() if not part["ready"]
        ]
        body: dict[str, Any] = {
            "status": "not ready" if reasons else "ready",
            "components": components,
        }
        if reasons:
            body["reasons"] = reasons
        return JSONResponse(body, status_code=503 if reasons else 200)

    async def _database(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(READ_TIMEOUT), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            log.warning("readiness: the database is unreachable: %s", error)
            return {"ready": False, "reason": "unreachable (the log says why)"}
        return {"ready": True}

    def _script_heads(self) -> set[str]:
        if self._heads is None:
            from contractor import migrate

            script = ScriptDirectory.from_config(migrate.alembic_config(self.settings))
            self._heads = set(script.get_heads())
        return self._heads

    async def _migrations(self) -> dict[str, Any]:
        wanted = self._script_heads()
        try:
            async with asyncio.timeout(READ_TIMEOUT), self.engine.connect() as connection:
                current: set[str] = await connection.run_sync(
                    lambda sync: set(MigrationContext.configure(sync).get_current_heads())
                )
        except Exception as error:
            log.warning("readiness: cannot read the schema revision: %s", error)
            return {"ready": False, "reason": "the schema revision cannot be read"}
        if current != wanted:
            return {
                "ready": False,
                "reason": "migrations pending: run `contractor db upgrade`",
                "current": sorted(current),
                "head": sorted(wanted),
            }
        return {"ready": True, "revision": sorted(current)}

    def _foreman(self) -> dict[str, Any]:
        if self.foreman is None:
            return {"ready": True, "running": False}
        limit = self.settings.ready_foreman_stall_seconds
        last = self.foreman.last_round
        since = time.monotonic() - (self.started if last is None else last)
        if since > limit:
            return {
                "ready": False,
                "reason": f"foreman loop stalled: no round for {since:.0f}s (limit {limit:g}s)",
            }
        return {"ready": True, "running": True, "last_round_seconds_ago": round(since, 3)}

    async def _webhooks(self) -> dict[str, Any]:
        limit = self.settings.ready_webhook_lag_seconds
        try:
            async with asyncio.timeout(READ_TIMEOUT), transaction(self.sessions) as session:
                oldest = (await observability.oldest_waiting_event(session)).get("webhooks")
        except Exception as error:
            log.warning("readiness: cannot read the webhook backlog: %s", error)
            return {"ready": False, "reason": "the webhook backlog cannot be read"}
        if oldest is None:
            return {"ready": True, "lag_seconds": 0}
        lag = max(0.0, (utcnow() - oldest).total_seconds())
        if lag > limit:
            return {
                "ready": False,
                "reason": f"webhook worker behind: an event waits {lag:.0f}s (limit {limit:g}s)",
                "lag_seconds": round(lag, 3),
            }
        return {"ready": True, "lag_seconds": round(lag, 3)}


def route_templates(routes: list[Any]) -> dict[Any, str]:
    """Each route's endpoint and its path template (what the HTTP metrics label)."""
    return {route.endpoint: route.path for route in routes if hasattr(route, "endpoint")}


class HttpMetrics:
    """Pure ASGI: counts and times every HTTP request by method and route template
    (``unmatched`` for what no route took: 404s, bodies refused before routing), and logs
    it as one ``access`` line inside the request (so it carries the request id;
    the path without its query, a config UUID masked by ``contractor.logs``)."""

    def __init__(self, app: Any, *, templates: dict[Any, str]) -> None:
        self.app = app
        self.templates = templates
        self.meters = metrics.instruments()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else metrics.OTHER
            route = self.templates.get(scope.get("endpoint"), metrics.UNMATCHED)
            self.meters.http(method, route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    "%s %s %s %d %.1fms",
                    client[0] if client else "-",
                    method,
                    scope["path"],
                    status,
                    seconds * 1000,
                )


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def monitor_app(monitor: Monitor) -> Starlette:
    """``/metrics``, ``/readyz`` and ``/healthz`` on their own (``contractor foreman``); any
    other path is 404 naming them."""

    async def elsewhere(request: Request) -> Response:
        return _error(
            404,
            "NOT_FOUND",
            f"nothing at {request.url.path}: this port serves /metrics, /readyz and /healthz",
        )

    app = Starlette(
        routes=[
            *monitor.routes(),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/{rest:path}", elsewhere),
        ]
    )
    app.add_middleware(requestid.RequestIdMiddleware)
    return app


class _InLoop(uvicorn.Server):
    """uvicorn inside a loop that owns the signals (``contractor foreman``'s): it takes
    none of its own, so it never re-raises one after stopping."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def monitor_serving(monitor: Monitor, sock: socket.socket) -> AsyncIterator[None]:
    """Serve ``monitor_app(monitor)`` on ``sock`` while inside (stopped, at most
    ``READ_TIMEOUT`` seconds later, when the block ends)."""
    config = uvicorn.Config(monitor_app(monitor), log_config=None, lifespan="off", access_log=False)
    server = _InLoop(config)
    running = asyncio.create_task(server.serve(sockets=[sock]), name="metrics server")
    try:
        yield
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(running, READ_TIMEOUT)
        except (TimeoutError, Exception) as error:  # a stuck scrape must not hold the stop
            log.warning("the metrics server did not stop cleanly: %s", error)
        sock.close()
