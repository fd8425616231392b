"""The webhook worker: turns new events into deliveries and posts them, signed.

It runs inside ``contractor serve`` and ``contractor foreman``
(``CONTRACTOR_WEBHOOKS_ENABLED``, on by default); any number of processes share the work.
Each round, in one transaction, it (1) turns events after every active target's cursor into
deliveries, (2) records how the finished attempts went and (3) claims due deliveries, up to
``CLAIM_AHEAD`` times its request slots (``webhook_per_target`` per target,
``webhook_concurrency`` in all); then it posts them, at most a slot's worth at once: a
finished request starts the next claimed one straight away, without waiting for the
database, so a receiver is kept busy while outcomes are written in batches. A slow
receiver only slows itself. The worker sleeps until the broadcaster reads new events, an
attempt finishes, or the next retry is due.

Every request is a POST of ``{"delivery": "<id>", "attempt": n, "event": {...}}`` with::

    Content-Type: application/json
    User-Agent: Contractor-Webhook/1
    X-Contractor-Delivery: <delivery id; the same on every retry of it>
    X-Contractor-Event: <event cursor>
    X-Contractor-Attempt: <n>
    X-Contractor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A 2xx answer delivers it; anything else (or no answer within the timeout) is retried with
exponential backoff and jitter until the delivery is older than the maximum age.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor.db import create_autocommit_engine, create_engine, create_session_factory
from contractor.events.broadcast import EventBroadcaster
from contractor.events.dns_updates import DnsPusher
from contractor.events.http import WebhookClient
from contractor.listen import Signal, stop_if_cancelled
from contractor.metrics import instruments
from contractor.models import utcnow
from contractor.services import pruning, webhooks
from contractor.services.events import event_document
from contractor.settings import Settings

__all__ = ["WebhookWorker", "events_running", "prune_periodically", "sign", "verify"]

log = logging.getLogger(__name__)

USER_AGENT = "Contractor-Webhook/1"
# Deliveries claimed ahead, as a multiple of the request slots (per target and in all): a
# round's transaction takes a while on a busy database (on a loaded machine every round trip
# waits for a core too: rounds of 0.1-1 s were measured), and a receiver must not run dry
# meanwhile. Ordering is safe at any depth (an object's next delivery is claimable only
# once its earlier one is recorded); the lease does not grow with the depth: a claim is
# posted only while its lease still covers the request (``_post_by``), and one that
# waited longer in the queue is handed back unposted.
CLAIM_AHEAD = 32
# The lease, in request timeouts (``_lease``).
LEASE_REQUESTS = 8
FAN_OUT_BATCH = 1000  # events turned into deliveries per transaction
SHUTDOWN_SECONDS = 10.0


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Contractor-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, tolerance: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


class WebhookWorker:
    """Deliveries are claimed ahead (up to ``CLAIM_AHEAD`` times the request slots, per
    target and in all) and queued here; a finished request starts the next queued one at
    once, without waiting for the database. Outcomes are recorded in batches by the next
    round, in the transaction that claims more."""

    def __init__(
        self,
        writer_sessions: async_sessionmaker[AsyncSession],
        *,
        readers: async_sessionmaker[AsyncSession] | None = None,
        settings: Settings,
        broadcaster: EventBroadcaster,
    ) -> None:
        self._sessions = writer_sessions
        # Looking for work only reads: on SQLite that must not take the write lock.
        self._readers = readers or writer_sessions
        self._settings = settings
        self._broadcaster = broadcaster
        self._held: dict[int, int] = {}  # claimed and not yet recorded, per target
        self._targets: dict[int, int] = {}  # delivery id -> target id, for those
        self._queued: dict[int, deque[webhooks.Claimed]] = {}  # claimed, not yet posted
        self._post_by: dict[int, float] = {}  # delivery id -> monotonic: post it only before
        self._stale: list[webhooks.Claimed] = []  # queued past that: to hand back
        self._posting: dict[int, int] = {}  # requests in flight, per target
        self._outcomes: list[webhooks.Outcome] = []
        self._fanned_out: int | None = None  # the broadcaster's position at the last fan-out
        # The last fan-out had nothing to do (no active target behind, as when there is no
        # target at all): a read then decides first whether the next one has, as on SQLite,
        # instead of a write transaction on every new event.
        self._fan_out_idle = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished = Signal()

    async def run(self) -> None:
        settings = self._settings
        # keep-alive connections for every request slot: a warm pool, no reconnects
        async with WebhookClient(
            timeout=settings.webhook_timeout_seconds, keep=settings.webhook_concurrency
        ) as client:
            try:
                while True:
                    woken = self._broadcaster.changed.waiter()
                    finished = self._finished.waiter()
                    wait = settings.webhook_idle_seconds
                    try:
                        wait = min(wait, await self._round(client))
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # the database went away: try again later
                        stop_if_cancelled()
                        log.warning("webhook round failed: %s", error)
                    await _first(woken, finished, seconds=max(wait, 0.01))
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self._hand_back()

    async def _hand_back(self) -> None:
        """Stopping: record what finished and give back what was never posted, so nobody
        waits for their leases to run out (bounded; a failure leaves that to the leases)."""
        queued = [claim for queue in self._queued.values() for claim in queue] + self._stale
        outcomes, self._outcomes = self._outcomes, []
        if not queued and not outcomes:
            return
        try:
            async with asyncio.timeout(3.0):
                async with self._sessions() as session, session.begin():
                    await self._record(session, outcomes)
                    await webhooks.release(session, queued)
        except Exception as error:  # also a timeout: the leases take care of it
            log.warning("could not hand back webhook deliveries: %s", error)

    async def _record(self, session: AsyncSession, outcomes: list[webhooks.Outcome]) -> None:
        """Store what finished attempts did (retries scheduled with the settings' backoff)."""
        settings = self._settings
        await webhooks.record_outcomes(
            session,
            outcomes,
            retry_base=settings.webhook_retry_base_seconds,
            retry_cap=settings.webhook_retry_max_seconds,
            max_age=settings.webhook_max_age_seconds,
        )

    async def _round(self, client: WebhookClient) -> float:
        """One round of work; returns how long until the next retry is due.

        A busy round is one write transaction: the new events turned into deliveries, the
        finished attempts recorded and the next ones claimed. On SQLite, where a write
        transaction (even an empty one) holds the database's lock, and on any database
        after a fan-out that had nothing to do, a read decides first whether there are new
        deliveries to make (and, when not, when the next attempt is due); a round woken by
        the timer alone reads whether anything is due before it writes."""
        settings = self._settings
        # new deliveries only come from new events (a new target starts at the newest)
        position = self._broadcaster.position
        fan_out = self._fanned_out is None or position != self._fanned_out
        read_due: tuple[dt.datetime | None] | None = None  # next_due, read with the check
        if fan_out and (settings.is_sqlite or self._fan_out_idle):
            async with self._readers() as session:
                fan_out = await webhooks.fan_out_needed(session)
                if not fan_out:
                    read_due = (await webhooks.next_due(session),)
            if not fan_out:
                self._fanned_out = position
        # what the finished attempts did, and the next attempts, in one transaction
        outcomes, self._outcomes = self._outcomes, []
        stale, self._stale = self._stale, []
        for delivery_id in [o.delivery_id for o in outcomes] + [c.delivery_id for c in stale]:
            self._held[self._targets.pop(delivery_id)] -= 1
        free = CLAIM_AHEAD * settings.webhook_concurrency - sum(self._held.values())
        claimed: list[webhooks.Claimed] = []
        looked = False  # whether ``due`` below is still what the database says
        due: dt.datetime | None = None
        if free > 0 and not outcomes and not stale and not fan_out:  # a timer's round: due?
            if read_due is None:
                async with self._readers() as session:
                    read_due = (await webhooks.next_due(session),)
            (due,) = read_due
            looked = True
            if due is None or due > utcnow():
                free = 0  # nothing to claim: no write transaction
        more = False
        claimed_at = time.monotonic()  # before the lease's clock starts: the safe side
        if outcomes or stale or free > 0 or fan_out:
            async with self._sessions() as session, session.begin():
                if fan_out:
                    looked_at = await webhooks.fan_out(session, limit=FAN_OUT_BATCH)
                    more = looked_at == FAN_OUT_BATCH
                    self._fan_out_idle = looked_at == 0
                await self._record(session, outcomes)
                await webhooks.release(session, stale)  # due now again (for any process)
                if free > 0:
                    claimed = await webhooks.claim_deliveries(
                        session,
                        limit=free,
                        lease_seconds=_lease(settings.webhook_timeout_seconds),
                        busy=self._held,
                        per_target=CLAIM_AHEAD * settings.webhook_per_target,
                    )
            if fan_out and not more:
                self._fanned_out = position
        post_by = claimed_at + _post_within(settings.webhook_timeout_seconds)
        for attempt in claimed:
            self._held[attempt.target_id] = self._held.get(attempt.target_id, 0) + 1
            self._targets[attempt.delivery_id] = attempt.target_id
            self._post_by[attempt.delivery_id] = post_by
            self._queued.setdefault(attempt.target_id, deque()).append(attempt)
        self._launch(client)
        if more:
            return 0.0  # more events to turn into deliveries: the next round at once
        if claimed or any(self._held.values()):
            # outcomes wake us when a queue runs low; record the rest within a second
            return min(1.0, settings.webhook_idle_seconds)
        if not looked:
            async with self._readers() as session:
                due = await webhooks.next_due(session)
        if due is None:
            return settings.webhook_idle_seconds
        return (due - utcnow()).total_seconds()

    def _launch(self, client: WebhookClient) -> None:
        """Post queued deliveries while their target and this process have free request
        slots (a target's queue is in claim order: oldest first). One whose lease would no
        longer cover its request is not posted but handed back by the next round (another
        attempt of it could begin once the lease runs out, and an earlier attempt's post
        must not arrive after a later delivery of the same object)."""
        settings = self._settings
        total = sum(self._posting.values())
        now = time.monotonic()
        for target_id, queue in self._queued.items():
            posting = self._posting.get(target_id, 0)
            while (
                queue
                and posting < settings.webhook_per_target
                and total < settings.webhook_concurrency
            ):
                attempt = queue.popleft()
                if self._post_by.pop(attempt.delivery_id) < now:
                    self._stale.append(attempt)
                    self._finished.fire()
                    continue
                posting += 1
                total += 1
                task = asyncio.create_task(self._attempt(client, attempt))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._posting[target_id] = posting

    async def _attempt(self, client: WebhookClient, attempt: webhooks.Claimed) -> None:
        body = json.dumps(
            {
                "delivery": str(attempt.delivery_id),
                "attempt": attempt.attempt,
                "event": event_document(attempt.event),
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Contractor-Delivery": str(attempt.delivery_id),
            "X-Contractor-Event": str(attempt.event.id),
            "X-Contractor-Attempt": str(attempt.attempt),
            "X-Contractor-Signature": sign(attempt.secret, body, int(time.time())),
        }
        code: int | None = None
        error: str | None = None
        try:
            answer = await client.post(attempt.url, body, headers)
            code = answer.status
            if not 200 <= code < 300:
                error = f"HTTP {code}: {answer.text[:200]}"
        except Exception as failure:  # refused, timed out, malformed URL, ...
            stop_if_cancelled()
            error = type(failure).__name__
            if str(failure):
                error += f": {failure}"
        outcome = "delivered" if error is None else "unreachable" if code is None else "http_error"
        instruments().webhook(attempt.target_name, outcome)
        # recorded by the next round, with every other outcome, in one transaction
        self._outcomes.append(webhooks.Outcome(attempt.delivery_id, attempt.attempt, code, error))
        self._posting[attempt.target_id] -= 1
        self._launch(client)  # the next queued one goes now, not after the next round
        queued = self._queued.get(attempt.target_id)
        if not queued or len(queued) <= CLAIM_AHEAD * self._settings.webhook_per_target // 2:
            # time to claim more (a round also comes within a second in any case, and
            # records this outcome with the others)
            self._finished.fire()


def _lease(timeout: float) -> float:
    """How long a claimed delivery stays ours: waiting in the queue for the requests ahead
    of it (its post starts within ``_post_within``), its own request (bounded by the
    timeout), and a margin (clocks, the recording)."""
    return LEASE_REQUESTS * timeout + max(5.0, timeout)


def _post_within(timeout: float) -> float:
    """Seconds after its claim by which a queued delivery's post must start, so that the
    request ends within the lease with the margin to spare; later, it is handed back."""
    return (LEASE_REQUESTS - 1) * timeout


async def _first(*events: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def prune_periodically(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    readers: async_sessionmaker[AsyncSession] | None = None,
) -> None:
    """Remove what is older than the retention now, then every
    ``events_prune_interval_seconds``, until cancelled (on PostgreSQL one process at a time
    does the work; the others skip that round). It looks with ``readers`` first and writes
    only when there is something to remove."""
    while True:
        try:
            async with (readers or sessions)() as session:
                more = await pruning.prune_needed(
                    session, retention_days=settings.events_retention_days
                )
            while more:
                async with sessions() as session, session.begin():
                    done = await pruning.prune(
                        session, retention_days=settings.events_retention_days
                    )
                more = done.more and not done.skipped
                if done.events or done.deliveries:
                    log.info(
                        "pruned %d events and %d deliveries (horizon %d)",
                        done.events,
                        done.deliveries,
                        done.horizon,
                    )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database went away: try again next time
            stop_if_cancelled()
            log.warning("pruning events failed: %s", error)
        await asyncio.sleep(settings.events_prune_interval_seconds)


@asynccontextmanager
async def events_running(
    settings: Settings, broadcaster: EventBroadcaster | None
) -> AsyncIterator[None]:
    """For the block's length, on an engine of their own (background reads and writes never
    wait for, or take, the connections requests use): the broadcaster, when given; the
    webhook worker, when ``webhooks_enabled`` and there is a broadcaster to wake it; the
    DNS pusher, when some zone is published by updates; the pruner, when
    ``events_retention_days`` is set. ``contractor serve`` and ``contractor foreman`` both
    run this."""
    engine = create_engine(settings)  # (an in-memory SQLite database would not be shared)
    readers = create_session_factory(engine)
    writers = create_session_factory(engine, writes=True)
    # The broadcaster's and the webhook worker's reads are single statements: on PostgreSQL
    # they go autocommitted, one round trip each instead of BEGIN, the read and ROLLBACK
    # (what a new event waits for on its way to a subscriber or a webhook), on a pool of
    # connections in autocommit from the start (``create_autocommit_engine``).
    engines = [engine]
    single_reads = readers
    if not settings.is_sqlite:
        engines.append(create_autocommit_engine(settings))
        single_reads = create_session_factory(engines[-1])
    tasks = []
    if broadcaster is not None:
        tasks.append(asyncio.create_task(broadcaster.run(single_reads), name="events-broadcast"))
        if settings.webhooks_enabled:
            worker = WebhookWorker(
                writers, readers=single_reads, settings=settings, broadcaster=broadcaster
            )
            tasks.append(asyncio.create_task(worker.run(), name="webhooks"))
    if settings.dns_updates_wanted:  # zones published by RFC 2136 updates (docs/dns.md)
        pusher = DnsPusher(writers, readers=readers, settings=settings, broadcaster=broadcaster)
        tasks.append(asyncio.create_task(pusher.run(), name="dns-updates"))
    if settings.events_retention_days > 0:
        tasks.append(
            asyncio.create_task(
                prune_periodically(writers, settings, readers=readers), name="events-prune"
            )
        )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a task that ignored its cancellation must not hold shutdown
            _done, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_SECONDS)
            for task in tasks:
                if task in stuck:
                    log.error("%s did not stop within %ss", task.get_name(), SHUTDOWN_SECONDS)
                elif not task.cancelled() and task.exception() is not None:
                    log.error(
                        "%s stopped with an error", task.get_name(), exc_info=task.exception()
                    )
        for each in engines:
            await each.dispose()
