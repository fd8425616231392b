"""Users and API tokens in GraphQL: who is asking, the users, logging in, and tokens."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.schema.common import Deleted, DeleteResult, Row, found
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, mutation
from contractor.schema.permissions import Admin, Reader
from contractor.services import auth, inventory


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


UserResult = Annotated[User | AnyError, strawberry.union("UserResult")]
TokenResult = Annotated[NewToken | AnyError, strawberry.union("TokenResult")]


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
        assert row is not None  # users are never deleted
        return User.of(row)


@strawberry.type
class UserQuery:
    users = connection(User, inventory.users, role=Admin, description="Every user (admins only).")


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Exchange a username and password for an API token.")
    async def login(self, info: Info, username: str, password: str) -> TokenResult:
        async with info.context.writer_sessions() as session, session.begin():
            user = await auth.authenticate_password(session, username, password)
            return await _new_token(session, info, user, "login")

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

    @mutation(Admin)
    async def revoke_token(session: AsyncSession, key: str) -> DeleteResult:
        await auth.revoke_token(session, key)
        return Deleted(kind="ApiToken", id=0)
