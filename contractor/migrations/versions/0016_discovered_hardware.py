"""discovered hardware

Machines that booted with no reservation and reported their hardware: one row per boot MAC
(discovered_hardware), with the planned Foundation it matched and why it was not located.
"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0016'
down_revision = '0017'


def upgrade() -> None:
    op.create_table('discovered_hardware',
    columns.id(),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('mac', sa.String(length=17), nullable=False),
    sa.Column('serial', sa.String(length=200), nullable=True),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('foundation_id', sa.Integer(), nullable=True),
    sa.Column('located', sa.Boolean(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.Column('reports', sa.Integer(), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    *columns.timestamps(),
    columns.foreign_key('discovered_hardware', 'site_id', 'site', ondelete='CASCADE'),
    columns.foreign_key('discovered_hardware', 'foundation_id', 'foundation', ondelete='SET NULL'),
    columns.primary_key('discovered_hardware'),
    sa.UniqueConstraint('mac', name=op.f('uq_discovered_hardware_mac'))
    )
    op.create_index(op.f('ix_discovered_hardware_site_id'), 'discovered_hardware', ['site_id'], unique=False)
    op.create_index(op.f('ix_discovered_hardware_serial'), 'discovered_hardware', ['serial'], unique=False)
    op.create_index(op.f('ix_discovered_hardware_foundation_id'), 'discovered_hardware', ['foundation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_discovered_hardware_foundation_id'), table_name='discovered_hardware')
    op.drop_index(op.f('ix_discovered_hardware_serial'), table_name='discovered_hardware')
    op.drop_index(op.f('ix_discovered_hardware_site_id'), table_name='discovered_hardware')
    op.drop_table('discovered_hardware')
