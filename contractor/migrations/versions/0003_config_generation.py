"""config generation

One row counting changes to configuration sources: every process caching composed
configurations compares it before using its cache (contractor.services.config).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0003'
down_revision = '0002'


def upgrade() -> None:
    table = op.create_table('config_generation',
    columns.id(),
    sa.Column('value', sa.BigInteger(), nullable=False),
    columns.primary_key('config_generation')
    )
    op.bulk_insert(table, [{'id': 1, 'value': 0}])


def downgrade() -> None:
    op.drop_table('config_generation')
