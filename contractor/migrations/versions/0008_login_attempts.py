"""login attempts

Refused logins (and those being checked) within the throttle's window, per username and per
client address, shared by every server process (contractor.models.auth.LoginAttempt).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0008'
down_revision = '0007'


def upgrade() -> None:
    op.create_table('login_attempt',
    columns.id(),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.CheckConstraint("outcome IN ('checking', 'unknown_user', 'wrong_password', 'no_password', 'disabled', 'throttled')", name=op.f('ck_login_attempt_outcome_known')),
    columns.primary_key('login_attempt')
    )
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempt_address', ['address', 'at'], unique=False)
        batch_op.create_index('ix_login_attempt_at', ['at'], unique=False)
        batch_op.create_index('ix_login_attempt_username', ['username', 'at'], unique=False)


def downgrade() -> None:
    op.drop_table('login_attempt')
