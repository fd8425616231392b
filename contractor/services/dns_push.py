"""DNS live updates, the database side: which zones need a push, what each push must change,
and how it went (``docs/dns.md``, "Live updates").

The pusher (``contractor.events.dns_updates``) works in three steps, as the webhook worker
does, so that no transaction is open while the server is asked:

1. ``push_needed`` (a reader): an event that can change DNS came after the pusher's cursor,
   or a failed zone is due again;
2. ``plan_pushes`` (one writer transaction): publishes the zones (``services.dns``: their
   serials move with their content), and for every zone published by updates whose content
   differs from what the server last acknowledged, leases the zone, logs a ``DnsPush`` and
   returns a ``Planned`` push: the record sets the server holds (null: unknown, read them
   by a zone transfer first) and those it should hold;
3. ``record_push`` (one writer transaction): the server's answer; acknowledged record sets
   become the zone's, a failure is retried after a capped backoff with its error kept.

Pushes follow the outbox: every committed change is in the inventory the next plan reads,
so a push carries every change committed before it (several at once when they come faster
than the server answers), and a zone's pushes go out one at a time, each from what the
server acknowledged before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

import bindgen
from contractor.models import Event, utcnow
from contractor.models.dns_push import DnsPush, DnsPushCursor, DnsPushZone
from contractor.services.common import backoff
from contractor.services.dns import DNS_OBJECT_TYPES, dns_events, publish_zones
from contractor.services.dns_zones import DnsZone
from contractor.services.events import latest_cursor

__all__ = [
    "DNS_OBJECT_TYPES",
    "Outcome",
    "Planned",
    "backoff",
    "list_pushes",
    "list_zone_states",
    "next_due",
    "plan_pushes",
    "push_needed",
    "record_push",
    "records_from_json",
    "records_to_json",
]


def records_to_json(rrsets: bindgen.RRsets) -> list[Any]:
    return [
        [name, rdtype, rrset.ttl, list(rrset.rdatas)]
        for (name, rdtype), rrset in sorted(rrsets.items())
    ]


def records_from_json(rows: Iterable[Sequence[Any]]) -> bindgen.RRsets:
    return {
        (str(name), str(rdtype)): bindgen.RRset(int(ttl), tuple(rdatas))
        for name, rdtype, ttl, rdatas in rows
    }


async def _cursor(session: AsyncSession) -> DnsPushCursor | None:
    return (await session.execute(select(DnsPushCursor).order_by(DnsPushCursor.id))).scalar()


async def push_needed(session: AsyncSession) -> bool:
    """Whether a plan would find work: never planned yet, a change to DNS after the cursor,
    or a zone due (a retry, or a lease that ran out)."""
    row = await _cursor(session)
    if row is None:
        return True
    changed = exists().where(Event.id > row.cursor, dns_events())
    now = utcnow()
    due = exists().where(
        DnsPushZone.state.in_(("pending", "failing")),
        DnsPushZone.next_attempt_at <= now,
        or_(DnsPushZone.leased_until.is_(None), DnsPushZone.leased_until <= now),
    )
    return bool((await session.execute(select(changed | due))).scalar())


async def next_due(session: AsyncSession) -> dt.datetime | None:
    """When the earliest pending or failing zone is due again, counting the lease of a zone
    another process is sending (None: none is)."""
    rows = await session.execute(
        select(DnsPushZone.next_attempt_at, DnsPushZone.leased_until).where(
            DnsPushZone.state.in_(("pending", "failing"))
        )
    )
    times = [max(due, leased) if leased is not None else due for due, leased in rows]
    return min(times, default=None)


@dataclass(frozen=True)
class Planned:
    """One push to send: turn ``known`` (null: read the server's zone first) into
    ``target``, the zone's records at ``serial``."""

    push_id: int
    zone: str
    serial: int
    content_hash: str
    known: bindgen.RRsets | None
    target: bindgen.RRsets
    attempt: int


def _lock(query: Any, session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update()
    return query


async def zone_rows(
    session: AsyncSession, names: Iterable[str] | None = None
) -> dict[str, DnsPushZone]:
    query = select(DnsPushZone).order_by(DnsPushZone.id)
    if names is not None:
        query = query.where(DnsPushZone.name.in_(list(names)))
    return {row.name: row for row in (await session.execute(_lock(query, session))).scalars()}


async def plan_pushes(
    session: AsyncSession,
    *,
    wanted: Callable[[str], bool],
    lease_seconds: float,
    only: str | None = None,
    resync: bool = False,
) -> list[Planned]:
    """Publish the zones, then plan a push for every zone ``wanted`` (published by updates)
    whose content differs from what the server acknowledged and that no other process is
    sending now; a failing zone waits for its retry time. ``only`` plans that zone alone.
    ``resync`` plans every chosen zone, due or not, from a fresh zone transfer (what the
    server holds), even when nothing changed. An ordinary plan moves the pusher's cursor to
    the newest event. The caller commits."""
    newest = await latest_cursor(session)
    zones: list[DnsZone] = await publish_zones(session)
    now = utcnow()
    chosen = [z for z in zones if wanted(z.name) and (only is None or z.name == only)]
    rows = await zone_rows(session)
    planned: list[Planned] = []
    held = False  # a zone another process is sending: its later changes are not planned yet
    built: dict[str, DnsZone] = {}  # the zones with their records, read once when needed
    for zone in chosen:
        row = rows.get(zone.name)
        if row is None:
            row = DnsPushZone(name=zone.name, state="pending", attempts=0, next_attempt_at=now)
            session.add(row)
        if not zone.valid or zone.serial is None or zone.content_hash is None:
            row.state = "invalid"
            row.last_error = "the zone cannot be generated (the server keeps its last good "
            row.last_error += "records): " + "; ".join(zone.problems)
            continue
        if row.leased_until is not None and row.leased_until > now:
            held = True  # another process is sending it
            continue
        if resync:
            row.records = None
        elif row.records is not None and (row.content_hash, row.serial) == (
            zone.content_hash,
            zone.serial,
        ):
            row.state, row.last_error, row.attempts = "current", None, 0
            continue
        if not resync and row.state == "failing" and row.next_attempt_at > now:
            continue  # retried when due
        if zone.data is None:  # answered from the stored rows: the records are needed now
            built = built or {z.name: z for z in await publish_zones(session, rebuild=True)}
            zone = built[zone.name]
            if zone.data is None or zone.serial is None or zone.content_hash is None:
                continue  # it cannot be made any more: the next plan marks it
        assert zone.serial is not None  # checked above
        assert zone.content_hash is not None
        target = bindgen.zone_rrsets(zone.data, zone.serial)
        known = None if row.records is None else records_from_json(row.records)
        if known is not None and not bindgen.diff_rrsets(known, target):
            row.serial, row.content_hash = zone.serial, zone.content_hash
            row.state, row.last_error, row.attempts = "current", None, 0
            continue
        if row.state != "failing":
            row.state = "pending"
        row.leased_until = now + dt.timedelta(seconds=lease_seconds)
        row.last_attempt_at = now
        push = DnsPush(
            zone=zone.name,
            kind="resync" if resync else "update",
            state="sending",
            started_at=now,
            attempt=row.attempts + 1,
            serial=zone.serial,
            cursor=newest,
            deleted=0,
            added=0,
        )
        session.add(push)
        await session.flush()
        planned.append(
            Planned(push.id, zone.name, zone.serial, zone.content_hash, known, target, push.attempt)
        )
    cursor = await _cursor(session)
    if cursor is None:
        session.add(DnsPushCursor(cursor=newest))
    elif not resync and not held:  # (held: look again once that push is recorded)
        cursor.cursor = max(cursor.cursor, newest)
    await session.flush()
    return planned


@dataclass(frozen=True)
class Outcome:
    """How a push went. ``records`` is what the server holds now as far as we know (the
    target when acknowledged; what was read and what was acknowledged of it when a later
    part failed; None when still unknown)."""

    planned: Planned
    acknowledged: bool
    records: bindgen.RRsets | None
    deleted: int = 0
    added: int = 0
    rcode: str | None = None
    error: str | None = None


async def record_push(
    session: AsyncSession, outcome: Outcome, *, retry_base: float, retry_cap: float
) -> DnsPush:
    """Store how a push went; the caller commits."""
    now = utcnow()
    planned = outcome.planned
    push = await session.get(DnsPush, planned.push_id)
    assert push is not None
    push.finished_at = now
    push.deleted, push.added = outcome.deleted, outcome.added
    push.rcode = outcome.rcode
    push.error = None if outcome.error is None else outcome.error[:2000]
    push.state = "acknowledged" if outcome.acknowledged else "failed"
    row = (await zone_rows(session, [planned.zone])).get(planned.zone)
    if row is None:  # the zone's row went meanwhile: nothing to keep
        return push
    row.leased_until = None
    if outcome.records is not None:
        row.records = records_to_json(outcome.records)
    if outcome.acknowledged:
        row.serial, row.content_hash = planned.serial, planned.content_hash
        row.state, row.attempts, row.last_error = "current", 0, None
        row.last_success_at = now
        row.next_attempt_at = now
    else:
        row.attempts += 1
        row.state = "failing"
        row.last_error = push.error
        row.next_attempt_at = now + dt.timedelta(
            seconds=backoff(row.attempts, base=retry_base, cap=retry_cap)
        )
    await session.flush()
    return push


async def list_pushes(
    session: AsyncSession, *, zone: str | None = None, limit: int = 50
) -> list[DnsPush]:
    """The push log, newest first."""
    query = select(DnsPush).order_by(DnsPush.id.desc()).limit(max(1, min(limit, 1000)))
    if zone is not None:
        query = query.where(DnsPush.zone == zone.strip().lower().rstrip("."))
    return list((await session.execute(query)).scalars())


async def list_zone_states(session: AsyncSession) -> list[DnsPushZone]:
    return list((await session.execute(select(DnsPushZone).order_by(DnsPushZone.name))).scalars())
