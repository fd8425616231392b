"""A small HTTP/1.1 client for webhook requests: POST a body, read the status and the start
of the answer, and keep the connection for the next request to the same origin.

The webhook worker used httpx, and under load it was the worker's biggest cost: its client
layers (cookies, auth and redirect handling, pool bookkeeping over every connection) took
more CPU per request than the request itself. This does only what a webhook post needs, on
asyncio streams, with h11 for the protocol (framing, chunked answers, keep-alive rules), so
the wire format is a maintained library's, not ours.

- One request per connection at a time; idle connections are kept per origin (scheme, host,
  port), at most ``keep`` per origin, and reused oldest last.
- A kept connection the receiver closed meanwhile is noticed before use, or fails before any
  answer arrived: then the request is sent once more on a new connection (a receiver
  deduplicates on the delivery id anyway).
- ``timeout`` bounds the whole exchange (connect, send, answer); on expiry the connection is
  closed and ``TimeoutError`` raised. Redirects are not followed (a 3xx is an answer).
- ``https://`` verifies the receiver's certificate against the system's CAs (or
  ``ssl_context``); credentials in the URL (``https://user:secret@host/``) go as basic auth.
"""

from __future__ import annotations

import asyncio
import ssl
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11

__all__ = ["Answer", "WebhookClient"]

BODY_LIMIT = 64 * 1024  # read at most this much of an answer; a longer one closes the line
_Origin = tuple[str, str, int]


@dataclass(frozen=True)
class Answer:
    status: int
    text: str  # the start of the body, decoded leniently


class _Stale(Exception):
    """A kept connection turned out to be closed before the receiver answered."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(our_role=h11.CLIENT)

    def usable(self) -> bool:
        return (
            self.protocol.our_state is h11.IDLE
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.close()


class WebhookClient:
    def __init__(
        self, *, timeout: float, keep: int = 32, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._timeout = timeout
        self._keep = keep
        self._ssl = ssl_context
        self._idle: dict[_Origin, list[_Connection]] = {}

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST ``body`` to ``url``; the answer, whatever its status. Raises ``ValueError``
        for a URL it cannot post to, ``TimeoutError``, ``OSError`` or ``h11``'s protocol
        errors."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot post to {url!r}: not an http:// or https:// URL")
        default = 443 if parts.scheme == "https" else 80
        origin = (parts.scheme, parts.hostname, parts.port or default)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = [
            ("Host", parts.netloc.rsplit("@", 1)[-1]),
            ("Content-Length", str(len(body))),
            *headers.items(),
        ]
        if parts.username is not None:  # https://user:password@host/... : basic auth
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            sent.append(("Authorization", "Basic " + b64encode(credentials.encode()).decode()))
        request = h11.Request(method="POST", target=target, headers=sent)
        async with asyncio.timeout(self._timeout):
            kept = self._take(origin)
            if kept is not None:
                try:
                    return await self._exchange(kept, origin, request, body, kept=True)
                except _Stale:
                    pass  # closed by the receiver while idle: once more, on a new connection
            connection = await self._open(origin)
            return await self._exchange(connection, origin, request, body, kept=False)

    def _take(self, origin: _Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        while connections:
            connection = connections.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _give_back(self, origin: _Origin, connection: _Connection) -> None:
        connections = self._idle.setdefault(origin, [])
        if len(connections) < self._keep:
            connections.append(connection)
        else:
            connection.close()

    async def _open(self, origin: _Origin) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:  # loading the system's CAs once, not per connection
                self._ssl = ssl.create_default_context()
            context = self._ssl
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        origin: _Origin,
        request: h11.Request,
        body: bytes,
        *,
        kept: bool,
    ) -> Answer:
        protocol = connection.protocol
        answered = False
        try:
            data = protocol.send(request) or b""
            data += protocol.send(h11.Data(data=body)) or b""
            data += protocol.send(h11.EndOfMessage()) or b""
            connection.writer.write(data)
            await connection.writer.drain()
            status = 0
            chunks: list[bytes] = []
            size = 0
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    received = await connection.reader.read(65536)
                    answered = answered or bool(received)
                    protocol.receive_data(received)  # b"": the receiver closed
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    if size < BODY_LIMIT:
                        chunks.append(event.data)
                    size += len(event.data)
                    if size > BODY_LIMIT:  # not worth reading to the end to keep the line
                        connection.close()
                        break
                elif isinstance(event, h11.EndOfMessage):
                    if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
                        protocol.start_next_cycle()
                        self._give_back(origin, connection)
                    else:
                        connection.close()
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("the receiver closed the connection")
        except (OSError, h11.ProtocolError) as error:
            connection.close()
            if kept and not answered:
                raise _Stale from error
            raise
        except BaseException:  # a timeout or a cancellation mid-exchange: the line is unusable
            connection.close()
            raise
        text = b"".join(chunks)[:BODY_LIMIT].decode("utf-8", errors="replace")
        return Answer(status, text)
