"""DNS live updates: the pusher that keeps a running authoritative server current by RFC 2136
dynamic updates signed with TSIG, and the resync that repairs what drifted.

The pusher runs where webhook delivery runs (``events_running``: ``contractor serve`` and
``contractor foreman``) whenever some zone is published by updates. The broadcaster wakes it
when events are committed; each round plans pushes (``services.dns_push.plan_pushes``: the
difference between the record sets the server last acknowledged and the zone's), sends
them, and records the answers. A zone whose records the server has not acknowledged yet is
first read by a zone transfer (AXFR, signed with the same key).

One update message changes a batch of record sets (each replaced whole, or deleted; the
apex NS set record by record, since a server never deletes a zone's last NS); the SOA, with
Contractor's published serial, is sent last. A batch is atomic on the server; a large
change is several batches, and the acknowledged ones are kept if a later one fails. A
refused update (a wrong key: NOTAUTH with BADSIG or BADKEY; REFUSED by the update policy)
is recorded with its reason and retried with capped backoff; it never stops the other zones.

The TSIG secret is only ever handed to dnspython's keyring: no message, log line or error
carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import anyio.to_thread
import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bindgen
from contractor.errors import InvalidInput
from contractor.events.broadcast import EventBroadcaster
from contractor.listen import stop_if_cancelled
from contractor.metrics import instruments
from contractor.models import utcnow
from contractor.services import dns_push
from contractor.settings import Settings

__all__ = [
    "DnsPusher",
    "DnsServer",
    "PushError",
    "ZoneDifference",
    "resync",
]

log = logging.getLogger(__name__)

# Record types Contractor manages; anything else the server holds (DNSSEC records of an
# inline-signed zone, ...) is left alone by pushes and by resyncs.
MANAGED_TYPES = frozenset((*bindgen.RECORD_TYPES, "SOA"))
BATCH_BYTES = 30_000  # a rough bound on one update message (TCP allows 65,535)


class PushError(Exception):
    """The server did not take an update (or a transfer): ``rcode`` is its answer, if any."""

    def __init__(self, message: str, rcode: str | None = None) -> None:
        super().__init__(message)
        self.rcode = rcode


@dataclass(frozen=True)
class DnsServer:
    """The authoritative server and the key, from the settings."""

    host: str
    port: int
    key_name: str
    algorithm: str
    timeout: float
    _keyring: dict[dns.name.Name, dns.tsig.Key] = field(repr=False)

    @classmethod
    def of(cls, settings: Settings) -> DnsServer:
        if not (settings.dns_server_host and settings.dns_tsig_key_name):
            raise InvalidInput(
                "no DNS server is set (CONTRACTOR_DNS_SERVER_HOST, CONTRACTOR_DNS_TSIG_KEY_NAME, "
                "CONTRACTOR_DNS_TSIG_SECRET)",
                field="dns_server_host",
            )
        secret = settings.dns_tsig_secret.get_secret_value() if settings.dns_tsig_secret else ""
        try:
            keyring = dns.tsigkeyring.from_text(
                {settings.dns_tsig_key_name: (settings.dns_tsig_algorithm, secret)}
            )
        except Exception:  # the message would show the secret: say what is wrong instead
            raise InvalidInput(
                "CONTRACTOR_DNS_TSIG_SECRET is not a base64 key", field="dns_tsig_secret"
            ) from None
        return cls(
            settings.dns_server_host,
            settings.dns_server_port,
            settings.dns_tsig_key_name,
            settings.dns_tsig_algorithm,
            settings.dns_update_timeout_seconds,
            keyring,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _key(self) -> dns.tsig.Key:
        return next(iter(self._keyring.values()))

    async def update(self, zone: str, changes: Sequence[bindgen.Change]) -> None:
        """Send ``changes`` as one update; raises ``PushError`` unless NOERROR."""
        origin = zone.rstrip(".") + "."
        message = dns.update.UpdateMessage(origin, keyring=self._key())
        for change in changes:
            _add_change(message, origin, change)
        try:
            answer = await dns.asyncquery.tcp(
                message, self.host, port=self.port, timeout=self.timeout
            )
        except Exception as error:
            stop_if_cancelled()
            raise self._failure(zone, error) from None
        rcode = answer.rcode()
        if rcode != dns.rcode.NOERROR:
            raise PushError(self._refusal(zone, rcode), dns.rcode.to_text(rcode))

    def _refusal(self, zone: str, rcode: dns.rcode.Rcode) -> str:
        name = dns.rcode.to_text(rcode)
        why = {
            dns.rcode.REFUSED: f"the server's update-policy does not let key {self.key_name!r} "
            f"change zone {zone}",
            dns.rcode.NOTAUTH: f"the server is not authoritative for zone {zone}, or refused "
            f"key {self.key_name!r}",
            dns.rcode.NOTZONE: f"a record lies outside zone {zone}",
            dns.rcode.SERVFAIL: f"the server failed to apply the update to zone {zone} (see "
            "its log)",
        }.get(rcode, f"the server answered {name} for zone {zone}")
        return f"{name}: {why}"

    def _failure(self, zone: str, error: Exception) -> PushError:
        """A clear message for what went wrong before an answer (never the secret)."""
        key = self.key_name
        if isinstance(error, dns.tsig.PeerBadSignature):
            return PushError(
                f"NOTAUTH (TSIG BADSIG): {self.where} refused the signature of key {key!r}: "
                "the secret differs from the server's",
                "NOTAUTH",
            )
        if isinstance(error, dns.tsig.PeerBadKey):
            return PushError(
                f"NOTAUTH (TSIG BADKEY): {self.where} does not know key {key!r} ({self.algorithm})",
                "NOTAUTH",
            )
        if isinstance(error, dns.tsig.PeerBadTime):
            return PushError(
                f"NOTAUTH (TSIG BADTIME): {self.where} and this host disagree on the time",
                "NOTAUTH",
            )
        if isinstance(error, dns.tsig.BadSignature | dns.tsig.PeerError):
            return PushError(f"TSIG: the answer from {self.where} is not signed by key {key!r}")
        if isinstance(error, dns.exception.Timeout | TimeoutError):
            return PushError(f"no answer from {self.where} within {self.timeout:g} s (zone {zone})")
        if isinstance(error, OSError):
            return PushError(f"cannot reach the DNS server {self.where}: {error.strerror or error}")
        return PushError(f"{type(error).__name__} talking to {self.where}: {error}")

    async def read_zone(self, zone: str) -> bindgen.RRsets:
        """The server's zone by AXFR (signed), the managed record types only."""
        origin = zone.rstrip(".") + "."

        def transfer() -> bindgen.RRsets:
            holder = dns.zone.Zone(origin)
            query, _serial = dns.xfr.make_query(holder, keyring=self._key())
            dns.query.inbound_xfr(self.host, holder, query, port=self.port, timeout=self.timeout)
            return bindgen.zone_rrsets_of(holder)

        try:
            rrsets = await anyio.to_thread.run_sync(transfer)
        except dns.xfr.TransferError as error:
            rcode = error.rcode
            raise PushError(
                f"{dns.rcode.to_text(rcode)}: {self.where} refused the zone transfer of {zone} "
                f"to key {self.key_name!r} (allow-transfer)",
                dns.rcode.to_text(rcode),
            ) from None
        except Exception as error:
            stop_if_cancelled()
            raise self._failure(zone, error) from None
        return {key: value for key, value in rrsets.items() if key[1] in MANAGED_TYPES}


def _add_change(message: dns.update.UpdateMessage, origin: str, change: bindgen.Change) -> None:
    name = dns.name.from_text(change.name)
    rdtype = dns.rdatatype.from_text(change.type)
    new = change.new
    if change.type == "SOA":
        if new is not None:  # an SOA is replaced, never deleted
            message.replace(name, new.ttl, rdtype, *new.rdatas)
        return
    if change.type == "NS" and change.name.lower() == origin.lower():
        # a server never deletes an apex NS set whole: remove and add records one by one
        old = set(change.old.rdatas) if change.old else set()
        wanted = set(new.rdatas) if new else set()
        gone = sorted(old - wanted)
        if gone:
            message.delete(name, rdtype, *gone)
        if new is not None:
            message.add(name, new.ttl, rdtype, *new.rdatas)
        return
    if new is None:
        message.delete(name, rdtype)
    else:
        message.replace(name, new.ttl, rdtype, *new.rdatas)


def _batches(changes: Sequence[bindgen.Change]) -> Iterator[list[bindgen.Change]]:
    batch: list[bindgen.Change] = []
    size = 0
    for change in changes:
        cost = (
            20
            + len(change.name)
            + sum(
                len(text) + 16
                for rrset in (change.old, change.new)
                if rrset
                for text in rrset.rdatas
            )
        )
        if batch and size + cost > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(change)
        size += cost
    if batch:
        yield batch


async def send_push(server: DnsServer, planned: dns_push.Planned) -> dns_push.Outcome:
    """Bring the server from what it holds to ``planned.target``; never raises."""
    known = planned.known
    deleted = added = 0
    try:
        if known is None:
            known = await server.read_zone(planned.zone)
        changes = bindgen.diff_rrsets(known, planned.target)
        for batch in _batches(changes):
            await server.update(planned.zone, batch)
            known = bindgen.apply_changes(known, batch)
            deleted += sum(1 for c in batch if c.new is None)
            added += sum(1 for c in batch if c.new is not None)
    except PushError as error:
        return dns_push.Outcome(
            planned, False, known, deleted, added, rcode=error.rcode, error=str(error)
        )
    return dns_push.Outcome(planned, True, planned.target, deleted, added, rcode="NOERROR")


class DnsPusher:
    """Keeps the server current; any number of processes may run one (a zone is leased to
    the process sending it)."""

    def __init__(
        self,
        writer_sessions: async_sessionmaker[AsyncSession],
        *,
        readers: async_sessionmaker[AsyncSession] | None = None,
        settings: Settings,
        broadcaster: EventBroadcaster | None,
    ) -> None:
        self._sessions = writer_sessions
        self._readers = readers or writer_sessions
        self._settings = settings
        self._broadcaster = broadcaster
        self._server = DnsServer.of(settings)
        self._failing: dict[str, str] = {}  # zone -> the error last logged for it

    async def run(self) -> None:
        idle = self._settings.events_poll_seconds
        while True:
            waiter = self._broadcaster.changed.waiter() if self._broadcaster else None
            wait = idle
            try:
                wait = min(idle, await self.round())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: try again later
                stop_if_cancelled()
                log.warning("DNS push round failed: %s", error)
            if waiter is None:
                await asyncio.sleep(max(wait, 0.01))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout=max(wait, 0.01))

    async def round(self) -> float:
        """Plan, send and record what is due; returns how long until the next retry."""
        settings = self._settings
        async with self._readers() as session:
            needed = await dns_push.push_needed(session)
        planned: list[dns_push.Planned] = []
        if needed:
            async with self._sessions() as session, session.begin():
                planned = await dns_push.plan_pushes(
                    session,
                    wanted=lambda zone: settings.dns_mode(zone) != "files",
                    lease_seconds=_lease(settings),
                )
        if planned:
            outcomes = await asyncio.gather(*(send_push(self._server, p) for p in planned))
            async with self._sessions() as session, session.begin():
                for outcome in outcomes:
                    await self._record(session, outcome)
            return 0.0  # changes may have come while these were sent
        async with self._readers() as session:
            due = await dns_push.next_due(session)
        if due is None:
            return settings.events_poll_seconds
        return max(0.0, (due - utcnow()).total_seconds())

    async def _record(self, session: AsyncSession, outcome: dns_push.Outcome) -> None:
        settings = self._settings
        await dns_push.record_push(
            session,
            outcome,
            retry_base=settings.dns_update_retry_base_seconds,
            retry_cap=settings.dns_update_retry_max_seconds,
        )
        zone = outcome.planned.zone
        instruments().dns_push("acknowledged" if outcome.acknowledged else "failed")
        if outcome.acknowledged:
            if self._failing.pop(zone, None) is not None:
                log.info("DNS zone %s is current again on %s", zone, self._server.where)
        elif self._failing.get(zone) != outcome.error:  # each new error once, not every retry
            self._failing[zone] = outcome.error or ""
            log.warning(
                "DNS push of zone %s failed (attempt %d, retried with backoff): %s",
                zone,
                outcome.planned.attempt,
                outcome.error,
            )


def _lease(settings: Settings) -> float:
    """Long enough for a zone transfer and a few batches, each within the timeout."""
    return 6 * settings.dns_update_timeout_seconds + 5


# -- resync ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneDifference:
    """What the server holds that the inventory does not (``unexpected``), what it lacks
    (``missing``), as record lines; ``repaired`` when updates fixed it, ``error`` if not."""

    zone: str
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    repaired: bool
    error: str | None = None

    @property
    def in_sync(self) -> bool:
        return not self.missing and not self.unexpected


def _lines(changes: Sequence[bindgen.Change]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines = [line for change in changes for line in change.describe()]
    missing = tuple(line[2:] for line in lines if line.startswith("+ "))
    unexpected = tuple(line[2:] for line in lines if line.startswith("- "))
    return missing, unexpected


def _compare(known: bindgen.RRsets, target: bindgen.RRsets) -> list[bindgen.Change]:
    """The differences a resync reports: the SOA's serial only moves forward on the server
    (it may be ahead of the published one), so the SOA counts only by its other fields."""
    return [
        change
        for change in bindgen.diff_rrsets(known, target)
        if change.type != "SOA" or _soa_fields(change.old) != _soa_fields(change.new)
    ]


def _soa_fields(rrset: bindgen.RRset | None) -> tuple[str, ...] | None:
    if rrset is None:
        return None
    parts = rrset.rdatas[0].split()
    return (str(rrset.ttl), *parts[:2], *parts[3:])


async def resync(
    writer_sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    zone: str | None = None,
    dry_run: bool = False,
) -> list[ZoneDifference]:
    """Compare each zone published by updates (or only ``zone``) as the server holds it
    (AXFR) with the inventory, and unless ``dry_run`` repair the differences by updates
    (logged as ``resync`` pushes)."""
    server = DnsServer.of(settings)

    def wanted(name: str) -> bool:
        return settings.dns_mode(name) != "files"

    only = None if zone is None else zone.strip().lower().rstrip(".")
    if only is not None and not wanted(only):
        raise InvalidInput(
            f"zone {only!r} is not published by updates (CONTRACTOR_DNS_ZONE_MODES, "
            "CONTRACTOR_DNS_DEFAULT_MODE)",
            field="zone",
        )
    async with writer_sessions() as session:
        transaction = await session.begin()
        try:
            planned = await dns_push.plan_pushes(
                session, wanted=wanted, lease_seconds=_lease(settings), only=only, resync=True
            )
        finally:
            if dry_run:  # nothing leased, nothing logged, nothing forgotten
                await transaction.rollback()
        if not dry_run:
            await transaction.commit()
    if only is not None and not planned:
        raise InvalidInput(
            f"zone {only!r} is not a zone Contractor publishes, cannot be generated, or is "
            "being pushed now",
            field="zone",
        )
    results: list[ZoneDifference] = []
    outcomes: list[dns_push.Outcome] = []
    for push in planned:
        try:
            known = await server.read_zone(push.zone)
        except PushError as error:
            results.append(ZoneDifference(push.zone, (), (), False, str(error)))
            outcomes.append(
                dns_push.Outcome(push, False, None, rcode=error.rcode, error=str(error))
            )
            continue
        missing, unexpected = _lines(_compare(known, push.target))
        if dry_run:
            results.append(ZoneDifference(push.zone, missing, unexpected, False))
            continue
        outcome = await send_push(server, replace(push, known=known))
        outcomes.append(outcome)
        results.append(
            ZoneDifference(push.zone, missing, unexpected, outcome.acknowledged, outcome.error)
        )
    if outcomes:
        async with writer_sessions() as session, session.begin():
            for outcome in outcomes:
                await dns_push.record_push(
                    session,
                    outcome,
                    retry_base=settings.dns_update_retry_base_seconds,
                    retry_cap=settings.dns_update_retry_max_seconds,
                )
    return results
