"""redfish foundation

The ``redfish`` foundation type's table (contractor/plugins/redfish.py): the BMC's address,
port and credentials, the system behind it, and how its TLS certificate is checked.
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0017'
down_revision = '0018'


def upgrade() -> None:
    op.create_table('redfish_foundation',
    columns.id(),
    sa.Column('bmc_address', sa.String(length=255), nullable=True),
    sa.Column('bmc_port', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password', sa.String(length=255), nullable=False),
    sa.Column('system_id', sa.String(length=255), nullable=True),
    sa.Column('verify_tls', sa.Boolean(), nullable=False),
    sa.Column('ca_bundle', sa.Text(), nullable=True),
    columns.foreign_key('redfish_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('redfish_foundation')
    )


def downgrade() -> None:
    op.drop_table('redfish_foundation')
