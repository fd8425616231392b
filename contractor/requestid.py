"""A request id for every HTTP request and WebSocket connection, to match what a client was
told with what the server logged.

``RequestIdMiddleware`` (outermost in the app) takes the client's ``X-Request-ID`` when it is
a sane one (1 to 64 letters, digits and ``.-_:``), otherwise makes a new one, and sends it
back as ``X-Request-ID`` on every HTTP response (and on a WebSocket's handshake answer).
While the request runs, ``current()`` gives it: the GraphQL error log lines and the masked
errors' ``extensions.requestId`` carry it, and so do REST error bodies (``request_id``).
The operations of one WebSocket connection share its id.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Any

__all__ = ["HEADER", "RequestIdMiddleware", "accepted", "current", "peek"]

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_current: ContextVar[str | None] = ContextVar("contractor_request_id", default=None)


def accepted(value: str | None) -> str | None:
    """``value`` if it may serve as a request id, else None."""
    return value if value is not None and _SANE.fullmatch(value) else None


def _new() -> str:
    return uuid.uuid4().hex


def current() -> str:
    """The running request's id; outside a request (a schema run directly), one made now
    and kept for the rest of this context, so a log line and an answer still agree."""
    value = _current.get()
    if value is None:
        value = _new()
        _current.set(value)
    return value


def peek() -> str | None:
    """The running request's id, or None outside a request (a log line of the foreman)."""
    return _current.get()


class RequestIdMiddleware:
    """Pure ASGI: names each HTTP request and WebSocket connection (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == _HEADER_KEY), None)
        value = accepted(given.decode("latin-1") if given is not None else None) or _new()
        header = (_HEADER_KEY, value.encode("latin-1"))

        async def send_with_id(message: Any) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [(k, v) for k, v in message.get("headers", ()) if k != _HEADER_KEY]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = _current.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
