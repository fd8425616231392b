"""Networks, address blocks (IPv4 and IPv6) and the addresses allocated from them.

An address is an offset inside its block, so the block's first and last addresses are kept
as 16-byte big-endian values (IPv4 as v4-mapped IPv6): byte order is numeric order, which
lets overlap and lookup run as plain range comparisons on both PostgreSQL and SQLite.

An offset can be as large as 2**128 - 1 (a /0), past any database's 64-bit integer, so
offsets are ``Offset`` columns: exact on both databases, ordered numerically, and with a
successor (``next_offset``) for the lowest-free search.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    UniqueConstraint,
    literal,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from contractor.models.base import Base, Timestamped, key_of, partial_index

MAX_OFFSET = 2**128  # the successor of the last offset of a /0 is still one
OFFSET_DIGITS = len(str(MAX_OFFSET))  # 39


class Offset(TypeDecorator[int]):
    """A whole number from 0 to 2**128 - 1, exact: ``numeric(39, 0)`` on PostgreSQL, and on
    SQLite (whose integers stop at 2**63 - 1 and whose other numbers are floats) 39 decimal
    digits with leading zeros, whose text order is numeric order. A string of digits rather
    than 16 bytes, because the successor (``next_offset``) can then be computed in SQL from
    18-digit pieces, each within SQLite's integers, and a row stays readable in ``sqlite3``.
    """

    impl = String(OFFSET_DIGITS)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(OFFSET_DIGITS, 0))
        return dialect.type_descriptor(String(OFFSET_DIGITS))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Decimal | str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
            # The services check offsets first: this is a bug, not bad input.
            raise ValueError(f"not an offset: {value!r}")
        if dialect.name == "postgresql":
            return Decimal(value)
        return f"{value:0{OFFSET_DIGITS}d}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


# The largest whole number every JSON parser reads exactly (an IEEE 754 double's 53 bits).
JSON_EXACT_MAX = 2**53 - 1


def json_exact(value: int) -> int | str:
    """A whole number as JSON carries it exactly: a number within ±``JSON_EXACT_MAX``, else
    the string of its decimal digits (how offsets appear in GraphQL and in event payloads)."""
    return value if -JSON_EXACT_MAX <= value <= JSON_EXACT_MAX else str(value)


class next_offset(FunctionElement[int]):
    """``offset + 1``, in SQL, for an ``Offset`` column or expression."""

    type = Offset()
    inherit_cache = True
    name = "next_offset"


@compiles(next_offset)
def _next_offset(element: next_offset, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + 1)"


# The last 18 digits, the 18 before them and the first 3, with the carry between them.
_NINES = "9" * 18
_ZEROS = "0" * 18
_SQLITE_NEXT = (
    "(CASE WHEN {x} IS NULL THEN NULL"
    f" WHEN substr({{x}}, 22) <> '{_NINES}'"
    " THEN substr({x}, 1, 21) || printf('%018d', CAST(substr({x}, 22) AS INTEGER) + 1)"
    f" WHEN substr({{x}}, 4, 18) <> '{_NINES}'"
    " THEN substr({x}, 1, 3) || printf('%018d', CAST(substr({x}, 4, 18) AS INTEGER) + 1)"
    f" || '{_ZEROS}'"
    f" ELSE printf('%03d', CAST(substr({{x}}, 1, 3) AS INTEGER) + 1) || '{_ZEROS}{_ZEROS}' END)"
)


@compiles(next_offset, "sqlite")
def _next_offset_sqlite(element: next_offset, compiler: SQLCompiler, **kw: Any) -> str:
    return _SQLITE_NEXT.format(x=compiler.process(element.clauses, **kw))


def offset_literal(value: int) -> ColumnElement[int]:
    """A bound ``Offset`` value, for SQL that has no offset column to take the type from."""
    return literal(value, Offset())


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
    them, which is what makes an allocation safe.
    """

    __tablename__ = "address"
    __table_args__ = (
        UniqueConstraint("address_block_id", "offset"),
        UniqueConstraint("structure_id", "interface_name", "alias_index"),
        partial_index("uq_address_one_primary", "structure_id", where="is_primary", unique=True),
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
