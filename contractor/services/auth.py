"""Users, passwords and API tokens.

Passwords and token secrets are hashed with argon2id (memory-hard). A token reads
``ctr_<key>.<secret>``: the key is stored in the clear to find the row, only the secret's
hash is kept, and the token text is shown once, when it is created.

Users are changed (role, disabled) and deleted here, never leaving no active admin. A
token's standing (revoked, expired, its user disabled, deleted or given another role) is
read again on every request (``recheck_token``, one indexed read and no argon2), so a change
made by any process holds at once in every other. Logging in is ``services.logins``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, InvalidState, NotFound, Unauthorized
from contractor.models import ROLES, ApiToken, SubcontractorToken, User, utcnow
from contractor.services.common import UNSET, added, get_by
from contractor.services.events import record_event
from contractor.services.paging import Listing

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
async def verify_secret(hashed: str, secret: str) -> bool:
    return await anyio.to_thread.run_sync(_verify_now, hashed, secret)


async def hash_secret(secret: str, hasher: PasswordHasher | None) -> str:
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
    return await hash_secret(password, hasher)


async def set_password(
    session: AsyncSession, user: User, password: str, *, hasher: PasswordHasher | None = None
) -> None:
    user.password_hash = await _hash_password(password, hasher)
    await session.flush()


PASSWORD_OK = "ok"
REFUSED_LOGIN = "unknown user or wrong password"


async def password_outcome(
    user: User | None, password: str, *, hasher: PasswordHasher | None = None
) -> str:
    """``PASSWORD_OK``, or why ``password`` does not log ``user`` in: ``unknown_user``,
    ``no_password``, ``disabled``, ``wrong_password``. Exactly one argon2 computation in
    every case: for no user, or one without a password, the password is hashed at the
    current cost (``hasher``: the settings'), the same work as verifying, and thrown away, so
    that the time taken does not tell which usernames exist."""
    if user is None or user.password_hash is None:
        await hash_secret(password, hasher)
        return "unknown_user" if user is None else "no_password"
    right = await verify_secret(user.password_hash, password)
    if not user.is_active:
        return "disabled"
    return PASSWORD_OK if right else "wrong_password"


async def authenticate_password(
    session: AsyncSession, username: str, password: str, *, hasher: PasswordHasher | None = None
) -> User:
    """The user ``username`` if ``password`` is theirs and they are active, else
    Unauthorized (the same answer, after the same work, whatever is wrong). Not throttled:
    ``services.logins`` is the login."""
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if await password_outcome(user, password, hasher=hasher) != PASSWORD_OK or user is None:
        raise Unauthorized(REFUSED_LOGIN)
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
        secret_hash=await hash_secret(secret, hasher),
        description=description,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    return NewToken(token=token, text=f"ctr_{key}.{secret}")


def token_key(text: str) -> str:
    """The key (the part stored in the clear) of a well-formed API token, else Unauthorized."""
    match = _TOKEN_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise Unauthorized("malformed API token")
    return match.group(1)


async def authenticate_token(session: AsyncSession, text: str) -> User:
    """The active user behind a bearer token, or Unauthorized (never saying which part
    was wrong)."""
    key = token_key(text)
    token, user = await _standing(session, key)
    if not await verify_secret(token.secret_hash, text.strip().partition(".")[2]):
        raise Unauthorized("invalid API token")
    token.last_used_at = utcnow()
    await session.flush()
    return user


async def recheck_token(session: AsyncSession, key: str) -> User:
    """The active user behind the token ``key`` whose secret was verified earlier (it is
    not verified again), as the database has them now; else Unauthorized. A read only."""
    return (await _standing(session, key))[1]


async def _standing(session: AsyncSession, key: str) -> tuple[ApiToken, User]:
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.key == key)
        )
    ).first()
    if row is None:
        raise Unauthorized("invalid API token")
    token, user = row
    if not _usable(token, utcnow()) or not user.is_active:
        raise Unauthorized("invalid API token")
    return token, user


def _usable(token: ApiToken | SubcontractorToken, now: dt.datetime) -> bool:
    expires = getattr(token, "expires_at", None)
    return token.revoked_at is None and (expires is None or expires > now)


def _token_event(session: AsyncSession, kind: str, token: ApiToken, username: str) -> None:
    """An API token's audit event (tokens are no inventory objects: their use is not one)."""
    payload = {"key": token.key, "username": username, "description": token.description}
    record_event(session, kind=kind, object=token, object_type="api_token", payload=payload)


async def revoke_token(session: AsyncSession, key: str) -> ApiToken:
    token = await get_by(session, ApiToken, ApiToken.key, key, what="token")
    _check_not_revoked(token, f"token {key!r}")
    token.revoked_at = utcnow()
    await session.flush()
    owner = await session.get(User, token.user_id)
    _token_event(session, "revoked", token, owner.username if owner else "")
    return token


def _check_not_revoked(token: ApiToken | SubcontractorToken, what: str) -> None:
    if token.revoked_at is not None:
        raise InvalidState(
            f"{what} was revoked already, at {token.revoked_at:%Y-%m-%d %H:%M:%S} UTC",
            field="key",
        )


# -- administering users ------------------------------------------------------------------


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.execute(select(User).order_by(User.username))).scalars())


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    role: Any = UNSET,
    is_active: Any = UNSET,
    by: str | None = None,
) -> User:
    """Give ``user`` another ``role``, or disable (``is_active=False``) or enable them.
    ``by``: the acting user's name, who may not disable themselves. The last active admin
    keeps both role and access. Their tokens follow at once (``recheck_token``)."""
    if role is not UNSET:
        check_role(role)
    if is_active is not UNSET and not isinstance(is_active, bool):
        raise InvalidInput("is_active must be true or false", field="is_active")
    if is_active is False and by == user.username:
        raise InvalidState(
            f"you cannot disable yourself ({user.username!r}): another admin can",
            field="username",
        )
    losing = (role is not UNSET and role != "admin") or is_active is False
    if losing:
        await _keep_an_admin(session, user, "disable" if is_active is False else "re-role")
    changed = {
        name: value
        for name, value in (("role", role), ("is_active", is_active))
        if value is not UNSET and getattr(user, name) != value
    }
    for name, value in changed.items():
        setattr(user, name, value)
    await session.flush()
    if changed:
        _user_event(session, "updated", user, changed=sorted(changed))
    return user


async def delete_user(session: AsyncSession, user: User, *, by: str | None = None) -> None:
    """Remove ``user`` and their tokens (not yourself, ``by``; never the last active admin)."""
    if by == user.username:
        raise InvalidState(
            f"you cannot delete yourself ({user.username!r}): another admin can",
            field="username",
        )
    await _keep_an_admin(session, user, "delete")
    _user_event(session, "deleted", user)
    await session.delete(user)
    await session.flush()


def _user_event(
    session: AsyncSession, kind: str, user: User, *, changed: list[str] | None = None
) -> None:
    """A user's audit event (users are no inventory objects: their creation, by the CLI
    or an admin, is not one)."""
    payload = {"username": user.username, "role": user.role, "is_active": user.is_active}
    record_event(
        session, kind=kind, object=user, object_type="user", payload=payload, changed=changed or ()
    )


async def _keep_an_admin(session: AsyncSession, user: User, doing: str) -> None:
    """Refuse to take the last active admin away. The active admins' rows are locked first
    (PostgreSQL), so two admins demoting each other at once cannot both succeed."""
    if user.role != "admin" or not user.is_active:
        return
    admins = select(User.id).where(User.role == "admin", User.is_active.is_(True))
    ids = set((await session.execute(admins.with_for_update())).scalars())
    if ids - {user.id}:
        return
    raise InvalidState(
        f"cannot {doing} {user.username!r}: it is the last active admin (make another admin first)",
        field="username",
    )


# -- listing and revoking tokens of both kinds --------------------------------------------

API = "api"
SUBCONTRACTOR = "subcontractor"
TOKEN_KINDS = (API, SUBCONTRACTOR)
_KIND_PREFIX = {"ctr": API, "sct": SUBCONTRACTOR}


@dataclass(frozen=True)
class TokenInfo:
    """A token as an administrator sees it: never its secret."""

    key: str
    kind: str  # "api" (a user's) or "subcontractor"
    name: str  # the description of an API token, the subcontractor's name
    owner: str | None  # the user of an API token
    created: dt.datetime
    last_used_at: dt.datetime | None  # not kept for subcontractor tokens
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    active: bool

    def as_dict(self) -> dict[str, Any]:
        stamps = ("created", "last_used_at", "expires_at", "revoked_at")
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in stamps:
            values[name] = None if values[name] is None else values[name].isoformat()
        return values


async def list_tokens(session: AsyncSession, *, everything: bool = False) -> list[TokenInfo]:
    """Every API and subcontractor token, oldest first; only usable ones unless
    ``everything`` (revoked and expired ones too)."""
    now = utcnow()
    found: list[TokenInfo] = []
    api = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
    for token, username in (await session.execute(api)).all():
        found.append(_info(token, API, token.description, username, token.last_used_at, now))
    for sub in (await session.execute(select(SubcontractorToken))).scalars():
        found.append(_info(sub, SUBCONTRACTOR, sub.name, None, None, now))
    found.sort(key=lambda info: (info.created, info.kind, info.key))
    return found if everything else [info for info in found if info.active]


def _info(
    token: ApiToken | SubcontractorToken,
    kind: str,
    name: str,
    owner: str | None,
    last_used_at: dt.datetime | None,
    now: dt.datetime,
) -> TokenInfo:
    return TokenInfo(
        key=token.key,
        kind=kind,
        name=name,
        owner=owner,
        created=token.created,
        last_used_at=last_used_at,
        expires_at=getattr(token, "expires_at", None),
        revoked_at=token.revoked_at,
        active=_usable(token, now),
    )


async def api_tokens(
    session: AsyncSession, *, username: str | None = None, include_revoked: bool | None = None
) -> Listing:
    """API tokens by id, usable ones only unless ``include_revoked``; of one user."""
    query = select(ApiToken)
    if username is not None:
        query = query.where(ApiToken.user_id == (await get_user(session, username)).id)
    if not include_revoked:
        now = utcnow()
        query = query.where(
            ApiToken.revoked_at.is_(None),
            (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
        )
    return Listing.of(ApiToken, ApiToken.id, query=query)


async def revoke_any_token(session: AsyncSession, key: str, *, kind: str | None = None) -> str:
    """Revoke the API or subcontractor token ``key`` (``ctr_<key>``, ``sct_<key>`` or the
    bare key; ``kind`` when a bare key names one of each); returns its kind."""
    prefix, _, bare = key.partition("_")
    if bare and prefix in _KIND_PREFIX:
        if kind is not None and kind != _KIND_PREFIX[prefix]:
            raise InvalidInput(
                f"{key!r} is the key of an {_KIND_PREFIX[prefix]} token, not of a {kind} token",
                field="kind",
            )
        key, kind = bare, _KIND_PREFIX[prefix]
    if kind is not None and kind not in TOKEN_KINDS:
        raise InvalidInput(f"kind {kind!r} is not one of {', '.join(TOKEN_KINDS)}", field="kind")
    kinds = [kind] if kind is not None else list(TOKEN_KINDS)
    api = await _key_count(session, ApiToken, key) if API in kinds else 0
    sub = await _key_count(session, SubcontractorToken, key) if SUBCONTRACTOR in kinds else 0
    if api and sub:
        raise InvalidInput(
            f"{key!r} names an API token and a subcontractor token: give the kind",
            field="kind",
        )
    if api:
        await revoke_token(session, key)
        return API
    if sub:
        token = await get_by(session, SubcontractorToken, SubcontractorToken.key, key, what="key")
        _check_not_revoked(token, f"subcontractor token {key!r}")
        token.revoked_at = utcnow()
        await session.flush()
        record_event(
            session,
            kind="revoked",
            object=token,
            object_type="subcontractor_token",
            payload={"key": token.key, "name": token.name},
        )
        return SUBCONTRACTOR
    raise NotFound(f"token {key!r} does not exist", field="key")


async def _key_count(
    session: AsyncSession, model: type[ApiToken] | type[SubcontractorToken], key: str
) -> int:
    query = select(func.count()).select_from(model).where(model.key == key)
    return int((await session.execute(query)).scalar_one())
