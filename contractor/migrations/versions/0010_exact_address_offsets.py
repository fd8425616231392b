"""exact address offsets

Offsets in address blocks (``address.offset``, ``address_block.gateway_offset``) were
integers: 32 bits on PostgreSQL and 64 on SQLite, while an IPv6 /64 has offsets up to
2**64 - 2 (and a /48 up to 2**80 - 2). They become exact, as ``models.offsets.Offset``
reads and writes them: ``numeric(39, 0)`` on PostgreSQL; on SQLite a ``BLOB`` column (no
affinity, so each value keeps its storage class) holding an integer below 2**62 and the 39
zero-padded decimal digits of a larger offset (SQLite orders integers before strings).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0010'
down_revision = '0009'

# (table, column) of every offset.
OFFSETS = (('address', 'offset'), ('address_block', 'gateway_offset'))
SQLITE_INTEGER_BELOW = 2**62
# The largest an integer column held before: 32 bits on PostgreSQL, 64 on SQLite.
INTEGER_MAX = {'postgresql': 2**31 - 1, 'sqlite': 2**63 - 1}


def upgrade() -> None:
    for table, column in OFFSETS:
        _change_type(table, column, sa.Integer(), columns.offset_type(), 'numeric(39, 0)')
        if op.get_bind().dialect.name == 'sqlite':
            # The table's copy cast each integer to a BLOB of its digits: back to integers,
            # and the digits of those from 2**62 on, zero-padded.
            op.execute(
                f'UPDATE {table} SET "{column}" = CAST("{column}" AS INTEGER) '
                f'WHERE "{column}" IS NOT NULL'
            )
            op.execute(
                f'UPDATE {table} SET "{column}" = printf(\'%039d\', "{column}") '
                f'WHERE "{column}" >= {SQLITE_INTEGER_BELOW}'
            )


def downgrade() -> None:
    for table, column in OFFSETS:
        _refuse_offsets_beyond_integer(table, column)
    for table, column in OFFSETS:
        # SQLite's copy casts integers and zero-padded digits alike to integers.
        _change_type(table, column, columns.offset_type(), sa.Integer(), 'integer')


def _change_type(
    table: str, column: str, old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any], cast: str
) -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column(
            table,
            column,
            existing_type=old,
            type_=new,
            existing_nullable=True,
            postgresql_using=f'"{column}"::{cast}',
        )
        return
    with op.batch_alter_table(table) as batch_op:  # SQLite: a copy of the table
        batch_op.alter_column(column, existing_type=old, type_=new, existing_nullable=True)


def _refuse_offsets_beyond_integer(table: str, column: str) -> None:
    """An integer column cannot hold them: refuse rather than lose them."""
    dialect = op.get_bind().dialect.name
    highest = INTEGER_MAX[dialect]
    # On SQLite, a string (an offset from 2**62 on) is greater than every integer.
    limit = highest if dialect == 'postgresql' else f'{highest:039d}'
    count = op.get_bind().execute(
        sa.text(f'SELECT count(*) FROM {table} WHERE "{column}" > :limit'), {'limit': limit}
    ).scalar_one()
    if count:
        raise RuntimeError(
            f'cannot downgrade: {count} rows of {table}.{column} hold offsets above '
            f'{highest}, which an integer column cannot hold; delete them first'
        )
