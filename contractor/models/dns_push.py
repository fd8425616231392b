"""DNS live updates: what the authoritative server was last told, and a log of every push.

``DnsPushZone`` is one row per zone published by RFC 2136 updates: the record sets the
server last acknowledged (``records``; null until they are first read from it by a zone
transfer), with their serial and content hash, and the zone's push state. ``DnsPush`` is one
row per attempt (an update, or a resync), with what it changed and how the server answered.
``DnsPushCursor`` is the last event the pusher has accounted for.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from contractor.models.base import Base, UTCDateTime, utcnow

# A zone's push state: its records are on the server (current), a push is due or under way
# (pending), the last attempt failed and it is retried with backoff (failing), or the zone
# cannot be generated and the server keeps its last good records (invalid).
PUSH_ZONE_STATES = ("current", "pending", "failing", "invalid")
# One attempt: under way (sending), taken by the server (acknowledged), or not (failed).
PUSH_STATES = ("sending", "acknowledged", "failed")


class DnsPushZone(Base):
    __tablename__ = "dns_push_zone"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    # [[owner, type, ttl, [rdata, ...]], ...] as the server last acknowledged them
    records: Mapped[list[Any] | None] = mapped_column(JSON)
    serial: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failures in a row
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # a process sending this zone's push holds it until then (one sender per zone)
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<DnsPushZone {self.name} {self.state}>"


class DnsPush(Base):
    __tablename__ = "dns_push"
    __table_args__ = (Index("ix_dns_push_zone", "zone", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    zone: Mapped[str] = mapped_column(String(253))
    kind: Mapped[str] = mapped_column(String(10), default="update")  # update | resync
    state: Mapped[str] = mapped_column(String(12), default="sending")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    serial: Mapped[int | None] = mapped_column(BigInteger)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # events it covers, up to
    deleted: Mapped[int] = mapped_column(Integer, default=0)  # record sets removed
    added: Mapped[int] = mapped_column(Integer, default=0)  # record sets added or replaced
    rcode: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)


class DnsPushCursor(Base):
    __tablename__ = "dns_push_cursor"

    id: Mapped[int] = mapped_column(primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
