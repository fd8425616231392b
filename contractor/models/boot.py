"""What a site's boot services need: DHCP pools, and the versioned boot data served to them.

``DhcpPool`` marks a range of an address block for dynamic DHCP leases (unknown machines,
discovery). ``BootEntry`` rows are the site's boot data as last served (one per reservation
and per pool, kept with the version that last changed it, tombstones included), and
``BootSite`` holds the site's version counter: ``contractor.services.boot`` refreshes them
from the inventory when the config generation moves, and serves snapshots and changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contractor.models.base import Base, OrderedJSON, Timestamped, UTCDateTime, key_of, utcnow
from contractor.models.network import AddressBlock
from contractor.models.offsets import Offset


class DhcpPool(Timestamped, Base):
    """Offsets ``first_offset``..``last_offset`` of a block, handed out by DHCP to machines
    that have no reservation."""

    __tablename__ = "dhcp_pool"
    __table_args__ = (
        CheckConstraint("first_offset <= last_offset", name="ordered"),
        Index("ix_dhcp_pool_block_range", "address_block_id", "first_offset", "last_offset"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address_block_id: Mapped[int] = mapped_column(
        ForeignKey("address_block.id", ondelete="RESTRICT")
    )
    first_offset: Mapped[int] = mapped_column(Offset())
    last_offset: Mapped[int] = mapped_column(Offset())
    description: Mapped[str] = mapped_column(String(200), default="")

    address_block: Mapped[AddressBlock] = relationship(lazy="raise")


class BootSite(Base):
    """A site's boot data version: bumped by every refresh that changes an entry."""

    __tablename__ = "boot_site"

    site_id: Mapped[int] = key_of("site")
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    # The config generation the entries were last computed at.
    generation: Mapped[int] = mapped_column(BigInteger, default=-1)
    # Changes since a version below this are gone (tombstones pruned): resync.
    floor: Mapped[int] = mapped_column(BigInteger, default=0)


class BootEntry(Base):
    """One reservation (``key`` ``reservation:<structure id>``) or pool (``pool:<id>``) of a
    site's boot data, as last served; ``removed`` rows are tombstones."""

    __tablename__ = "boot_entry"
    __table_args__ = (Index("ix_boot_entry_site_version", "site_id", "version"),)

    site_id: Mapped[int] = key_of("site")
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any] | None] = mapped_column(OrderedJSON)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


LEASE_STATES = ("active", "expired", "released")


class DhcpLease(Base):
    """A lease a site's boot services reported (``POST /api/v1/subcontractor/leases``): the
    latest report per MAC and address wins."""

    __tablename__ = "dhcp_lease"
    __table_args__ = (
        UniqueConstraint("site_id", "mac", "address"),
        CheckConstraint("state IN ('active', 'expired', 'released')", name="state"),
        Index("ix_dhcp_lease_mac", "mac"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    mac: Mapped[str] = mapped_column(String(17))
    address: Mapped[str] = mapped_column(String(45))
    hostname: Mapped[str] = mapped_column(String(253), default="")
    starts: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ends: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    state: Mapped[str] = mapped_column(String(10))
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
