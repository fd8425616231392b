"""published zone list: what the last full DNS publish found (its zones, their kinds,
content hashes and problems) and the newest event it had seen, so a publish with nothing
changed answers without reading the inventory"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0022'
down_revision = '0021'


def upgrade() -> None:
    op.create_table('published_zone_list',
    columns.id(),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('zones', sa.JSON(), nullable=False),
    columns.primary_key('published_zone_list')
    )


def downgrade() -> None:
    op.drop_table('published_zone_list')
