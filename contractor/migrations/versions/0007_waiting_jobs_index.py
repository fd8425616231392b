"""waiting jobs index

A job that finishes makes its site's waiting jobs due; this partial index finds them without
reading the site's whole job history.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'


def upgrade() -> None:
    op.create_index('ix_job_waiting', 'job', ['site_id', 'id'], unique=False, postgresql_where=sa.text("state = 'waiting'"), sqlite_where=sa.text("state = 'waiting'"))


def downgrade() -> None:
    op.drop_index('ix_job_waiting', table_name='job', postgresql_where=sa.text("state = 'waiting'"), sqlite_where=sa.text("state = 'waiting'"))
