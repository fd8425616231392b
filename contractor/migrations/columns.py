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


def offset_type() -> sa.types.TypeEngine[Any]:
    """What an offset in an address block is stored as (``models.offsets.Offset``): exact
    up to 2**128, ``numeric(39, 0)`` on PostgreSQL, and on SQLite a column without affinity
    (``BLOB``) holding an integer below 2**62 or else 39 zero-padded digits."""
    return sa.Numeric(39, 0).with_variant(sa.LargeBinary(), "sqlite")
