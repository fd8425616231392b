"""Logging in: the throttle per username and per client address (a sliding window), its
release, the audit events of refusals, and a success forgetting its username's refusals."""

from __future__ import annotations

import datetime as dt
import json

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Event, LoginAttempt, utcnow
from contractor.services import auth, logins
from contractor.services.events import latest_cursor

HASHER = PasswordHasher(memory_cost=64, time_cost=1)
PASSWORD = "right-password"


async def attempt(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    address: str,
    throttle: logins.LoginThrottle,
    now: dt.datetime,
) -> str:
    """One login, committed as the GraphQL field commits it: its outcome, or
    ``throttled <seconds>``."""
    check = await logins.start_login(
        session, username=username, address=address, throttle=throttle, now=now
    )
    if check.throttled is not None:
        await session.commit()
        return f"throttled {check.throttled.retry_after}"
    outcome = await logins.check_login(check, password, hasher=HASHER)
    await session.commit()
    user = await logins.finish_login(session, check, outcome)
    await session.commit()
    assert (user is not None) == (outcome == logins.OK)
    return outcome


async def test_per_user_throttle_engages_and_releases(session: AsyncSession) -> None:
    await auth.create_user(
        session, username="tess", role="reader", password=PASSWORD, hasher=HASHER
    )
    throttle = logins.LoginThrottle(window_seconds=60, per_user=3, per_address=100)
    t0 = utcnow()
    for n in range(3):  # from three addresses: the username's count is what stops it
        outcome = await attempt(
            session,
            "tess",
            "wrong-password",
            address=f"10.0.0.{n}",
            throttle=throttle,
            now=t0 + dt.timedelta(seconds=10 * n),
        )
        assert outcome == "wrong_password"
    # The right password is not even looked at while throttled: the oldest of the three
    # refusals leaves the window at t0 + 60.
    at_25 = t0 + dt.timedelta(seconds=25)
    assert await attempt(
        session, "tess", PASSWORD, address="10.0.0.7", throttle=throttle, now=at_25
    ) == ("throttled 35")
    # An unknown username is throttled in just the same way (nothing tells them apart).
    for _ in range(3):
        await attempt(session, "ghost", "x", address="10.1.0.1", throttle=throttle, now=t0)
    assert await attempt(
        session, "ghost", "x", address="10.1.0.2", throttle=throttle, now=at_25
    ) == ("throttled 35")
    # Throttled refusals do not count: once the first refusal is out, one more try.
    at_61 = t0 + dt.timedelta(seconds=61)
    assert (
        await attempt(session, "tess", PASSWORD, address="10.0.0.7", throttle=throttle, now=at_61)
        == logins.OK
    )


async def test_per_address_throttle_engages_and_releases(session: AsyncSession) -> None:
    throttle = logins.LoginThrottle(window_seconds=30, per_user=100, per_address=3)
    t0 = utcnow()
    for n in range(3):
        outcome = await attempt(
            session, f"user{n}", "guess", address="192.0.2.9", throttle=throttle, now=t0
        )
        assert outcome == "unknown_user"
    later = t0 + dt.timedelta(seconds=5)
    assert await attempt(
        session, "user9", "guess", address="192.0.2.9", throttle=throttle, now=later
    ) == ("throttled 25")
    # Another address is not held up by this one.
    assert (
        await attempt(session, "user9", "guess", address="192.0.2.10", throttle=throttle, now=later)
        == "unknown_user"
    )
    released = t0 + dt.timedelta(seconds=31)
    assert (
        await attempt(
            session, "user9", "guess", address="192.0.2.9", throttle=throttle, now=released
        )
        == "unknown_user"
    )


async def test_refusals_are_audit_events_without_the_password(session: AsyncSession) -> None:
    start = await latest_cursor(session)
    user = await auth.create_user(
        session, username="audited", role="reader", password=PASSWORD, hasher=HASHER
    )
    await auth.create_user(session, username="nopass", role="reader")
    await session.commit()
    throttle = logins.LoginThrottle(window_seconds=60, per_user=4, per_address=100)
    now = utcnow()
    secret = "s3cret-attempt-XYZ"
    address = "198.51.100.4"
    results = [
        await attempt(session, "nobody-here", secret, address=address, throttle=throttle, now=now),
        await attempt(session, "audited", secret, address=address, throttle=throttle, now=now),
        await attempt(session, "nopass", secret, address=address, throttle=throttle, now=now),
    ]
    user.is_active = False
    await session.commit()
    results.append(
        await attempt(session, "audited", PASSWORD, address=address, throttle=throttle, now=now)
    )
    for _ in range(3):
        await attempt(session, "audited", secret, address=address, throttle=throttle, now=now)
    results.append(
        await attempt(session, "audited", secret, address=address, throttle=throttle, now=now)
    )
    assert results == ["unknown_user", "wrong_password", "no_password", "disabled", "throttled 60"]

    rows = list(
        (await session.execute(select(Event).where(Event.id > start).order_by(Event.id))).scalars()
    )
    refused = [row for row in rows if row.kind == logins.REFUSED]
    assert [row.payload["reason"] for row in refused][:4] == [
        "unknown_user",
        "wrong_password",
        "no_password",
        "disabled",
    ]
    assert refused[-1].payload == {"username": "audited", "address": address, "reason": "throttled"}
    assert {row.object_type for row in refused} == {"login"}
    assert refused[0].object_name == "nobody-here"
    assert all(row.actor is None for row in refused)
    everything = json.dumps([[row.object_name, row.payload, row.changed] for row in rows])
    assert secret not in everything
    assert PASSWORD not in everything
    assert "argon2" not in everything


async def test_success_forgets_the_usernames_refusals_from_that_address(
    session: AsyncSession,
) -> None:
    await auth.create_user(
        session, username="typo", role="reader", password=PASSWORD, hasher=HASHER
    )
    throttle = logins.LoginThrottle(window_seconds=60, per_user=3, per_address=100)
    now = utcnow()
    for address in ("203.0.113.1", "203.0.113.1", "203.0.113.2"):
        await attempt(session, "typo", "mistyped", address=address, throttle=throttle, now=now)
    # three refusals: throttled now, so free the window of the others first
    assert (
        await attempt(session, "typo", PASSWORD, address="203.0.113.1", throttle=throttle, now=now)
    ).startswith("throttled")
    later = now + dt.timedelta(seconds=61)
    await attempt(session, "typo", "mistyped", address="203.0.113.2", throttle=throttle, now=later)
    assert (
        await attempt(
            session, "typo", PASSWORD, address="203.0.113.1", throttle=throttle, now=later
        )
        == logins.OK
    )
    left = (
        await session.execute(select(LoginAttempt.address).where(LoginAttempt.username == "typo"))
    ).scalars()
    assert sorted(left) == ["203.0.113.2"]  # another address's refusal stays counted
    events = (
        await session.execute(
            select(Event).where(Event.kind == "login", Event.object_name == "typo")
        )
    ).scalars()
    assert [event.payload for event in events] == [{"username": "typo", "address": "203.0.113.1"}]
