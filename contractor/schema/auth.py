"""Users and API tokens in GraphQL: who is asking, the users, logging in (throttled:
``services.logins``), and tokens; administering users and tokens is for admins."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import errors, models
from contractor.schema.common import Deleted, DeleteResult, Row, found, given
from contractor.schema.context import Info
from contractor.schema.errors import AnyError, ForbiddenError, ThrottledError
from contractor.schema.fields import connection, fetched, mutation
from contractor.schema.permissions import Admin, Reader
from contractor.services import auth, inventory, logins


@strawberry.type
class User(Row):
    id: int
    username: str
    role: str
    is_active: bool


@strawberry.type(description="A new API token; the text is shown only in this answer.")
class NewToken:
    token: str
    key: str
    user: User


@strawberry.type(description="A user's API token (never its secret).")
class ApiToken(Row):
    id: int
    key: str = strawberry.field(description="The public part: the token reads ctr_<key>.<secret>.")
    description: str
    created: dt.datetime
    last_used_at: dt.datetime | None = strawberry.field(
        description="When it was last checked in full (a token in use is seen every 30 s or so)."
    )
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    row: strawberry.Private[models.ApiToken]
    user = fetched(User, models.User.id, "user_id")


UserResult = Annotated[User | AnyError, strawberry.union("UserResult")]
TokenResult = Annotated[NewToken | AnyError, strawberry.union("TokenResult")]
LoginResult = Annotated[NewToken | ThrottledError | AnyError, strawberry.union("LoginResult")]
ApiTokenResult = Annotated[ApiToken | AnyError, strawberry.union("ApiTokenResult")]


async def _new_token(
    session: AsyncSession, info: Info, user: models.User, description: str
) -> NewToken:
    hasher = info.context.settings.password_hasher()
    new = await auth.create_token(session, user=user, description=description, hasher=hasher)
    return NewToken(token=new.text, key=new.token.key, user=User.of(user))


# Two parts of Query: "me" comes first in the schema, "users" after the zones.


@strawberry.type
class CallerQuery:
    @strawberry.field(description="The caller.", extensions=[Reader()])
    async def me(self, info: Info) -> User:
        principal = info.context.principal
        assert principal is not None  # the role admitted someone
        row = await found(info, inventory.get_user_by_id, principal.user_id)
        if row is None:  # deleted since this request's token was checked
            raise errors.Unauthorized("your user no longer exists")
        return User.of(row)


@strawberry.type
class UserQuery:
    users = connection(User, inventory.users, role=Admin, description="Every user (admins only).")
    tokens = connection(
        ApiToken,
        auth.api_tokens,
        role=Admin,
        description="Users' API tokens, by id: usable ones unless includeRevoked (admins only).",
        username=str,
        include_revoked=bool,
    )


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        description="Exchange a username and password for an API token. Failed attempts are "
        "throttled per username and per client address (ThrottledError says how long to wait)."
    )
    async def login(self, info: Info, username: str, password: str) -> LoginResult:
        # Three steps, two transactions (services.logins): refusals are committed, and the
        # password is checked outside any transaction.
        context = info.context
        throttle = logins.LoginThrottle.of(context.settings)
        address = context.client_address or "unknown"
        async with context.writer_sessions() as session, session.begin():
            check = await logins.start_login(
                session, username=username, address=address, throttle=throttle
            )
        if check.throttled is not None:
            return ThrottledError.of(check.throttled)
        hasher = context.settings.password_hasher()
        outcome = await logins.check_login(check, password, hasher=hasher)
        async with context.writer_sessions() as session, session.begin():
            user = await logins.finish_login(session, check, outcome)
            if user is not None:
                session.info["actor"] = user.username  # the new token's event
                return await _new_token(session, info, user, "login")
        refusal = errors.Unauthorized(auth.REFUSED_LOGIN)
        return ForbiddenError(code=refusal.code, message=refusal.message, field=None)

    @mutation(Admin)
    async def create_user(
        session: AsyncSession, info: Info, username: str, role: str, password: str | None = None
    ) -> UserResult:
        hasher = info.context.settings.password_hasher()
        row = await auth.create_user(
            session, username=username, role=role, password=password, hasher=hasher
        )
        return User.of(row)

    @mutation(Admin)
    async def create_token(
        session: AsyncSession, info: Info, username: str, description: str = ""
    ) -> TokenResult:
        return await _new_token(session, info, await auth.get_user(session, username), description)

    @mutation(
        Admin,
        description="Give a user another role, or disable or enable them; their "
        "tokens follow at once. The last active admin stays one; you cannot disable yourself.",
    )
    async def update_user(
        session: AsyncSession,
        actor: str,
        username: str,
        role: str | None = strawberry.UNSET,
        is_active: bool | None = strawberry.UNSET,
    ) -> UserResult:
        row = await auth.get_user(session, username)
        await auth.update_user(session, row, role=given(role), is_active=given(is_active), by=actor)
        return User.of(row)

    @mutation(
        Admin,
        description="Remove a user and their tokens (not yourself, nor the last active admin).",
    )
    async def delete_user(session: AsyncSession, actor: str, username: str) -> DeleteResult:
        row = await auth.get_user(session, username)
        await auth.delete_user(session, row, by=actor)
        return Deleted(kind="User", id=row.id)

    @mutation(Admin, description="Revoke an API token by its key; it stops working at once.")
    async def revoke_token(session: AsyncSession, key: str) -> ApiTokenResult:
        return ApiToken.of(await auth.revoke_token(session, key))
