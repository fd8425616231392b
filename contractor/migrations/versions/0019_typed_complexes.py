"""typed complexes

A Complex's type (generic, libvirt, docker, simulated) and over-commit ratios; each member's
endpoint, credentials, capacity and what is placed on it; and where each hosted Foundation is placed
(foundation_placement).
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0019'
down_revision = '0015'


def upgrade() -> None:
    with op.batch_alter_table('complex') as batch:
        batch.add_column(sa.Column('type', sa.String(length=40), nullable=False, server_default='generic'))
        for name in ('cpu_overcommit', 'memory_overcommit', 'disk_overcommit'):
            batch.add_column(sa.Column(name, sa.Float(), nullable=False, server_default=sa.text('1.0')))
        batch.create_check_constraint(
            op.f('ck_complex_overcommit_at_least_one'),
            'cpu_overcommit >= 1 AND memory_overcommit >= 1 AND disk_overcommit >= 1',
        )
    with op.batch_alter_table('complex') as batch:
        for name in ('type', 'cpu_overcommit', 'memory_overcommit', 'disk_overcommit'):
            batch.alter_column(name, server_default=None)
    with op.batch_alter_table('complex_member') as batch:
        batch.add_column(sa.Column('endpoint', sa.String(length=255), nullable=False, server_default=''))
        batch.add_column(sa.Column('username', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('password', sa.String(length=255), nullable=False, server_default=''))
        batch.add_column(sa.Column('cpu_count', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('memory_mb', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('disk_gb', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('capacity_read_at', sa.DateTime(timezone=True), nullable=True))
        for name in ('allocated_cpus', 'allocated_memory_mb', 'allocated_disk_gb'):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default='0'))
        batch.create_check_constraint(
            op.f('ck_complex_member_capacity_not_negative'), 'cpu_count >= 0 AND memory_mb >= 0 AND disk_gb >= 0'
        )
    with op.batch_alter_table('complex_member') as batch:
        for name in ('endpoint', 'username', 'password', 'allocated_cpus', 'allocated_memory_mb', 'allocated_disk_gb'):
            batch.alter_column(name, server_default=None)
    op.create_table('foundation_placement',
    sa.Column('foundation_id', sa.Integer(), nullable=False),
    sa.Column('complex_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('cpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.CheckConstraint('cpus >= 0 AND memory_mb >= 0 AND disk_gb >= 0', name=op.f('ck_foundation_placement_demand_not_negative')),
    columns.foreign_key('foundation_placement', 'foundation_id', 'foundation', ondelete='CASCADE'),
    columns.foreign_key('foundation_placement', 'complex_id', 'complex', ondelete='RESTRICT'),
    columns.foreign_key('foundation_placement', 'member_id', 'complex_member', ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('foundation_id', name=op.f('pk_foundation_placement'))
    )
    columns.index('foundation_placement', 'complex_id')
    columns.index('foundation_placement', 'member_id')


def downgrade() -> None:
    op.drop_index(op.f('ix_foundation_placement_member_id'), table_name='foundation_placement')
    op.drop_index(op.f('ix_foundation_placement_complex_id'), table_name='foundation_placement')
    op.drop_table('foundation_placement')
    with op.batch_alter_table('complex_member') as batch:
        batch.drop_constraint(op.f('ck_complex_member_capacity_not_negative'), type_='check')
        for name in ('allocated_disk_gb', 'allocated_memory_mb', 'allocated_cpus', 'capacity_read_at', 'disk_gb', 'memory_mb', 'cpu_count', 'password', 'username', 'endpoint'):
            batch.drop_column(name)
    with op.batch_alter_table('complex') as batch:
        batch.drop_constraint(op.f('ck_complex_overcommit_at_least_one'), type_='check')
        for name in ('disk_overcommit', 'memory_overcommit', 'cpu_overcommit', 'type'):
            batch.drop_column(name)
