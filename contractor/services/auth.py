"""Users, passwords and API tokens.

Passwords and token secrets are hashed with argon2id (memory-hard). A token reads
``ctr_<key>.<secret>``: the key is stored in the clear to find the row, only the secret's
hash is kept, and the token text is shown once, when it is created.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, Unauthorized
from contractor.models import ROLES, ApiToken, User, utcnow
from contractor.services.common import added, get_by

_USERNAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.@\-]{0,63}")
_TOKEN_RE = re.compile(r"ctr_([a-z0-9]{16})\.([A-Za-z0-9_\-]{20,})")
MIN_PASSWORD_LENGTH = 8
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


def _default_hasher() -> PasswordHasher:
    # argon2id with the library's RFC 9106 "low memory" defaults (64 MiB, 3 passes); callers
    # with settings pass ``settings.password_hasher()`` instead.
    return PasswordHasher()


def _verify_now(hashed: str, secret: str) -> bool:
    # The cost parameters are read from the hash itself.
    try:
        return PasswordHasher().verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


# argon2 is deliberately slow (about 0.1 s at the default cost): hash and verify on worker
# threads, so that the event loop keeps serving other requests meanwhile.
async def _verify(hashed: str, secret: str) -> bool:
    return await anyio.to_thread.run_sync(_verify_now, hashed, secret)


async def _hash(secret: str, hasher: PasswordHasher | None) -> str:
    return await anyio.to_thread.run_sync((hasher or _default_hasher()).hash, secret)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", field="role")
    return role


def role_allows(role: str, needed: str) -> bool:
    """Roles are ordered: admin can do what an operator can, who can do what a reader can."""
    return ROLE_RANK[role] >= ROLE_RANK[check_role(needed)]


async def get_user(session: AsyncSession, username: str) -> User:
    return await get_by(session, User, User.username, username, what="user")


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    role: str,
    password: str | None = None,
    hasher: PasswordHasher | None = None,
) -> User:
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            f"username {username!r} must be 1 to 64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit",
            field="username",
        )
    check_role(role)
    if (await session.execute(select(User.id).where(User.username == username))).first():
        raise Conflict(f"user {username!r} already exists", field="username")
    user = User(username=username, role=role)
    if password is not None:
        user.password_hash = await _hash_password(password, hasher)
    return await added(session, user)


async def _hash_password(password: str, hasher: PasswordHasher | None) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    return await _hash(password, hasher)


async def set_password(
    session: AsyncSession, user: User, password: str, *, hasher: PasswordHasher | None = None
) -> None:
    user.password_hash = await _hash_password(password, hasher)
    await session.flush()


async def authenticate_password(session: AsyncSession, username: str, password: str) -> User:
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if (
        user is None
        or not user.is_active
        or user.password_hash is None
        or not await _verify(user.password_hash, password)
    ):
        raise Unauthorized("unknown user or wrong password")
    return user


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    text: str  # shown once; never stored


async def create_token(
    session: AsyncSession,
    *,
    user: User,
    description: str = "",
    expires_at: dt.datetime | None = None,
    hasher: PasswordHasher | None = None,
) -> NewToken:
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at must be in the future", field="expires_at")
    key = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        key=key,
        secret_hash=await _hash(secret, hasher),
        description=description,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    return NewToken(token=token, text=f"ctr_{key}.{secret}")


async def authenticate_token(session: AsyncSession, text: str) -> User:
    """The active user behind a bearer token, or Unauthorized (never saying which part
    was wrong)."""
    match = _TOKEN_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise Unauthorized("malformed API token")
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.key == match.group(1))
        )
    ).first()
    if row is None:
        raise Unauthorized("invalid API token")
    token, user = row
    now = utcnow()
    if (
        token.revoked_at is not None
        or (token.expires_at is not None and token.expires_at <= now)
        or not user.is_active
        or not await _verify(token.secret_hash, match.group(2))
    ):
        raise Unauthorized("invalid API token")
    token.last_used_at = now
    await session.flush()
    return user


async def revoke_token(session: AsyncSession, key: str) -> None:
    token = await get_by(session, ApiToken, ApiToken.key, key, what="token")
    token.revoked_at = utcnow()
    await session.flush()
