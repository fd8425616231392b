"""Users, their roles, API tokens, and refused logins. Secrets are stored only as argon2id
hashes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import Base, Timestamped, UTCDateTime, one_of, utcnow

ROLES = ("reader", "operator", "admin")
# Why a login was refused; "checking" while its password is being verified.
LOGIN_OUTCOMES = (
    "checking",
    "unknown_user",
    "wrong_password",
    "no_password",
    "disabled",
    "throttled",
)


class User(Timestamped, Base):
    __tablename__ = "user_account"
    __table_args__ = (one_of("role", ROLES, name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiToken(Timestamped, Base):
    """A bearer token ``<key>.<secret>``: the key finds the row, the secret is verified."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """A login being checked or refused, kept for the throttle's window (successful ones are
    removed). Counted per username (whether or not it exists) and per client address, in the
    database so that every server process sees every attempt."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        one_of("outcome", LOGIN_OUTCOMES, name="outcome_known"),
        Index("ix_login_attempt_username", "username", "at"),
        Index("ix_login_attempt_address", "address", "at"),
        Index("ix_login_attempt_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20), default="checking")
