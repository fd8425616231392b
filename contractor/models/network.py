"""Networks, address blocks (IPv4 and IPv6) and the addresses allocated from them.

An address is an offset inside its block, so the block's first and last addresses are kept
as 16-byte big-endian values (IPv4 as v4-mapped IPv6): byte order is numeric order, which
lets overlap and lookup run as plain range comparisons on both PostgreSQL and SQLite.

An offset can be as large as 2**128 - 1 (a /0), past any database's 64-bit integer, so
offsets are ``Offset`` columns (``models.offsets``): exact, and ordered numerically.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from contractor.models.base import Base, Timestamped, key_of, partial_index
from contractor.models.offsets import Offset


class Network(Timestamped, Base):
    """A layer-2 network; its name is what plugins use as the switch or port-group name."""

    __tablename__ = "network"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    mtu: Mapped[int | None] = mapped_column(Integer)


class AddressBlock(Timestamped, Base):
    __tablename__ = "address_block"
    __table_args__ = (
        UniqueConstraint("site_id", "name"),
        Index("ix_address_block_site_range", "site_id", "version", "first_bin", "last_bin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)  # 4 or 6
    subnet: Mapped[str] = mapped_column(String(45))  # normalised network address, text form
    prefix: Mapped[int] = mapped_column(Integer)
    gateway_offset: Mapped[int | None] = mapped_column(Offset())
    first_bin: Mapped[bytes] = mapped_column(LargeBinary(16))
    last_bin: Mapped[bytes] = mapped_column(LargeBinary(16))

    @property
    def cidr(self) -> str:
        return f"{self.subnet}/{self.prefix}"


class NetworkAddressBlock(Base):
    """Which blocks a network carries, and on which VLAN (NULL = untagged)."""

    __tablename__ = "network_address_block"

    network_id: Mapped[int] = key_of("network")
    address_block_id: Mapped[int] = key_of("address_block", index=True)
    vlan: Mapped[int | None] = mapped_column(Integer)


class BaseAddress(Timestamped, Base):
    """An offset in a block, held by a Structure (Address), reserved, or in the DHCP pool.

    One table for the three kinds: ``(address_block_id, offset)`` is unique across all of
    them, which is what makes an allocation safe. A Structure has at most one primary
    address per IP version (a dual-stack host's bare name has an A and an AAAA record).
    """

    __tablename__ = "address"
    __table_args__ = (
        UniqueConstraint("address_block_id", "offset"),
        UniqueConstraint("structure_id", "interface_name", "alias_index"),
        partial_index(
            "uq_address_one_primary_per_version",
            "structure_id",
            "ip_version",
            where="is_primary",
            unique=True,
        ),
        CheckConstraint('(address_block_id IS NULL) = ("offset" IS NULL)', name="block_and_offset"),
        CheckConstraint("alias_index >= 0", name="alias_index_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    address_block_id: Mapped[int | None] = mapped_column(
        ForeignKey("address_block.id", ondelete="RESTRICT")
    )
    offset: Mapped[int | None] = mapped_column(Offset())
    # Address (held by a Structure)
    structure_id: Mapped[int | None] = mapped_column(
        ForeignKey("structure.id", ondelete="CASCADE"), index=True
    )
    interface_name: Mapped[str | None] = mapped_column(String(20))
    alias_index: Mapped[int | None] = mapped_column(Integer)  # 0 = the interface's own address
    pointer_id: Mapped[int | None] = mapped_column(
        ForeignKey("address.id", ondelete="RESTRICT"), index=True
    )
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    # The block's IP version (4 or 6), so a structure has one primary address per version.
    ip_version: Mapped[int | None] = mapped_column(Integer)
    # ReservedAddress
    reason: Mapped[str | None] = mapped_column(String(50))
    # DynamicAddress
    pxe_id: Mapped[int | None] = mapped_column(
        ForeignKey("pxe.id", ondelete="RESTRICT"), index=True
    )

    address_block: Mapped[AddressBlock | None] = relationship(lazy="raise")

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_abstract": True}


class Address(BaseAddress):
    __mapper_args__ = {"polymorphic_identity": "address"}


class ReservedAddress(BaseAddress):
    __mapper_args__ = {"polymorphic_identity": "reserved"}


class DynamicAddress(BaseAddress):
    __mapper_args__ = {"polymorphic_identity": "dynamic"}
