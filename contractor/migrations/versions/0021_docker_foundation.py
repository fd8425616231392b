"""docker foundation: the table of the docker foundation type (one container on a member of
a Docker Complex)"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0021'
down_revision = '0020'


def upgrade() -> None:
    op.create_table('docker_foundation',
    columns.id(),
    sa.Column('image', sa.String(length=255), nullable=True),
    sa.Column('command', sa.JSON(), nullable=True),
    sa.Column('environment', sa.JSON(), nullable=False),
    sa.Column('ports', sa.JSON(), nullable=False),
    sa.Column('container_id', sa.String(length=64), nullable=True),
    sa.Column('port_map', sa.JSON(), nullable=False),
    columns.foreign_key('docker_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('docker_foundation')
    )


def downgrade() -> None:
    op.drop_table('docker_foundation')
