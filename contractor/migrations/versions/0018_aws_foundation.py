"""aws foundation: the table of the AWS foundation type (one EC2 instance)"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0018'
down_revision = '0014'


def upgrade() -> None:
    op.create_table('aws_foundation',
    columns.id(),
    sa.Column('region', sa.String(length=30), nullable=True),
    sa.Column('endpoint_url', sa.String(length=255), nullable=True),
    sa.Column('access_key_id', sa.String(length=128), nullable=False),
    sa.Column('secret_access_key', sa.String(length=255), nullable=False),
    sa.Column('instance_id', sa.String(length=32), nullable=True),
    sa.Column('public_ip_address', sa.String(length=45), nullable=True),
    columns.foreign_key('aws_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('aws_foundation'),
    columns.unique('aws_foundation', 'instance_id')
    )


def downgrade() -> None:
    op.drop_table('aws_foundation')
