"""Users, roles, passwords and tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Conflict, InvalidInput, Unauthorized
from contractor.models import ApiToken, utcnow
from contractor.services import auth


async def test_password_is_hashed_with_argon2id(session: AsyncSession) -> None:
    user = await auth.create_user(session, username="ops", role="operator", password="s3cret-pass")
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in user.password_hash
    assert (await auth.authenticate_password(session, "ops", "s3cret-pass")).id == user.id
    with pytest.raises(Unauthorized, match="unknown user or wrong password"):
        await auth.authenticate_password(session, "ops", "wrong-pass")
    with pytest.raises(Unauthorized, match="unknown user or wrong password"):
        await auth.authenticate_password(session, "nobody", "s3cret-pass")


async def test_token_round_trip_and_refusals(session: AsyncSession) -> None:
    user = await auth.create_user(session, username="svc", role="reader")
    new = await auth.create_token(session, user=user, description="ci")
    stored = (await session.execute(select(ApiToken))).scalar_one()
    assert new.text.split(".", 1)[1] not in stored.secret_hash
    assert (await auth.authenticate_token(session, new.text)).username == "svc"
    assert stored.last_used_at is not None
    tampered = new.text[:-2] + ("aa" if not new.text.endswith("aa") else "bb")
    with pytest.raises(Unauthorized, match="invalid API token"):
        await auth.authenticate_token(session, tampered)
    with pytest.raises(Unauthorized, match="malformed"):
        await auth.authenticate_token(session, "Bearer nonsense")
    await auth.revoke_token(session, stored.key)
    with pytest.raises(Unauthorized, match="invalid API token"):
        await auth.authenticate_token(session, new.text)


async def test_expired_token_and_inactive_user(session: AsyncSession) -> None:
    user = await auth.create_user(session, username="tmp", role="reader")
    with pytest.raises(InvalidInput, match="expires_at must be in the future"):
        await auth.create_token(session, user=user, expires_at=utcnow() - dt.timedelta(seconds=1))
    new = await auth.create_token(session, user=user, expires_at=utcnow() + dt.timedelta(hours=1))
    new.token.expires_at = utcnow() - dt.timedelta(seconds=1)
    with pytest.raises(Unauthorized):
        await auth.authenticate_token(session, new.text)
    other = await auth.create_token(session, user=user)
    user.is_active = False
    with pytest.raises(Unauthorized):
        await auth.authenticate_token(session, other.text)


async def test_roles(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput, match="role 'root' is not one of reader, operator, admin"):
        await auth.create_user(session, username="x", role="root")
    await auth.create_user(session, username="dup", role="admin")
    with pytest.raises(Conflict):
        await auth.create_user(session, username="dup", role="admin")
    assert auth.role_allows("admin", "operator")
    assert auth.role_allows("operator", "operator")
    assert not auth.role_allows("reader", "operator")
