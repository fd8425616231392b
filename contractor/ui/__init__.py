"""The operator's console at ``/ui/``: static files only (``static/``), shipped in the package.

The console is a small single-page application in plain ES modules (no build step, nothing
fetched from anywhere but this server). It reads and acts only through ``/graphql`` and its
subscriptions, with the token the user logs in for, so it adds no second API and a reader's
rights are the server's to enforce. ``console_routes`` serves the files with a Content
Security Policy that lets a page load and connect to this origin only.
"""

from __future__ import annotations

from importlib import resources

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["POLICY", "console_routes"]

# 'self' covers ws:// and wss:// to this host too (CSP level 3), which the subscriptions use.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # the shell is small and changes with the package: always ask again (ETag answers 304)
    (b"cache-control", b"no-cache"),
]


class _Guarded:
    """Adds the console's security headers to every answer of the wrapped app, a 404's too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except HTTPException as error:  # a missing file: answered here, with the headers too
            answer = PlainTextResponse(error.detail, error.status_code, error.headers)
            await answer(scope, receive, send_with_headers)


async def _to_console(_: object) -> Response:
    return RedirectResponse("/ui/", status_code=308)


def console_routes() -> list[BaseRoute]:
    """``/ui`` redirects to ``/ui/``; ``/ui/`` serves ``index.html`` and the files beside it."""
    directory = resources.files("contractor.ui").joinpath("static")
    files = StaticFiles(directory=str(directory), html=True)
    return [Route("/ui", _to_console), Mount("/ui", app=_Guarded(files), name="console")]
