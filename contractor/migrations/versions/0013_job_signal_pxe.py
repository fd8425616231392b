"""job signal pxe

The PXE target whose boot a job's ``signaling.reset( pxe_name=... )`` expects to signal
(``job.signal_pxe_name``): a signal is accepted only with a cookie naming it.
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'


def upgrade() -> None:
    with op.batch_alter_table('job') as batch:
        batch.add_column(sa.Column('signal_pxe_name', sa.String(length=50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job') as batch:
        batch.drop_column('signal_pxe_name')
