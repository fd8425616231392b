"""dns entries and published serials

Zone entries (CNAME, MX, NS, SRV, TXT), each published zone's serial and content hash, and
the zones' name servers and SOA mailbox. Existing zones get an empty name-server list
(inherited from the parent zone).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0002'
down_revision = '0001'


def upgrade() -> None:
    op.create_table('published_zone',
    columns.id(),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('serial', sa.BigInteger(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    *columns.timestamps(),
    columns.primary_key('published_zone'),
    columns.unique('published_zone', 'name')
    )
    op.create_table('zone_entry',
    columns.id(),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=5), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('target', sa.String(length=254), nullable=True),
    sa.Column('text', sa.String(length=2000), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.Column('weight', sa.Integer(), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('ttl', sa.Integer(), nullable=True),
    *columns.timestamps(),
    sa.CheckConstraint("type IN ('CNAME', 'MX', 'NS', 'SRV', 'TXT')", name=op.f('ck_zone_entry_type_known')),
    columns.foreign_key('zone_entry', 'zone_id', 'zone', ondelete='CASCADE'),
    columns.primary_key('zone_entry')
    )
    op.create_index('ix_zone_entry_zone_name', 'zone_entry', ['zone_id', 'name'], unique=False)
    op.add_column('zone', sa.Column('nameservers', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table('zone') as batch:
        batch.alter_column('nameservers', server_default=None)
    op.add_column('zone', sa.Column('soa_email', sa.String(length=254), nullable=True))


def downgrade() -> None:
    op.drop_column('zone', 'soa_email')
    op.drop_column('zone', 'nameservers')
    op.drop_index('ix_zone_entry_zone_name', table_name='zone_entry')
    op.drop_table('zone_entry')
    op.drop_table('published_zone')
