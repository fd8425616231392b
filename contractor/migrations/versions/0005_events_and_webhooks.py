"""events and webhooks

The outbox (one row per change, its id the subscribers' cursor), webhook targets and their
delivery log (contractor.models.events).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0005'
down_revision = '0004'


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.BigInteger(), nullable=False),
    sa.Column('object_name', sa.String(length=200), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('blueprint_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('changed', sa.JSON(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    columns.primary_key('event'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_object', ['object_type', 'object_id'], unique=False)

    op.create_table('webhook_target',
    columns.id(),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    *columns.timestamps(),
    columns.primary_key('webhook_target'),
    columns.unique('webhook_target', 'name')
    )
    op.create_table('webhook_delivery',
    columns.id(),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('object_key', sa.String(length=80), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    columns.foreign_key('webhook_delivery', 'target_id', 'webhook_target', ondelete='CASCADE'),
    columns.primary_key('webhook_delivery'),
    columns.unique('webhook_delivery', 'target_id', 'event_id')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_delivery_due', ['next_attempt_at', 'id'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index('ix_webhook_delivery_order', ['target_id', 'object_key', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_delivery_order')
        batch_op.drop_index('ix_webhook_delivery_due', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))

    op.drop_table('webhook_delivery')
    op.drop_table('webhook_target')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_object')

    op.drop_table('event')
