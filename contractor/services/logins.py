"""Logging in with a username and password: the same work whoever asks, throttled, audited.

A login is three steps, so that the slow part holds no transaction (on SQLite, no write
lock) and so that refusals are written even though the answer is an error:

1. ``start_login`` (a transaction of its own): refuse at once while the username or the
   client address has too many refusals in the window, else note the attempt as
   ``checking`` (it counts against both until it is known) and read the user;
2. ``check_login`` (no transaction): exactly one argon2 computation in every case; for an
   unknown user, or one without a password, a hash of the attempt at the current cost (the
   same work as verifying, thrown away), so the answer takes as long for a username that
   does not exist as for a wrong password;
3. ``finish_login`` (a transaction of its own): a success removes the attempt (and the
   username's refusals from that address); a refusal keeps it with its reason.

Every refusal (unknown user, wrong password, no password, disabled user, throttled) is an
``login_refused`` event of ``object_type`` ``login`` (payload: username, address, reason;
never the password); a success is a ``login`` event of the user. The client is told only
"unknown user or wrong password", or to retry after N seconds.

The attempts live in the database (``LoginAttempt``), so every server process counts every
attempt; on PostgreSQL the check-and-note of step 1 runs under a transaction-scoped advisory
lock, so that concurrent attempts cannot all pass a check that each alone would fail. The
throttle is a sliding window: with N refusals in the last W seconds, the next attempt is
refused until the oldest of those N is W seconds old.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy import ColumnElement, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import Throttled
from contractor.models import LoginAttempt, User, utcnow
from contractor.services.auth import PASSWORD_OK, password_outcome
from contractor.services.common import added
from contractor.services.events import record_event
from contractor.settings import Settings

__all__ = ["OK", "LoginCheck", "LoginThrottle", "check_login", "finish_login", "start_login"]

OK: Final = PASSWORD_OK
REFUSED: Final = "login_refused"
# Serialises step 1 across PostgreSQL sessions ("logins" in ASCII).
_LOCK: Final = 0x6C6F67696E73
_COLUMN_LENGTH: Final = 64


@dataclass(frozen=True)
class LoginThrottle:
    """How many refusals a username and a client address may have within the window."""

    window_seconds: float
    per_user: int
    per_address: int

    @classmethod
    def of(cls, settings: Settings) -> LoginThrottle:
        return cls(
            window_seconds=settings.login_window_seconds,
            per_user=settings.login_max_failures_per_user,
            per_address=settings.login_max_failures_per_address,
        )


@dataclass(frozen=True)
class LoginCheck:
    """What step 1 found: the attempt's row and the user of that name (None: none)."""

    attempt_id: int
    username: str
    address: str
    user: User | None
    throttled: Throttled | None = None  # refused without a look at the password


async def start_login(
    session: AsyncSession,
    *,
    username: str,
    address: str,
    throttle: LoginThrottle,
    now: dt.datetime | None = None,
) -> LoginCheck:
    """Step 1. While ``username`` or ``address`` has used up its refusals, the check holds
    the ``Throttled`` refusal (noted, to be committed) and no user."""
    now = now or utcnow()
    username, address = username[:_COLUMN_LENGTH], address[:_COLUMN_LENGTH]
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    window = dt.timedelta(seconds=throttle.window_seconds)
    await session.execute(delete(LoginAttempt).where(LoginAttempt.at <= now - window))
    wait = max(
        await _wait(session, LoginAttempt.username == username, throttle.per_user, window, now),
        await _wait(session, LoginAttempt.address == address, throttle.per_address, window, now),
    )
    attempt = await added(session, LoginAttempt(at=now, username=username, address=address))
    check = LoginCheck(attempt_id=attempt.id, username=username, address=address, user=None)
    if wait:
        attempt.outcome = "throttled"
        _refused(session, attempt)
        refusal = Throttled(f"too many failed logins: retry after {wait} seconds", retry_after=wait)
        return dataclasses.replace(check, throttled=refusal)
    user = (
        await session.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    return dataclasses.replace(check, user=user)


async def _wait(
    session: AsyncSession,
    which: ColumnElement[bool],
    limit: int,
    window: dt.timedelta,
    now: dt.datetime,
) -> int:
    """Seconds until fewer than ``limit`` counted attempts (refused or being checked; not
    those refused for the throttle itself) of ``which`` remain in the window; 0: none."""
    oldest_counted = (
        select(LoginAttempt.at)
        .where(which, LoginAttempt.at > now - window, LoginAttempt.outcome != "throttled")
        .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
        .offset(limit - 1)
        .limit(1)
    )
    at = (await session.execute(oldest_counted)).scalar_one_or_none()
    if at is None:
        return 0
    return max(1, math.ceil((at + window - now).total_seconds()))


async def check_login(check: LoginCheck, password: str, *, hasher: PasswordHasher) -> str:
    """Step 2: ``OK``, or why the login is refused (``auth.password_outcome``: the same
    work whatever the case)."""
    return await password_outcome(check.user, password, hasher=hasher)


async def finish_login(session: AsyncSession, check: LoginCheck, outcome: str) -> User | None:
    """Step 3: the user for ``OK`` (the attempt forgotten), else None (the refusal noted)."""
    user = None
    if outcome == OK and check.user is not None:
        # Read again: the user may have been disabled or deleted since step 1.
        user = await session.get(User, check.user.id, populate_existing=True)
        if user is None or not user.is_active:
            outcome, user = ("unknown_user" if user is None else "disabled"), None
    attempt = await session.get(LoginAttempt, check.attempt_id)
    if user is None:
        if attempt is None:  # pruned meanwhile (a check slower than the window): note it again
            attempt = await added(
                session, LoginAttempt(username=check.username, address=check.address)
            )
        attempt.outcome = outcome
        _refused(session, attempt)
        return None
    await session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.username == check.username, LoginAttempt.address == check.address
        )
    )
    _audit(session, "login", user, "user", username=user.username, address=check.address)
    return user


def _refused(session: AsyncSession, attempt: LoginAttempt) -> None:
    _audit(
        session,
        REFUSED,
        attempt,
        "login",
        username=attempt.username,
        address=attempt.address,
        reason=attempt.outcome,
    )


def _audit(session: AsyncSession, kind: str, row: object, object_type: str, **payload: str) -> None:
    """The audit event of one login or refusal (never the password tried)."""
    record_event(session, kind=kind, object=row, object_type=object_type, payload=payload)
