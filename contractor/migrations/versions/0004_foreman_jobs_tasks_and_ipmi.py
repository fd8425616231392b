"""foreman jobs tasks and ipmi"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0004'
down_revision = '0003'


def upgrade() -> None:
    op.create_table('job_log',
    columns.id(),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_state', sa.String(length=10), nullable=True),
    sa.Column('to_state', sa.String(length=10), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    columns.primary_key('job_log')
    )
    columns.index('job_log', 'job_id')
    op.create_table('subcontractor_token',
    columns.id(),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('sites', sa.JSON(), nullable=False),
    sa.Column('modules', sa.JSON(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    *columns.timestamps(),
    columns.primary_key('subcontractor_token'),
    columns.unique('subcontractor_token', 'key')
    )
    op.create_table('ipmi_foundation',
    columns.id(),
    sa.Column('bmc_address', sa.String(length=255), nullable=True),
    sa.Column('bmc_port', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password', sa.String(length=255), nullable=False),
    columns.foreign_key('ipmi_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('ipmi_foundation')
    )
    op.create_table('job',
    columns.id(),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('target_kind', sa.String(length=10), nullable=False),
    sa.Column('foundation_id', sa.Integer(), nullable=True),
    sa.Column('structure_id', sa.Integer(), nullable=True),
    sa.Column('dependency_id', sa.Integer(), nullable=True),
    sa.Column('target_description', sa.String(length=200), nullable=False),
    sa.Column('script_name', sa.String(length=50), nullable=False),
    sa.Column('script_source', sa.Text(), nullable=False),
    sa.Column('runner_state', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.JSON(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('step_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signalled', sa.Boolean(), nullable=False),
    sa.Column('creator', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    *columns.timestamps(),
    sa.CheckConstraint("state IN ('waiting', 'queued', 'paused', 'error', 'aborted', 'done')", name=op.f('ck_job_state_known')),
    sa.CheckConstraint('(CASE WHEN foundation_id IS NULL THEN 0 ELSE 1 END + CASE WHEN structure_id IS NULL THEN 0 ELSE 1 END + CASE WHEN dependency_id IS NULL THEN 0 ELSE 1 END) = 1', name=op.f('ck_job_one_target')),
    columns.foreign_key('job', 'dependency_id', 'dependency', ondelete='CASCADE'),
    columns.foreign_key('job', 'foundation_id', 'foundation', ondelete='CASCADE'),
    columns.foreign_key('job', 'site_id', 'site', ondelete='RESTRICT'),
    columns.foreign_key('job', 'structure_id', 'structure', ondelete='CASCADE'),
    columns.primary_key('job')
    )
    columns.index('job', 'site_id')
    op.create_index('ix_job_step_at', 'job', ['step_at'], unique=False)
    op.create_index('uq_job_unfinished_dependency_id', 'job', ['dependency_id'], unique=True, postgresql_where=sa.text('finished_at IS NULL'), sqlite_where=sa.text('finished_at IS NULL'))
    op.create_index('uq_job_unfinished_foundation_id', 'job', ['foundation_id'], unique=True, postgresql_where=sa.text('finished_at IS NULL'), sqlite_where=sa.text('finished_at IS NULL'))
    op.create_index('uq_job_unfinished_structure_id', 'job', ['structure_id'], unique=True, postgresql_where=sa.text('finished_at IS NULL'), sqlite_where=sa.text('finished_at IS NULL'))
    op.create_table('task',
    columns.id(),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('module', sa.String(length=40), nullable=False),
    sa.Column('function', sa.String(length=60), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('cookie', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('lease', sa.String(length=40), nullable=True),
    sa.Column('lease_holder', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('open', 'done', 'failed', 'cancelled')", name=op.f('ck_task_state_known')),
    columns.foreign_key('task', 'job_id', 'job', ondelete='CASCADE'),
    columns.foreign_key('task', 'site_id', 'site', ondelete='CASCADE'),
    columns.primary_key('task')
    )
    columns.index('task', 'job_id')
    op.create_index('ix_task_open', 'task', ['site_id', 'module', 'id'], unique=False, postgresql_where=sa.text("state = 'open'"), sqlite_where=sa.text("state = 'open'"))


def downgrade() -> None:
    op.drop_index('ix_task_open', table_name='task', postgresql_where=sa.text("state = 'open'"), sqlite_where=sa.text("state = 'open'"))
    op.drop_index(op.f('ix_task_job_id'), table_name='task')
    op.drop_table('task')
    op.drop_index('uq_job_unfinished_structure_id', table_name='job', postgresql_where=sa.text('finished_at IS NULL'), sqlite_where=sa.text('finished_at IS NULL'))
    op.drop_index('uq_job_unfinished_foundation_id', table_name='job', postgresql_where=sa.text('finished_at IS NULL'), sqlite_where=sa.text('finished_at IS NULL'))
    op.drop_index('uq_job_unfinished_dependency_id', table_name='job', postgresql_where=sa.text('finished_at IS NULL'), sqlite_where=sa.text('finished_at IS NULL'))
    op.drop_index('ix_job_step_at', table_name='job')
    op.drop_index(op.f('ix_job_site_id'), table_name='job')
    op.drop_table('job')
    op.drop_table('ipmi_foundation')
    op.drop_table('subcontractor_token')
    op.drop_index(op.f('ix_job_log_job_id'), table_name='job_log')
    op.drop_table('job_log')
