"""Bearer-token authentication for plain REST routes.

Wrap an endpoint with ``authenticated(role)`` and it receives an open session (one
transaction, committed when the endpoint returns, rolled back when it raises) and the user
behind the request's ``Authorization: Bearer <token>`` header::

    @authenticated("reader")
    async def list_things(request: Request, session: AsyncSession, user: User) -> Response:
        ...

Without a valid token the answer is 401 with ``WWW-Authenticate: Bearer``; with a role too
low, 403; any ``ContractorError`` the endpoint raises becomes its ``http_status`` and
``{"error": {"code", "message", "field"}}`` (the app's one mapping, ``contractor.rest.errors``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from contractor.db import transaction
from contractor.errors import Forbidden, Unauthorized
from contractor.models import User
from contractor.rest.state import app_state
from contractor.services.auth import authenticate_token, check_role, role_allows

__all__ = [
    "AuthenticatedEndpoint",
    "authenticate_request",
    "authenticated",
    "bearer_token",
]

AuthenticatedEndpoint = Callable[[Request, AsyncSession, User], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or Unauthorized."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("this needs an API token: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must read 'Bearer <token>'")
    return token.strip()


async def authenticate_request(
    request: Request, session: AsyncSession, *, role: str = "reader"
) -> User:
    """The active user behind the request's bearer token, holding at least ``role``."""
    user = await authenticate_token(session, bearer_token(request))
    if not role_allows(user.role, role):
        raise Forbidden(f"this needs the {role} role; user {user.username!r} is a {user.role}")
    return user


def authenticated(
    role: str = "reader", *, writes: bool = False
) -> Callable[[AuthenticatedEndpoint], Endpoint]:
    """Make an ``(request, session, user)`` endpoint a Starlette endpoint that
    authenticates first (see the module docstring). ``writes=True``: the endpoint changes
    data, so its session is a writer's."""
    check_role(role)

    def decorate(endpoint: AuthenticatedEndpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            state = app_state(request.app)
            if writes:
                async with transaction(state.writer_sessions) as session:
                    user = await authenticate_request(request, session, role=role)
                    return await endpoint(request, session, user)
            # Authenticating notes the token's use, a write: in a writer's transaction of its
            # own, so that the endpoint's reads never turn into a late write (on SQLite that
            # fails when another writer committed since the reads began).
            async with transaction(state.writer_sessions) as session:
                user = await authenticate_request(request, session, role=role)
            async with transaction(state.sessions) as session:
                return await endpoint(request, session, user)

        return wrapper

    return decorate
