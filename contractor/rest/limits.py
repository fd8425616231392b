"""Request-body limits for every route, enforced before anything parses a byte.

``BodyLimit`` is an ASGI middleware (``create_app`` installs it once, in front of every
route). Each request gets its route's limit (``RouteLimit``, by path prefix; else the
default):

* a ``Content-Length`` over the limit is refused before the route runs;
* a body sent in chunks is counted as it arrives and cut off once it passes the limit (the
  route then sees the client as gone, and nothing it does afterwards is sent);
* WebSocket messages over the limit close the socket with 1009 (message too big).

The refusal is 413 in the route's own error shape (``{"error": {"code": "TOO_LARGE", ...}}``,
or GraphQL's ``{"errors": [{"message", "extensions": {"code"}}]}``) with ``Connection:
close``. The rest of the body is then read and dropped, for ``DRAIN_SECONDS`` at most, so a
client that is still sending sees the answer instead of a reset connection; a client that
asked ``Expect: 100-continue`` is answered without being invited to send at all. Reading and
dropping costs the event loop next to nothing, so other requests (``/healthz``) are answered
meanwhile as usual.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contractor.errors import TooLarge

__all__ = ["DRAIN_SECONDS", "BodyLimit", "RouteLimit"]

# How long a refused request's remaining body is read (and dropped) before the connection
# is closed regardless.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class RouteLimit:
    """The largest body (bytes) of the requests whose path starts with ``prefix``, with the
    setting that holds it (named in the refusal); ``graphql``: answer in GraphQL's shape."""

    prefix: str
    max_bytes: int
    setting: str
    graphql: bool = False

    def refusal(self) -> bytes:
        error = TooLarge(
            f"the request body is larger than {self.max_bytes} bytes, the most this route "
            f"accepts (CONTRACTOR_{self.setting.upper()})",
            field="body",
        )
        if self.graphql:
            answer: dict[str, Any] = {
                "errors": [{"message": error.message, "extensions": {"code": error.code}}]
            }
        else:
            answer = {"error": error.as_dict()}
        return json.dumps(answer).encode()


@dataclass
class _Body:
    """One request's body as it streams in."""

    received: int = 0
    started: bool = False  # the route has begun its answer
    refused: bool = False  # the 413 was sent: whatever the route sends is dropped


class BodyLimit:
    """The middleware (see the module docstring): ``default`` for every path no ``routes``
    entry matches."""

    def __init__(self, app: ASGIApp, *, default: RouteLimit, routes: Sequence[RouteLimit]) -> None:
        self.app = app
        self.default = default
        self.routes = tuple(routes)

    def limit(self, path: str) -> RouteLimit:
        for route in self.routes:
            if path.startswith(route.prefix):
                return route
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit(scope["path"])
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit():
            # the server holds the body to its declared length: nothing to count
            if int(declared) > limit.max_bytes:
                invited = headers.get("expect", "").lower() != "100-continue"
                await _refuse(limit, receive, send, drain=invited)
            else:
                await self.app(scope, receive, send)
            return
        body = _Body()

        async def counted() -> Message:
            if body.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                body.received += len(message.get("body", b""))
                if body.received > limit.max_bytes:
                    if not body.started:
                        body.refused = True
                        await _refuse(limit, receive, send, drain=message.get("more_body", False))
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            if body.refused:
                return
            if message["type"] == "http.response.start":
                body.started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not body.refused:
                raise
            # the route failed reading the body it was cut off from: the 413 is the answer

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit(scope["path"])
        closed = False

        async def counted() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and _size(message) > limit.max_bytes:
                closed = True
                await send({"type": "websocket.close", "code": 1009, "reason": "too large"})
                return {"type": "websocket.disconnect", "code": 1009}
            return message

        async def guarded(message: Message) -> None:
            if not closed:
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not closed:
                raise


def _size(message: Message) -> int:
    """The bytes of a WebSocket message (a text message as UTF-8)."""
    text = message.get("text")
    if text is not None:
        return len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))
    return len(message.get("bytes") or b"")


async def _refuse(limit: RouteLimit, receive: Receive, send: Send, *, drain: bool) -> None:
    """Answer 413; with ``drain``, read and drop what the client still sends (for
    ``DRAIN_SECONDS`` at most) before the answer ends and the connection closes."""
    answer = limit.refusal()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer, "more_body": drain})
    if not drain:
        return
    with anyio.move_on_after(DRAIN_SECONDS):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
    await send({"type": "http.response.body", "body": b""})
