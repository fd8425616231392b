"""exact address offsets

Offsets in address blocks (``address.offset``, ``address_block.gateway_offset``) were
integers: 32 bits on PostgreSQL and 64 on SQLite, while an IPv6 /64 has offsets up to
2**64 - 2 (and a /48 up to 2**80 - 2). They become exact numbers: ``numeric(39, 0)`` on
PostgreSQL, and on SQLite 39 decimal digits with leading zeros (text order is numeric
order there), as ``models.network.Offset`` reads and writes them.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0010'
down_revision = '0009'

# (table, column) of every offset.
OFFSETS = (('address', 'offset'), ('address_block', 'gateway_offset'))
# The largest an integer column held before: 32 bits on PostgreSQL, 64 on SQLite.
INTEGER_MAX = {'postgresql': 2**31 - 1, 'sqlite': 2**63 - 1}


def upgrade() -> None:
    for table, column in OFFSETS:
        _change_type(table, column, sa.Integer(), columns.offset_type(), 'numeric(39, 0)')
        if op.get_bind().dialect.name == 'sqlite':
            op.execute(
                f'UPDATE {table} SET "{column}" = printf(\'%039d\', "{column}") '
                f'WHERE "{column}" IS NOT NULL'
            )


def downgrade() -> None:
    for table, column in OFFSETS:
        _refuse_offsets_beyond_integer(table, column)
    for table, column in OFFSETS:
        # SQLite's copy casts the zero-padded digits back to integers.
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
    limit = highest if dialect == 'postgresql' else f'{highest:039d}'
    count = op.get_bind().execute(
        sa.text(f'SELECT count(*) FROM {table} WHERE "{column}" > :limit'), {'limit': limit}
    ).scalar_one()
    if count:
        raise RuntimeError(
            f'cannot downgrade: {count} rows of {table}.{column} hold offsets above '
            f'{highest}, which an integer column cannot hold; delete them first'
        )
