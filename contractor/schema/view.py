"""The /graphql endpoint: authentication, the context, error masking and the explorer page.

Requests authenticate with ``Authorization: Bearer <token>`` (an API token, or one the
``login`` mutation returned). Without credentials only ``login`` may run
(``schema.anonymous`` decides on the validated operation); anything else gets HTTP 401.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from contractor.errors import Unauthorized
from contractor.events.broadcast import EventBroadcaster
from contractor.schema.anonymous import AUTHENTICATION_REQUIRED
from contractor.schema.context import Context, Principal
from contractor.schema.loaders import Loaders
from contractor.schema.prefetch import current_loaders
from contractor.services import auth
from contractor.services.config import ConfigCache
from contractor.settings import Settings


@dataclass
class _Verified:
    key: str
    until: float


class TokenCache:
    """Tokens whose secret was verified lately: argon2 is deliberately slow, requests must
    not be.

    Keyed by a SHA-256 of the token (the token itself is never kept); an entry holds the
    token's key for ``ttl`` seconds, in which the secret is not verified again. The token's
    standing (revoked, expired, its user disabled, deleted or re-roled) is not cached: each
    request reads it (``auth.recheck_token``), so a change any process makes holds at once.
    """

    def __init__(self, ttl: float = 30.0, size: int = 10_000) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: dict[str, _Verified] = {}

    def get(self, token: str) -> str | None:
        """The key of ``token`` if its secret was verified within the last ``ttl``."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        entry = self._entries.get(digest)
        if entry is None or entry.until < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry.key

    def put(self, token: str, key: str) -> None:
        if len(self._entries) >= self._size:
            self._entries.clear()
        digest = hashlib.sha256(token.encode()).hexdigest()
        self._entries[digest] = _Verified(key, time.monotonic() + self._ttl)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class SocketContext(Context):
    """A WebSocket's context: strawberry stores the ``connection_init`` payload on it."""

    connection_params: dict[str, Any] | None = None


class ContractorGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        schema: Schema,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        writer_sessions: async_sessionmaker[AsyncSession],
        config_cache: ConfigCache | None = None,
        events: EventBroadcaster | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        )
        self.settings = settings
        self.sessions = sessions
        self.writer_sessions = writer_sessions
        self.config_cache = config_cache
        self.events = events
        self.tokens = TokenCache()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                await explorer_page()(scope, receive, send)
                return
            try:
                response = await self.run(request)
            except HTTPException as error:
                response = JSONResponse(
                    {"errors": [{"message": error.reason}]},
                    status_code=error.status_code,
                    headers={"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None,
                )
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def authenticate(self, token: str | None) -> Principal | None:
        if token is None:
            return None
        key = self.tokens.get(token)
        if key is not None:
            async with self.sessions() as session:
                user = await auth.recheck_token(session, key)
        else:
            async with self.writer_sessions() as session, session.begin():
                user = await auth.authenticate_token(session, token)
            self.tokens.put(token, auth.token_key(token))
        return Principal(user_id=user.id, username=user.username, role=user.role)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """One operation; an anonymous caller's that ``AnonymousOnlyLogin`` refused is
        answered with HTTP 401, as a request with a bad token is."""
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if context.principal is None and any(
            isinstance(error.original_error, Unauthorized) for error in result.errors or ()
        ):
            raise HTTPException(401, AUTHENTICATION_REQUIRED)
        return result

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        try:
            principal = await self.authenticate(_bearer(request.headers.get("authorization")))
        except Unauthorized as error:
            raise HTTPException(401, error.message) from None
        loaders = Loaders(self.sessions)
        current_loaders.set(loaders)
        context_type = SocketContext if isinstance(request, WebSocket) else Context
        return context_type(
            settings=self.settings,
            sessions=self.sessions,
            writer_sessions=self.writer_sessions,
            principal=principal,
            loaders=loaders,
            config_cache=self.config_cache,
            events=self.events,
            client_address=request.client.host if request.client else None,
        )

    async def on_ws_connect(self, context: Context) -> None:
        """A WebSocket authenticates in its handshake (``Authorization`` header) or in
        ``connection_init``'s payload (``{"Authorization": "Bearer <token>"}``); without
        either it is closed with 4403 before any operation runs."""
        params = getattr(context, "connection_params", None) or {}
        header = params.get("Authorization") or params.get("authorization")
        if header is not None:
            try:
                principal = await self.authenticate(_bearer(str(header)))
            except Unauthorized:
                raise ConnectionRejectionError() from None
            # completed once, before connection_ack: no operation has seen it yet
            object.__setattr__(context, "principal", principal)
        if context.principal is None:
            raise ConnectionRejectionError()


def explorer_page() -> HTMLResponse:
    html = resources.files("contractor.schema").joinpath("explorer.html").read_text()
    return HTMLResponse(html)
