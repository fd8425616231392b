"""boot data

DHCP pools in address blocks (dhcp_pool), and the boot data served to a site's boot
services: one row per reservation and pool with the version that last changed it
(boot_entry), and each site's version counter (boot_site).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0014'
down_revision = '0013'


def upgrade() -> None:
    op.create_table('dhcp_pool',
    columns.id(),
    sa.Column('address_block_id', sa.Integer(), nullable=False),
    sa.Column('first_offset', columns.offset_type(), nullable=False),
    sa.Column('last_offset', columns.offset_type(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    *columns.timestamps(),
    sa.CheckConstraint('first_offset <= last_offset', name=op.f('ck_dhcp_pool_ordered')),
    sa.ForeignKeyConstraint(['address_block_id'], ['address_block.id'], name=op.f('fk_dhcp_pool_address_block_id_address_block'), ondelete='RESTRICT'),
    columns.primary_key('dhcp_pool')
    )
    op.create_index('ix_dhcp_pool_block_range', 'dhcp_pool', ['address_block_id', 'first_offset', 'last_offset'], unique=False)
    op.create_table('boot_site',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('floor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_boot_site_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_boot_site'))
    )
    op.create_table('boot_entry',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_boot_entry_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', 'key', name=op.f('pk_boot_entry'))
    )
    op.create_index('ix_boot_entry_site_version', 'boot_entry', ['site_id', 'version'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_boot_entry_site_version', table_name='boot_entry')
    op.drop_table('boot_entry')
    op.drop_table('boot_site')
    op.drop_index('ix_dhcp_pool_block_range', table_name='dhcp_pool')
    op.drop_table('dhcp_pool')
