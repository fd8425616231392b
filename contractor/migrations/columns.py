"""Column builders for the migrations in ``versions/``, and only for them.

A migration is history: a revision must build the same schema for ever. So what these
functions build must never change; a table needing something else spells it out, or a new
builder is added beside these.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op


def id() -> sa.Column[int]:
    """The integer ``id`` column every table's primary key is made of."""
    return sa.Column("id", sa.Integer(), nullable=False)


def timestamps() -> tuple[sa.Column[object], sa.Column[object]]:
    """The ``created`` and ``updated`` columns (timezone-aware, required)."""
    return (
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )


def primary_key(table: str) -> sa.PrimaryKeyConstraint:
    """The primary key on ``id``, named ``pk_<table>``."""
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def foreign_key(table: str, column: str, target: str, *, ondelete: str) -> sa.ForeignKeyConstraint:
    """``table.column`` referring to ``target.id``, named ``fk_<table>_<column>_<target>``."""
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def unique(table: str, *names: str) -> sa.UniqueConstraint:
    """A unique constraint over ``names``, named ``uq_<table>_<names joined by _>``."""
    return sa.UniqueConstraint(*names, name=op.f(f"uq_{table}_{'_'.join(names)}"))


def index(table: str, column: str) -> None:
    """The plain index on one column that a foreign key wants, named ``ix_<table>_<column>``."""
    op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def ordered_link(table: str, owner: tuple[str, str], member: tuple[str, str]) -> None:
    """Create a table through which an owner lists members in order (``position``).

    ``owner`` and ``member`` are (column, table) pairs. The links go with their owner; a
    member that is listed cannot be deleted. The member column is indexed for that check.
    """
    owner_column, owner_table = owner
    member_column, member_table = member
    op.create_table(
        table,
        sa.Column(owner_column, sa.Integer(), nullable=False),
        sa.Column(member_column, sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        foreign_key(table, owner_column, owner_table, ondelete="CASCADE"),
        foreign_key(table, member_column, member_table, ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint(owner_column, member_column, name=op.f(f"pk_{table}")),
    )
    index(table, member_column)


def offset_type() -> sa.types.TypeEngine[Any]:
    """What an offset in an address block is stored as (``models.offsets.Offset``): exact
    up to 2**128, ``numeric(39, 0)`` on PostgreSQL, and on SQLite a column without affinity
    (``BLOB``) holding an integer below 2**62 or else 39 zero-padded digits."""
    return sa.Numeric(39, 0).with_variant(sa.LargeBinary(), "sqlite")
