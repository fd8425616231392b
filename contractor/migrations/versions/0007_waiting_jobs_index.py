"""waiting jobs index

A job that finishes makes its site's waiting jobs due; this partial index finds them without
reading the site's whole job history.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_job_waiting', 'job', ['site_id', 'id'], unique=False, postgresql_where=sa.text("state = 'waiting'"), sqlite_where=sa.text("state = 'waiting'"))


def downgrade() -> None:
    op.drop_index('ix_job_waiting', table_name='job', postgresql_where=sa.text("state = 'waiting'"), sqlite_where=sa.text("state = 'waiting'"))
