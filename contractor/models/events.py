"""The event log (outbox) and the webhooks that deliver it.

Every create, update and delete of an inventory object, and every job transition, writes one
``Event`` row in the transaction that made the change (``contractor.services.events``). The
row's ``id`` is the cursor subscribers resume from: rows become visible in cursor order, so
"everything after cursor N" never skips a change that commits late.

A ``WebhookTarget`` is a URL with an event filter and a signing secret; the webhook worker
turns each matching event into a ``WebhookDelivery`` and posts it, retrying with backoff,
in order per object (see ``docs/events.md``).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import Base, Timestamped, UTCDateTime, partial_index, utcnow

# A 64-bit cursor on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the rowid (and with
# AUTOINCREMENT a cursor is never handed out twice, even after the newest rows are deleted).
Cursor = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    """One change: what changed (type, id, name), where (site, blueprint), how, and by whom.

    ``site_id`` and ``blueprint_id`` are copies, not foreign keys: events outlive what they
    describe. The payload is the object's fields after the change (before it, for a delete),
    never a secret.
    """

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_object", "object_type", "object_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Cursor, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int] = mapped_column(BigInteger)
    object_name: Mapped[str] = mapped_column(String(200), default="")
    site_id: Mapped[int | None] = mapped_column(Integer)
    blueprint_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(100))
    changed: Mapped[list[str]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EventHorizon(Base):
    """How far the event log has been pruned (one row, written by the first prune):
    events up to ``cursor`` are gone, except those a webhook delivery still names, so
    reading "after N" for any N below it could miss changes."""

    __tablename__ = "event_horizon"

    id: Mapped[int] = mapped_column(primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    pruned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookTarget(Timestamped, Base):
    """Where matching events are posted. ``cursor`` is the last event turned into deliveries
    for this target (a new target starts at the newest event: it receives what comes next)."""

    __tablename__ = "webhook_target"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"object_types": [...], "kinds": [...], "site_id": int, "blueprint_id": int}, each optional
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)


class DeliveryState(StrEnum):
    """A webhook delivery's state: pending until delivered, failed or cancelled."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


DELIVERY_STATES = tuple(DeliveryState)


class WebhookDelivery(Base):
    """One event for one target, and how its delivery went.

    ``pending`` deliveries are due at ``next_attempt_at``; a worker that takes one moves that
    time forward by its lease, so a worker that dies mid-request leaves it to be retried.
    ``object_key`` orders deliveries: a pending delivery holds back later ones of the same
    object for the same target.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("target_id", "event_id"),
        Index("ix_webhook_delivery_order", "target_id", "object_key", "id"),
        Index("ix_webhook_delivery_event", "event_id"),
        partial_index(
            "ix_webhook_delivery_due", "next_attempt_at", "id", where="state = 'pending'"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("webhook_target.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # when an operator last asked to try it again: the maximum age counts from then
    retried_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
