"""event retention and delivery retries

How far the event log has been pruned (event_horizon), an index to find the events that
deliveries still name, and when an operator last retried a delivery (its maximum age counts
from then; its creation time stays).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0006'
down_revision = '0005'


def upgrade() -> None:
    op.create_table('event_horizon',
    columns.id(),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('pruned_at', sa.DateTime(timezone=True), nullable=False),
    columns.primary_key('event_horizon')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retried_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_webhook_delivery_event', ['event_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_delivery_event')
        batch_op.drop_column('retried_at')

    op.drop_table('event_horizon')
