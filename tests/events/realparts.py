"""Helpers for tests against a real `contractor serve`: a database with an admin token, a
GraphQL client over HTTP, a graphql-transport-ws client, and an HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import websockets

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import auth
from contractor.settings import Settings
from tests.conftest import FAST_HASHING, make_pg_database


async def prepared_database(backend: str, tmp_path: Path) -> tuple[str, str]:
    """A migrated database (``postgresql`` or ``sqlite``) with an admin; (URL, token)."""
    if backend == "postgresql":
        url = make_pg_database("contractor_events")
    else:
        url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    settings = Settings(database_url=url, **FAST_HASHING)  # type: ignore[arg-type]
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            hasher = settings.password_hasher()
            user = await auth.create_user(session, username="root", role="admin", hasher=hasher)
            token = (await auth.create_token(session, user=user, hasher=hasher)).text
    finally:
        await engine.dispose()
    return url, token


async def graphql(base: str, token: str, document: str, **variables: Any) -> Any:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return await graphql_on(http, token, document, **variables)


async def graphql_on(http: httpx.AsyncClient, token: str, document: str, **variables: Any) -> Any:
    """The data of one GraphQL request through ``http`` (asserting it has no errors)."""
    response = await http.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


class Subscription:
    """One graphql-transport-ws connection running one subscription."""

    def __init__(self, base: str, token: str, document: str, **variables: Any) -> None:
        self.url = base.replace("http://", "ws://") + "/graphql"
        self.token = token
        self.document = document
        self.variables = variables
        self.socket: Any = None

    async def __aenter__(self) -> Subscription:
        self.socket = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        await self.socket.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}}
            )
        )
        assert json.loads(await self.socket.recv())["type"] == "connection_ack"
        await self.socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": self.document, "variables": self.variables},
                }
            )
        )
        return self

    async def next(self) -> Any:
        while True:
            message = json.loads(await self.socket.recv())
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            return message["payload"]["data"]

    async def rest(self) -> tuple[list[Any], list[Any]]:
        """Every further result until the server completes the subscription: (data of each
        ``next``, errors of each ``next`` or ``error`` message)."""
        data: list[Any] = []
        errors: list[Any] = []
        while True:
            message = json.loads(await self.socket.recv())
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
            elif message["type"] == "complete":
                return data, errors
            elif message["type"] == "error":
                errors.extend(message["payload"])
                return data, errors
            else:
                assert message["type"] == "next", message
                errors.extend(message["payload"].get("errors") or [])
                if message["payload"].get("data") is not None:
                    data.append(message["payload"]["data"])

    async def __aexit__(self, *exc: object) -> None:
        await self.socket.close()


@dataclass
class Received:
    delivery: str
    event: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A real HTTP server on a loopback port; ``delay`` slows every answer."""

    port: int
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay:
                    time.sleep(receiver.delay)
                document = json.loads(body)
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            document["delivery"],
                            document["event"],
                            dict(self.headers.items()),
                            body,
                            time.monotonic(),
                        )
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def unique(self) -> dict[str, Received]:
        with self.lock:
            return {r.delivery: r for r in self.received}


async def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    import asyncio

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
