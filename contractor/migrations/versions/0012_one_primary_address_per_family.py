"""one primary address per IP version

A dual-stack structure has a primary IPv4 and a primary IPv6 address (its bare name gets
both an A and an AAAA record): ``address.ip_version`` (the block's, for addresses held by a
structure) and the unique index on one primary per structure and version.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'


def upgrade() -> None:
    op.add_column('address', sa.Column('ip_version', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE address SET ip_version = (SELECT version FROM address_block "
        "WHERE address_block.id = address.address_block_id) "
        "WHERE address_block_id IS NOT NULL"
    )
    op.drop_index('uq_address_one_primary', table_name='address', postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))
    op.create_index('uq_address_one_primary_per_version', 'address', ['structure_id', 'ip_version'], unique=True, postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))


def downgrade() -> None:
    op.drop_index('uq_address_one_primary_per_version', table_name='address', postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))
    # Keeps the IPv4 primary of a dual-stack structure (the one the old rule allowed).
    op.execute(
        "UPDATE address SET is_primary = false WHERE is_primary AND ip_version = 6 AND "
        "structure_id IN (SELECT structure_id FROM address WHERE is_primary AND ip_version = 4)"
    )
    op.create_index('uq_address_one_primary', 'address', ['structure_id'], unique=True, postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))
    op.drop_column('address', 'ip_version')
