"""DNS: zones, their entries, and the serial each published zone carries.

Records for Structures come from the inventory (``contractor.services.dns``); ``Entry`` rows
add what the inventory cannot know (CNAME, MX, SRV, TXT, and NS delegations to servers
Contractor does not manage). Zone text is made by ``bindgen``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contractor.models.base import Base, Timestamped, partial_index

ENTRY_TYPES = ("CNAME", "MX", "NS", "SRV", "TXT")

# SOA timers within RFC 1912 (section 2.2) and RFC 2308 (section 5): secondaries check
# every 4 hours (NOTIFY tells them sooner) and retry hourly, a secondary cut off from the
# primary serves the zone for two weeks, negative answers are cached for an hour.
DEFAULT_TTL = 3600
DEFAULT_REFRESH = 14400
DEFAULT_RETRY = 3600
DEFAULT_EXPIRE = 1209600
DEFAULT_MINIMUM = 3600


class Zone(Timestamped, Base):
    """One DNS zone; ``fqdn`` is its name followed by its parents' names.

    ``nameservers`` (host names) and ``soa_email`` are inherited from the parent zone when
    empty; the first name server is the SOA's primary. An ``external`` zone is delegated to
    Contractor from a parent it does not serve: the zones above it only spell its name and
    are not generated.
    """

    __tablename__ = "zone"
    __table_args__ = (
        UniqueConstraint("parent_id", "name"),
        # NULL parents are distinct to SQL, so top-level names need their own index.
        partial_index("uq_zone_top_level_name", "name", where="parent_id IS NULL", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("zone.id", ondelete="RESTRICT"), index=True
    )
    ttl: Mapped[int] = mapped_column(Integer, default=DEFAULT_TTL)
    refresh: Mapped[int] = mapped_column(Integer, default=DEFAULT_REFRESH)
    retry: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETRY)
    expire: Mapped[int] = mapped_column(Integer, default=DEFAULT_EXPIRE)
    minimum: Mapped[int] = mapped_column(Integer, default=DEFAULT_MINIMUM)
    nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    soa_email: Mapped[str | None] = mapped_column(String(254))
    external: Mapped[bool] = mapped_column(Boolean, default=False)

    parent: Mapped[Zone | None] = relationship(remote_side=[id], lazy="raise")

    def __repr__(self) -> str:
        return f"<Zone {self.name}>"


class Entry(Timestamped, Base):
    """A record of a zone that does not come from the inventory.

    ``name`` is relative to the zone (``@`` is the zone itself). ``target`` is a host name
    (relative to the zone unless it ends with a dot) for CNAME, MX, NS and SRV; ``text`` is
    the TXT value; ``priority`` is the MX preference or SRV priority; ``weight`` and ``port``
    are SRV's. ``ttl`` defaults to the zone's.
    """

    __tablename__ = "zone_entry"
    __table_args__ = (
        CheckConstraint(
            "type IN (" + ", ".join(f"'{t}'" for t in ENTRY_TYPES) + ")", name="type_known"
        ),
        Index("ix_zone_entry_zone_name", "zone_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(5))
    name: Mapped[str] = mapped_column(String(253))
    target: Mapped[str | None] = mapped_column(String(254))
    text: Mapped[str | None] = mapped_column(String(2000))
    priority: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[int | None] = mapped_column(Integer)
    port: Mapped[int | None] = mapped_column(Integer)
    ttl: Mapped[int | None] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<Entry {self.name} {self.type}>"


class PublishedZone(Timestamped, Base):
    """The serial, content hash and file text of a zone as last published valid (forward or
    reverse zone, by name), so serials grow only when the content changes, even across zone
    deletion, and a zone that turns invalid is still served as it last was."""

    __tablename__ = "published_zone"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    serial: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Loaded only when asked for (a zone's file may be megabytes).
    text: Mapped[str | None] = mapped_column(Text, deferred=True)

    def __repr__(self) -> str:
        return f"<PublishedZone {self.name} {self.serial}>"


class PublishedZoneList(Base):
    """What the last full publish found (one row): every zone it made, by name, with its
    kind, content hash and problems (``zones``), and the newest event it had seen
    (``cursor``). A publish that finds no DNS-relevant event after ``cursor`` answers from
    this row and the ``published_zone`` rows without reading the inventory again."""

    __tablename__ = "published_zone_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    # [{"name", "kind", "hash" (None when invalid), "problems": [[code, message, record]]}]
    zones: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
