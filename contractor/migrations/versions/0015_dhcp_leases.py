"""dhcp leases

The leases a site's boot services report (dhcp_lease): one row per site, MAC and address.
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0015'
down_revision = '0016'


def upgrade() -> None:
    op.create_table('dhcp_lease',
    columns.id(),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('mac', sa.String(length=17), nullable=False),
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.Column('hostname', sa.String(length=253), nullable=False),
    sa.Column('starts', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('active', 'expired', 'released')", name=op.f('ck_dhcp_lease_state')),
    columns.foreign_key('dhcp_lease', 'site_id', 'site', ondelete='CASCADE'),
    columns.primary_key('dhcp_lease'),
    columns.unique('dhcp_lease', 'site_id', 'mac', 'address')
    )
    op.create_index('ix_dhcp_lease_mac', 'dhcp_lease', ['mac'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dhcp_lease_mac', table_name='dhcp_lease')
    op.drop_table('dhcp_lease')
