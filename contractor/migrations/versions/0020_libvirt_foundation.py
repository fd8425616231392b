"""libvirt foundation: the table of the libvirt foundation type (one VM on a libvirt host)"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0020'
down_revision = '0019'


def upgrade() -> None:
    op.create_table('libvirt_foundation',
    columns.id(),
    sa.Column('cpu_count', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.Column('pool', sa.String(length=64), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=True),
    sa.Column('bridge', sa.String(length=64), nullable=True),
    sa.Column('domain_uuid', sa.String(length=36), nullable=True),
    columns.foreign_key('libvirt_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('libvirt_foundation'),
    columns.unique('libvirt_foundation', 'domain_uuid')
    )


def downgrade() -> None:
    op.drop_table('libvirt_foundation')
