"""Events in GraphQL: the ``events`` subscription (and query), webhook targets and their
delivery log. See ``docs/events.md`` for the protocol."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Annotated, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from contractor import models
from contractor.errors import InvalidInput
from contractor.models.events import DeliveryState
from contractor.schema.common import Row, given
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import deletion, mutation, subscription
from contractor.schema.permissions import Admin, Reader
from contractor.services import events as outbox
from contractor.services import pruning, webhooks
from contractor.services.blueprint import get_blueprint
from contractor.services.common import UNSET
from contractor.services.site import get_site

MAX_PAGE = 1000

# The model's enum is the GraphQL enum: one list of delivery states.
strawberry.enum(
    DeliveryState,
    name="DeliveryState",
    description="PENDING until DELIVERED, FAILED (given up) or CANCELLED.",
)


@strawberry.type(
    description="One change: an inventory object created, updated or deleted, or a job transition."
)
class Event(Row):
    cursor: str = strawberry.field(
        description="Resume after this (opaque; increases in commit order)."
    )
    at: dt.datetime
    kind: str = strawberry.field(description="created, updated, deleted, or a job transition.")
    object_type: str = strawberry.field(description="site, foundation, structure, job, ...")
    object_id: int
    object_name: str
    site_id: int | None = strawberry.field(description="The site the object is in, if any.")
    blueprint_id: int | None
    actor: str | None = strawberry.field(description="Who made the change.")
    changed: list[str] = strawberry.field(description="The fields an update changed.")
    payload: JSON = strawberry.field(
        description="The object's fields after the change (before it, for a delete); "
        "never a secret."
    )

    @classmethod
    def of(cls, row: models.Event) -> Self:
        return cls.from_row(row, cursor=str(row.id), changed=list(row.changed or ()))


@strawberry.input(
    description="Which events; every part is optional and all given parts must match."
)
class EventFilter:
    object_types: list[str] | None = None
    kinds: list[str] | None = None
    site: str | None = strawberry.field(
        default=None, description="A site's name: events in it and in the sites below it."
    )
    blueprint: str | None = strawberry.field(default=None, description="A blueprint's name.")


@strawberry.type(description="A page of events.")
class EventPage:
    events: list[Event]
    cursor: str = strawberry.field(description="Pass as `after` for the next page.")
    has_more: bool


@strawberry.type
class WebhookFilter:
    object_types: list[str] | None
    kinds: list[str] | None
    site_id: int | None
    blueprint_id: int | None


_FILTER_PARTS = ("object_types", "kinds", "site_id", "blueprint_id")


@strawberry.type(description="Where matching events are posted (the secret is never shown).")
class WebhookTarget(Row):
    id: int
    name: str
    url: str
    active: bool
    filter: WebhookFilter
    cursor: str = strawberry.field(description="The last event turned into deliveries.")
    created: dt.datetime
    updated: dt.datetime

    @classmethod
    def of(cls, row: models.WebhookTarget) -> Self:
        spec = row.filter or {}
        return cls.from_row(
            row,
            filter=WebhookFilter(**{name: spec.get(name) for name in _FILTER_PARTS}),
            cursor=str(row.cursor),
        )


@strawberry.type(description="A new webhook target and its secret (shown only here).")
class CreatedWebhookTarget:
    target: WebhookTarget
    secret: str


@strawberry.type(description="One event for one target, and how its delivery went.")
class WebhookDelivery(Row):
    id: int
    target_id: int
    event_cursor: str
    object_key: str
    state: DeliveryState
    attempts: int
    created: dt.datetime
    retried_at: dt.datetime | None = strawberry.field(
        description="When an operator last asked to deliver it again (the maximum age "
        "counts from then)."
    )
    next_attempt_at: dt.datetime
    last_attempt_at: dt.datetime | None
    response_code: int | None
    error: str | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: models.WebhookDelivery) -> Self:
        return cls.from_row(row, event_cursor=str(row.event_id), state=DeliveryState(row.state))


WebhookTargetResult = Annotated[WebhookTarget | AnyError, strawberry.union("WebhookTargetResult")]
CreatedWebhookTargetResult = Annotated[
    CreatedWebhookTarget | AnyError, strawberry.union("CreatedWebhookTargetResult")
]
WebhookDeliveryResult = Annotated[
    WebhookDelivery | AnyError, strawberry.union("WebhookDeliveryResult")
]


def parse_cursor(value: str | None, *, field: str = "after") -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise InvalidInput(f"{field} must be a cursor from an event, not {value!r}", field=field)
    return int(value)


async def _filter(session: AsyncSession, given: EventFilter | None) -> outbox.EventFilter:
    given = given or EventFilter()
    site_id = tree = None
    if given.site is not None:
        site_id = (await get_site(session, given.site)).id
        tree = await outbox.site_tree(session)
    blueprint_id = None
    if given.blueprint is not None:
        blueprint_id = (await get_blueprint(session, given.blueprint)).id
    return outbox.EventFilter.build(
        object_types=given.object_types,
        kinds=given.kinds,
        site_id=site_id,
        blueprint_id=blueprint_id,
        tree=tree,
    )


async def _stored_filter(session: AsyncSession, given: EventFilter | None) -> dict[str, object]:
    if given is None:
        return {}
    site_id = (await get_site(session, given.site)).id if given.site is not None else None
    blueprint_id = (
        (await get_blueprint(session, given.blueprint)).id if given.blueprint is not None else None
    )
    return {
        "object_types": given.object_types,
        "kinds": given.kinds,
        "site_id": site_id,
        "blueprint_id": blueprint_id,
    }


@strawberry.type
class EventQuery:
    @strawberry.field(
        description="Events after a cursor (omitted: from the oldest one kept), oldest "
        "first (the subscription `events` streams the same, live). A cursor older than the "
        "event retention is refused with code PRUNED. With `last` instead of `after`: at "
        "most the `last` newest events, oldest first, and the cursor to follow them from.",
        extensions=[Reader()],
    )
    async def events(
        self,
        info: Info,
        filter: EventFilter | None = None,
        after: str | None = None,
        first: int = 100,
        last: int | None = None,
    ) -> EventPage:
        if not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}", field="first")
        if last is not None and not 1 <= last <= MAX_PAGE:
            raise InvalidInput(f"last must be between 1 and {MAX_PAGE}", field="last")
        if last is not None and after is not None:
            raise InvalidInput("give after or last, not both", field="last")
        start = parse_cursor(after)
        async with info.context.sessions() as session:
            wanted = await _filter(session, filter)
            if last is not None:
                newest, cursor = await outbox.newest_events(session, limit=last, filter=wanted)
                events = [Event.of(row) for row in newest]
                return EventPage(events=events, cursor=str(cursor), has_more=False)
            if start is None:
                start = await pruning.horizon(session)  # from the oldest event kept
            else:
                await pruning.check_after(session, start)
            rows, upto, more = await outbox.events_after(
                session, after=start, filter=wanted, limit=first
            )
        return EventPage(events=[Event.of(r) for r in rows], cursor=str(upto), has_more=more)

    @strawberry.field(description="Webhook targets (admins only).", extensions=[Admin()])
    async def webhook_targets(self, info: Info) -> list[WebhookTarget]:
        async with info.context.sessions() as session:
            return [WebhookTarget.of(t) for t in await webhooks.list_targets(session)]

    @strawberry.field(
        description="The delivery log, newest first (admins only).", extensions=[Admin()]
    )
    async def webhook_deliveries(
        self,
        info: Info,
        target: str | None = None,
        states: list[DeliveryState] | None = None,
        before: int | None = None,
        first: int = 100,
    ) -> list[WebhookDelivery]:
        if not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}", field="first")
        async with info.context.sessions() as session:
            row = await webhooks.get_target(session, target) if target is not None else None
            rows = await webhooks.list_deliveries(
                session, target=row, states=states, before=before, limit=first
            )
        return [WebhookDelivery.of(d) for d in rows]


@strawberry.type
class EventMutation:
    @mutation(Admin, description="Post matching events to a URL from now on (admins).")
    async def create_webhook_target(
        session: AsyncSession,
        name: str,
        url: str,
        secret: str | None = None,
        filter: EventFilter | None = None,
        active: bool = True,
    ) -> CreatedWebhookTargetResult:
        row = await webhooks.create_target(
            session,
            name=name,
            url=url,
            secret=secret,
            filter=await _stored_filter(session, filter),
            active=active,
        )
        return CreatedWebhookTarget(target=WebhookTarget.of(row), secret=row.secret)

    @mutation(Admin, description="Change the given fields of a webhook target (admins).")
    async def update_webhook_target(
        session: AsyncSession,
        name: str,
        url: str | None = strawberry.UNSET,
        secret: str | None = strawberry.UNSET,
        filter: EventFilter | None = strawberry.UNSET,
        active: bool | None = strawberry.UNSET,
    ) -> WebhookTargetResult:
        row = await webhooks.get_target(session, name)
        stored = given(filter)
        if stored is not UNSET:
            stored = await _stored_filter(session, stored)
        await webhooks.update_target(
            session,
            row,
            url=given(url),
            secret=given(secret),
            filter=stored,
            active=given(active),
        )
        return WebhookTarget.of(row)

    delete_webhook_target = deletion(
        "WebhookTarget",
        webhooks.get_target,
        webhooks.delete_target,
        role=Admin,
        description="Remove a webhook target and its delivery log (admins).",
        name=str,
    )

    @mutation(Admin, description="Deliver again, now (admins).")
    async def retry_webhook_delivery(session: AsyncSession, id: int) -> WebhookDeliveryResult:
        row = await webhooks.retry_delivery(session, await webhooks.get_delivery(session, id))
        return WebhookDelivery.of(row)

    @mutation(Admin, description="Stop trying a pending delivery (admins).")
    async def cancel_webhook_delivery(session: AsyncSession, id: int) -> WebhookDeliveryResult:
        row = await webhooks.cancel_delivery(session, await webhooks.get_delivery(session, id))
        return WebhookDelivery.of(row)


@strawberry.type
class EventSubscription:
    @subscription(
        Reader,
        description="Every matching event after `after` (omitted: from now on), in commit "
        "order, then live. Reconnect with the last cursor received to miss nothing.",
    )
    async def events(
        self, info: Info, filter: EventFilter | None = None, after: str | None = None
    ) -> AsyncGenerator[Event, None]:
        broadcaster = info.context.events
        if broadcaster is None:
            raise InvalidInput("this server does not stream events", field="events")
        start = parse_cursor(after)
        async with info.context.sessions() as session:
            wanted = await _filter(session, filter)
        async for row in broadcaster.subscribe(wanted, start):
            yield Event.of(row)
