"""dns live updates

What the authoritative server was last told per zone pushed by RFC 2136 updates
(dns_push_zone), the log of every push (dns_push), and the last event the pusher has
accounted for (dns_push_cursor).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0009'
down_revision = '0008'


def upgrade() -> None:
    op.create_table('dns_push_zone',
    columns.id(),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('records', sa.JSON(), nullable=True),
    sa.Column('serial', sa.BigInteger(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
    columns.primary_key('dns_push_zone'),
    columns.unique('dns_push_zone', 'name')
    )
    op.create_table('dns_push',
    columns.id(),
    sa.Column('zone', sa.String(length=253), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('serial', sa.BigInteger(), nullable=True),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('deleted', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('rcode', sa.String(length=20), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    columns.primary_key('dns_push')
    )
    op.create_index('ix_dns_push_zone', 'dns_push', ['zone', 'id'], unique=False)
    op.create_table('dns_push_cursor',
    columns.id(),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    columns.primary_key('dns_push_cursor')
    )


def downgrade() -> None:
    op.drop_table('dns_push_cursor')
    op.drop_index('ix_dns_push_zone', table_name='dns_push')
    op.drop_table('dns_push')
    op.drop_table('dns_push_zone')
