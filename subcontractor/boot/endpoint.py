"""The HTTP boot endpoint: what iPXE and the machines it boots ask for on the provisioning
network, answered from the boot data or fetched from Contractor (``docs/boot.md``).

* ``GET /ipxe?mac=M``: the reservation of M: Contractor's ``boot_script``
  (``/boot/<uuid>``); no reservation: ``/boot/discovery?mac=M&site=S`` (with the token);
* ``GET /boot/<uuid>``, ``/config/<uuid>``, ``/config/<uuid>/boot_script``,
  ``/config/<uuid>/pxe_template`` (and the original's ``/config/<kind>/c/<uuid>``):
  Contractor's, the same paths;
* ``GET /files/<path>``: ``files_dir/<path>`` when there, else Contractor's
  ``/files/<path>``, kept by its ETag (and served from that copy while Contractor is away);
* ``POST /signal/<uuid>`` (and ``/api/v1/signal/<uuid>``): Contractor's
  ``POST /api/v1/signal/<uuid>``;
* ``POST /discovery``: Contractor's ``POST /api/v1/subcontractor/discovery``
  ``{site, report}`` (with the token).

Nothing else is forwarded (404). Bodies are bounded (413), each client address may make
``rate`` requests a second with bursts of ``burst`` (429, ``Retry-After``), and Contractor
gets ``upstream_timeout`` seconds (then 504; unreachable: 502).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from subcontractor.boot.backend import MAC, BootData
from subcontractor.client import _ssl_context
from subcontractor.config import ContractorConfig

__all__ = ["EndpointSettings", "RateLimit", "build_endpoint"]

log = logging.getLogger("subcontractor.boot.endpoint")

UUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
FILE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,7}$")
CONFIG_PARTS = ("", "boot_script", "pxe_template")
CHUNK = 1 << 16


@dataclass(frozen=True)
class EndpointSettings:
    site: str
    files_dir: Path | None  # kernels and initrds kept here, served before asking Contractor
    cache_dir: Path  # files fetched from Contractor, by content
    max_body_bytes: int = 64 * 1024
    rate: float = 20.0  # requests a second per client address
    burst: int = 60
    upstream_timeout: float = 30.0
    max_file_bytes: int = 2 * 1024**3


class RateLimit:
    """A token bucket per client address (the oldest forgotten past ``clients``)."""

    def __init__(self, rate: float, burst: int, clients: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.clients = clients
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str, now: float) -> float:
        """0 when ``client`` may go on, else the seconds until it may."""
        tokens, then = self.buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[client] = (tokens, now)
        while len(self.buckets) > self.clients:
            self.buckets.pop(next(iter(self.buckets)))
        return wait


class _Guard:
    """Rate and body-size limits before any route (a body over the bound is never read whole)."""

    def __init__(self, app: ASGIApp, settings: EndpointSettings, limit: RateLimit) -> None:
        self.app = app
        self.settings = settings
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.limit.take(client, time.monotonic())
        if wait:
            response: Response = _error(429, "too many requests from this address")
            response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
            await response(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.settings.max_body_bytes:
            await _error(413, "the body is too large")(scope, receive, send)
            return
        seen = 0
        bound = self.settings.max_body_bytes

        async def bounded() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > bound:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, bounded, send)
        except _TooLarge:
            await _error(413, "the body is too large")(scope, receive, send)


class _TooLarge(Exception):
    pass


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(f"{message}\n", status_code=status)


class _Upstream:
    """Contractor, as the endpoint asks it."""

    def __init__(
        self,
        contractor: ContractorConfig,
        settings: EndpointSettings,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.settings = settings
        common: dict[str, Any] = {
            "base_url": contractor.url,
            "verify": _ssl_context(contractor),
            "trust_env": transport is None,
            "timeout": settings.upstream_timeout,
            "transport": transport,
        }
        # the UUID is the secret of /boot and /config: the token goes only where it is asked
        self.public = httpx.AsyncClient(**common)
        self.private = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {contractor.token}"}, **common
        )

    async def aclose(self) -> None:
        await self.public.aclose()
        await self.private.aclose()

    async def forward(
        self, method: str, path: str, *, private: bool = False, **options: Any
    ) -> Response:
        client = self.private if private else self.public
        try:
            answer = await client.request(method, path, **options)
        except httpx.TimeoutException:
            return _error(504, "Contractor did not answer in time")
        except httpx.HTTPError as error:
            log.warning("Contractor not reached for %s %s: %s", method, path, type(error).__name__)
            return _error(502, "Contractor cannot be reached")
        kept = {"cache-control", "retry-after", "etag"}
        headers = {k: v for k, v in answer.headers.items() if k.lower() in kept}
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers=headers,
            media_type=answer.headers.get("content-type", "text/plain"),
        )


class _Files:
    """``/files/<path>``: the local files directory, else Contractor's, kept by ETag."""

    def __init__(self, settings: EndpointSettings, upstream: _Upstream) -> None:
        self.settings = settings
        self.upstream = upstream

    def _local(self, path: str) -> Path | None:
        if self.settings.files_dir is None:
            return None
        candidate = self.settings.files_dir / path
        return candidate if candidate.is_file() else None

    async def get(self, path: str) -> Response:
        local = self._local(path)
        if local is not None:
            return FileResponse(local)
        cache = self.settings.cache_dir
        key = hashlib.sha256(path.encode()).hexdigest()
        meta_path = cache / f"{key}.json"
        meta: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        content = cache / f"{meta.get('sha256', '-')}.data"
        headers = {"If-None-Match": meta["etag"]} if meta.get("etag") and content.exists() else {}
        try:
            async with self.upstream.public.stream(
                "GET", f"/files/{path}", headers=headers
            ) as answer:
                if answer.status_code == 304:
                    return FileResponse(content, headers={"ETag": meta["etag"]})
                if answer.status_code != 200:
                    return _error(answer.status_code if answer.status_code < 500 else 502, "")
                cache.mkdir(parents=True, exist_ok=True)
                part = cache / f".{key}.part"
                digest = hashlib.sha256()
                size = 0
                with part.open("wb") as out:
                    async for chunk in answer.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > self.settings.max_file_bytes:
                            part.unlink()
                            return _error(502, "the file is larger than the endpoint keeps")
                        digest.update(chunk)
                        out.write(chunk)
                kept = cache / f"{digest.hexdigest()}.data"
                os.replace(part, kept)
                etag = answer.headers.get("etag", "")
        except httpx.TimeoutException:
            return _error(504, "Contractor did not answer in time")
        except httpx.HTTPError:
            if meta.get("etag") and content.exists():  # Contractor away: the copy held
                return FileResponse(content, headers={"ETag": meta["etag"]})
            return _error(502, "Contractor cannot be reached")
        meta = {"etag": etag, "sha256": digest.hexdigest()}
        part_meta = cache / f".{key}.json.part"
        part_meta.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(part_meta, meta_path)
        return FileResponse(kept, headers={"ETag": etag} if etag else None)


def build_endpoint(
    settings: EndpointSettings,
    contractor: ContractorConfig,
    data: Callable[[], BootData | None],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The endpoint's ASGI app; ``data`` answers the boot data held now."""
    upstream = _Upstream(contractor, settings, transport)
    files = _Files(settings, upstream)

    async def ipxe(request: Request) -> Response:
        mac = (request.query_params.get("mac") or "").lower().replace("-", ":")
        if not MAC.match(mac):
            return _error(400, "mac: give the machine's MAC, aa:bb:cc:dd:ee:ff")
        held = data()
        reservation = None if held is None else held.reservation_for(mac)
        if reservation is not None:
            return await upstream.forward("GET", reservation.boot_script)
        return await upstream.forward(
            "GET",
            "/boot/discovery",
            params={"mac": mac, "site": settings.site},
            private=True,
        )

    async def boot(request: Request) -> Response:
        uuid = request.path_params["uuid"]
        if not UUID.match(uuid):
            return _error(404, "not found")
        return await upstream.forward("GET", f"/boot/{uuid}")

    async def config(request: Request) -> Response:
        uuid = request.path_params["uuid"]
        part = request.path_params.get("part", "")
        if not UUID.match(uuid) or part not in CONFIG_PARTS:
            return _error(404, "not found")
        return await upstream.forward("GET", f"/config/{uuid}" + (f"/{part}" if part else ""))

    async def config_alias(request: Request) -> Response:
        # the original's /config/{config,boot_script,pxe_template}/c/<uuid> (the shipped
        # `linux-installer` PXE hands its installer url=.../config/pxe_template/c/<uuid>)
        uuid = request.path_params["uuid"]
        kind = request.path_params["kind"]
        if not UUID.match(uuid) or kind not in ("config", *CONFIG_PARTS[1:]):
            return _error(404, "not found")
        return await upstream.forward("GET", f"/config/{kind}/c/{uuid}")

    async def file(request: Request) -> Response:
        path = request.path_params["path"]
        if not FILE_PATH.match(path) or any(part in (".", "..") for part in path.split("/")):
            return _error(404, "not found")
        return await files.get(path)

    async def signal(request: Request) -> Response:
        uuid = request.path_params["uuid"]
        if not UUID.match(uuid):
            return _error(404, "not found")
        body = await request.body()
        return await upstream.forward(
            "POST",
            f"/api/v1/signal/{uuid}",
            content=body,
            headers={"Content-Type": "application/json"} if body else {},
        )

    async def discovery(request: Request) -> Response:
        try:
            report = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": {"message": "the report is not JSON"}}, 400)
        return await upstream.forward(
            "POST",
            "/api/v1/subcontractor/discovery",
            json={"site": settings.site, "report": report},
            private=True,
        )

    async def not_found(request: Request) -> Response:
        return _error(404, "not found")

    routes = [
        Route("/ipxe", ipxe, methods=["GET"]),
        Route("/boot/{uuid}", boot, methods=["GET"]),
        Route("/config/{uuid}", config, methods=["GET"]),
        Route("/config/{uuid}/{part}", config, methods=["GET"]),
        Route("/config/{kind}/c/{uuid}", config_alias, methods=["GET"]),
        Route("/files/{path:path}", file, methods=["GET"]),
        Route("/signal/{uuid}", signal, methods=["POST"]),
        Route("/api/v1/signal/{uuid}", signal, methods=["POST"]),
        Route("/discovery", discovery, methods=["POST"]),
        Route("/{anything:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(
        _Guard,
        settings=settings,
        limit=RateLimit(settings.rate, settings.burst),
    )
    app.state.upstream = upstream
    return app
