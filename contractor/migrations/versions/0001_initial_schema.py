"""initial schema"""

import sqlalchemy as sa
from alembic import op

from contractor.migrations import columns

revision = '0001'
down_revision = None


def upgrade() -> None:
    op.create_table('blueprint',
    columns.id(),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('config_values', sa.JSON(), nullable=False),
    *columns.timestamps(),
    columns.primary_key('blueprint'),
    columns.unique('blueprint', 'name')
    )
    op.create_table('pxe',
    columns.id(),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('boot_script', sa.Text(), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    *columns.timestamps(),
    columns.primary_key('pxe'),
    columns.unique('pxe', 'name')
    )
    op.create_table('script',
    columns.id(),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    *columns.timestamps(),
    columns.primary_key('script'),
    columns.unique('script', 'name')
    )
    op.create_table('user_account',
    columns.id(),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    *columns.timestamps(),
    sa.CheckConstraint("role IN ('reader', 'operator', 'admin')", name=op.f('ck_user_account_role_known')),
    columns.primary_key('user_account'),
    columns.unique('user_account', 'username')
    )
    op.create_table('zone',
    columns.id(),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('ttl', sa.Integer(), nullable=False),
    sa.Column('refresh', sa.Integer(), nullable=False),
    sa.Column('retry', sa.Integer(), nullable=False),
    sa.Column('expire', sa.Integer(), nullable=False),
    sa.Column('minimum', sa.Integer(), nullable=False),
    *columns.timestamps(),
    columns.foreign_key('zone', 'parent_id', 'zone', ondelete='RESTRICT'),
    columns.primary_key('zone'),
    columns.unique('zone', 'parent_id', 'name')
    )
    columns.index('zone', 'parent_id')
    op.create_index('uq_zone_top_level_name', 'zone', ['name'], unique=True, postgresql_where=sa.text('parent_id IS NULL'), sqlite_where=sa.text('parent_id IS NULL'))
    op.create_table('api_token',
    columns.id(),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    *columns.timestamps(),
    columns.foreign_key('api_token', 'user_id', 'user_account', ondelete='CASCADE'),
    columns.primary_key('api_token'),
    columns.unique('api_token', 'key')
    )
    columns.index('api_token', 'user_id')
    columns.ordered_link('blueprint_parent', ('child_id', 'blueprint'), ('parent_id', 'blueprint'))
    op.create_table('blueprint_script',
    columns.id(),
    sa.Column('blueprint_id', sa.Integer(), nullable=False),
    sa.Column('script_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    columns.foreign_key('blueprint_script', 'blueprint_id', 'blueprint', ondelete='CASCADE'),
    columns.foreign_key('blueprint_script', 'script_id', 'script', ondelete='RESTRICT'),
    columns.primary_key('blueprint_script'),
    columns.unique('blueprint_script', 'blueprint_id', 'name')
    )
    columns.index('blueprint_script', 'script_id')
    op.create_table('foundation_blueprint',
    columns.id(),
    sa.Column('foundation_types', sa.JSON(), nullable=False),
    sa.Column('physical_interface_names', sa.JSON(), nullable=False),
    sa.Column('min_cpu_count', sa.Integer(), nullable=True),
    sa.Column('min_memory_mb', sa.Integer(), nullable=True),
    sa.Column('required_pci_devices', sa.JSON(), nullable=False),
    sa.Column('required_disks_gb', sa.JSON(), nullable=False),
    columns.foreign_key('foundation_blueprint', 'id', 'blueprint', ondelete='CASCADE'),
    columns.primary_key('foundation_blueprint')
    )
    op.create_table('site',
    columns.id(),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('zone_id', sa.Integer(), nullable=True),
    sa.Column('config_values', sa.JSON(), nullable=False),
    *columns.timestamps(),
    columns.foreign_key('site', 'parent_id', 'site', ondelete='RESTRICT'),
    columns.foreign_key('site', 'zone_id', 'zone', ondelete='RESTRICT'),
    columns.primary_key('site'),
    columns.unique('site', 'name')
    )
    columns.index('site', 'parent_id')
    columns.index('site', 'zone_id')
    op.create_table('structure_blueprint',
    columns.id(),
    columns.foreign_key('structure_blueprint', 'id', 'blueprint', ondelete='CASCADE'),
    columns.primary_key('structure_blueprint')
    )
    op.create_table('address_block',
    columns.id(),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('subnet', sa.String(length=45), nullable=False),
    sa.Column('prefix', sa.Integer(), nullable=False),
    sa.Column('gateway_offset', sa.Integer(), nullable=True),
    sa.Column('first_bin', sa.LargeBinary(length=16), nullable=False),
    sa.Column('last_bin', sa.LargeBinary(length=16), nullable=False),
    *columns.timestamps(),
    columns.foreign_key('address_block', 'site_id', 'site', ondelete='RESTRICT'),
    columns.primary_key('address_block'),
    columns.unique('address_block', 'site_id', 'name')
    )
    op.create_index('ix_address_block_site_range', 'address_block', ['site_id', 'version', 'first_bin', 'last_bin'], unique=False)
    op.create_table('complex',
    columns.id(),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('built_percentage', sa.Integer(), nullable=False),
    *columns.timestamps(),
    sa.CheckConstraint('built_percentage BETWEEN 1 AND 100', name=op.f('ck_complex_built_percentage_range')),
    columns.foreign_key('complex', 'site_id', 'site', ondelete='RESTRICT'),
    columns.primary_key('complex'),
    columns.unique('complex', 'name')
    )
    columns.index('complex', 'site_id')
    op.create_table('foundation',
    columns.id(),
    sa.Column('locator', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('blueprint_id', sa.Integer(), nullable=False),
    sa.Column('located_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id_map', sa.JSON(), nullable=True),
    *columns.timestamps(),
    columns.foreign_key('foundation', 'blueprint_id', 'foundation_blueprint', ondelete='RESTRICT'),
    columns.foreign_key('foundation', 'site_id', 'site', ondelete='RESTRICT'),
    columns.primary_key('foundation'),
    columns.unique('foundation', 'locator')
    )
    columns.index('foundation', 'blueprint_id')
    columns.index('foundation', 'site_id')
    columns.index('foundation', 'type')
    op.create_table('network',
    columns.id(),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('mtu', sa.Integer(), nullable=True),
    *columns.timestamps(),
    columns.foreign_key('network', 'site_id', 'site', ondelete='RESTRICT'),
    columns.primary_key('network'),
    columns.unique('network', 'site_id', 'name')
    )
    columns.index('network', 'site_id')
    columns.ordered_link('structure_foundation_blueprint', ('structure_blueprint_id', 'structure_blueprint'), ('foundation_blueprint_id', 'foundation_blueprint'))
    op.create_table('manual_foundation',
    columns.id(),
    columns.foreign_key('manual_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('manual_foundation')
    )
    op.create_table('network_address_block',
    sa.Column('network_id', sa.Integer(), nullable=False),
    sa.Column('address_block_id', sa.Integer(), nullable=False),
    sa.Column('vlan', sa.Integer(), nullable=True),
    columns.foreign_key('network_address_block', 'address_block_id', 'address_block', ondelete='CASCADE'),
    columns.foreign_key('network_address_block', 'network_id', 'network', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'address_block_id', name=op.f('pk_network_address_block'))
    )
    columns.index('network_address_block', 'address_block_id')
    op.create_table('real_network_interface',
    columns.id(),
    sa.Column('foundation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('physical_location', sa.String(length=100), nullable=False),
    sa.Column('mac', sa.String(length=17), nullable=True),
    sa.Column('is_provisioning', sa.Boolean(), nullable=False),
    sa.Column('link_name', sa.String(length=100), nullable=True),
    sa.Column('network_id', sa.Integer(), nullable=True),
    sa.Column('pxe_id', sa.Integer(), nullable=True),
    *columns.timestamps(),
    columns.foreign_key('real_network_interface', 'foundation_id', 'foundation', ondelete='CASCADE'),
    columns.foreign_key('real_network_interface', 'network_id', 'network', ondelete='RESTRICT'),
    columns.foreign_key('real_network_interface', 'pxe_id', 'pxe', ondelete='RESTRICT'),
    columns.primary_key('real_network_interface'),
    columns.unique('real_network_interface', 'foundation_id', 'physical_location')
    )
    columns.index('real_network_interface', 'network_id')
    columns.index('real_network_interface', 'pxe_id')
    op.create_index('uq_real_network_interface_mac', 'real_network_interface', ['mac'], unique=True, postgresql_where=sa.text('mac IS NOT NULL'), sqlite_where=sa.text('mac IS NOT NULL'))
    op.create_index('uq_real_network_interface_one_provisioning', 'real_network_interface', ['foundation_id'], unique=True, postgresql_where=sa.text('is_provisioning'), sqlite_where=sa.text('is_provisioning'))
    op.create_table('simulated_foundation',
    columns.id(),
    sa.Column('power_state', sa.String(length=3), nullable=False),
    sa.Column('delay_seconds', sa.Integer(), nullable=False),
    sa.Column('fail_likelihood', sa.Integer(), nullable=False),
    sa.CheckConstraint("power_state IN ('off', 'on')", name=op.f('ck_simulated_foundation_power_state_known')),
    sa.CheckConstraint('delay_seconds >= 0', name=op.f('ck_simulated_foundation_delay_not_negative')),
    sa.CheckConstraint('fail_likelihood BETWEEN 0 AND 100', name=op.f('ck_simulated_foundation_fail_likelihood_percent')),
    columns.foreign_key('simulated_foundation', 'id', 'foundation', ondelete='CASCADE'),
    columns.primary_key('simulated_foundation')
    )
    op.create_table('structure',
    columns.id(),
    sa.Column('hostname', sa.String(length=100), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('blueprint_id', sa.Integer(), nullable=False),
    sa.Column('foundation_id', sa.Integer(), nullable=False),
    sa.Column('config_uuid', sa.String(length=36), nullable=False),
    sa.Column('config_values', sa.JSON(), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=True),
    *columns.timestamps(),
    columns.foreign_key('structure', 'blueprint_id', 'structure_blueprint', ondelete='RESTRICT'),
    columns.foreign_key('structure', 'foundation_id', 'foundation', ondelete='RESTRICT'),
    columns.foreign_key('structure', 'site_id', 'site', ondelete='RESTRICT'),
    columns.primary_key('structure'),
    columns.unique('structure', 'config_uuid'),
    columns.unique('structure', 'foundation_id'),
    columns.unique('structure', 'site_id', 'hostname')
    )
    columns.index('structure', 'blueprint_id')
    columns.index('structure', 'hostname')
    op.create_table('abstract_network_interface',
    columns.id(),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('network_id', sa.Integer(), nullable=True),
    *columns.timestamps(),
    columns.foreign_key('abstract_network_interface', 'network_id', 'network', ondelete='RESTRICT'),
    columns.foreign_key('abstract_network_interface', 'structure_id', 'structure', ondelete='CASCADE'),
    columns.primary_key('abstract_network_interface'),
    columns.unique('abstract_network_interface', 'structure_id', 'name')
    )
    columns.index('abstract_network_interface', 'network_id')
    op.create_table('address',
    columns.id(),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('address_block_id', sa.Integer(), nullable=True),
    sa.Column('offset', sa.Integer(), nullable=True),
    sa.Column('structure_id', sa.Integer(), nullable=True),
    sa.Column('interface_name', sa.String(length=20), nullable=True),
    sa.Column('alias_index', sa.Integer(), nullable=True),
    sa.Column('pointer_id', sa.Integer(), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=50), nullable=True),
    sa.Column('pxe_id', sa.Integer(), nullable=True),
    *columns.timestamps(),
    sa.CheckConstraint('(address_block_id IS NULL) = ("offset" IS NULL)', name=op.f('ck_address_block_and_offset')),
    sa.CheckConstraint('alias_index >= 0', name=op.f('ck_address_alias_index_not_negative')),
    columns.foreign_key('address', 'address_block_id', 'address_block', ondelete='RESTRICT'),
    columns.foreign_key('address', 'pointer_id', 'address', ondelete='RESTRICT'),
    columns.foreign_key('address', 'pxe_id', 'pxe', ondelete='RESTRICT'),
    columns.foreign_key('address', 'structure_id', 'structure', ondelete='CASCADE'),
    columns.primary_key('address'),
    columns.unique('address', 'address_block_id', 'offset'),
    columns.unique('address', 'structure_id', 'interface_name', 'alias_index')
    )
    columns.index('address', 'pointer_id')
    columns.index('address', 'pxe_id')
    columns.index('address', 'structure_id')
    op.create_index('uq_address_one_primary', 'address', ['structure_id'], unique=True, postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))
    op.create_table('complex_member',
    columns.id(),
    sa.Column('complex_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    columns.foreign_key('complex_member', 'complex_id', 'complex', ondelete='CASCADE'),
    columns.foreign_key('complex_member', 'structure_id', 'structure', ondelete='RESTRICT'),
    columns.primary_key('complex_member'),
    columns.unique('complex_member', 'structure_id')
    )
    columns.index('complex_member', 'complex_id')
    op.create_table('dependency',
    columns.id(),
    sa.Column('structure_id', sa.Integer(), nullable=True),
    sa.Column('dependency_id', sa.Integer(), nullable=True),
    sa.Column('foundation_id', sa.Integer(), nullable=True),
    sa.Column('script_structure_id', sa.Integer(), nullable=True),
    sa.Column('link', sa.String(length=4), nullable=False),
    sa.Column('create_script_name', sa.String(length=40), nullable=True),
    sa.Column('destroy_script_name', sa.String(length=40), nullable=True),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=True),
    *columns.timestamps(),
    sa.CheckConstraint("link IN ('soft', 'hard')", name=op.f('ck_dependency_link_kind')),
    sa.CheckConstraint('structure_id IS NOT NULL OR dependency_id IS NOT NULL', name=op.f('ck_dependency_has_target')),
    columns.foreign_key('dependency', 'dependency_id', 'dependency', ondelete='RESTRICT'),
    columns.foreign_key('dependency', 'foundation_id', 'foundation', ondelete='RESTRICT'),
    columns.foreign_key('dependency', 'script_structure_id', 'structure', ondelete='RESTRICT'),
    columns.foreign_key('dependency', 'structure_id', 'structure', ondelete='RESTRICT'),
    columns.primary_key('dependency'),
    columns.unique('dependency', 'foundation_id')
    )
    columns.index('dependency', 'dependency_id')
    columns.index('dependency', 'script_structure_id')
    columns.index('dependency', 'structure_id')


def downgrade() -> None:
    op.drop_index(op.f('ix_dependency_structure_id'), table_name='dependency')
    op.drop_index(op.f('ix_dependency_script_structure_id'), table_name='dependency')
    op.drop_index(op.f('ix_dependency_dependency_id'), table_name='dependency')
    op.drop_table('dependency')
    op.drop_index(op.f('ix_complex_member_complex_id'), table_name='complex_member')
    op.drop_table('complex_member')
    op.drop_index('uq_address_one_primary', table_name='address', postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))
    op.drop_index(op.f('ix_address_structure_id'), table_name='address')
    op.drop_index(op.f('ix_address_pxe_id'), table_name='address')
    op.drop_index(op.f('ix_address_pointer_id'), table_name='address')
    op.drop_table('address')
    op.drop_index(op.f('ix_abstract_network_interface_network_id'), table_name='abstract_network_interface')
    op.drop_table('abstract_network_interface')
    op.drop_index(op.f('ix_structure_hostname'), table_name='structure')
    op.drop_index(op.f('ix_structure_blueprint_id'), table_name='structure')
    op.drop_table('structure')
    op.drop_table('simulated_foundation')
    op.drop_index('uq_real_network_interface_one_provisioning', table_name='real_network_interface', postgresql_where=sa.text('is_provisioning'), sqlite_where=sa.text('is_provisioning'))
    op.drop_index('uq_real_network_interface_mac', table_name='real_network_interface', postgresql_where=sa.text('mac IS NOT NULL'), sqlite_where=sa.text('mac IS NOT NULL'))
    op.drop_index(op.f('ix_real_network_interface_pxe_id'), table_name='real_network_interface')
    op.drop_index(op.f('ix_real_network_interface_network_id'), table_name='real_network_interface')
    op.drop_table('real_network_interface')
    op.drop_index(op.f('ix_network_address_block_address_block_id'), table_name='network_address_block')
    op.drop_table('network_address_block')
    op.drop_table('manual_foundation')
    op.drop_index(op.f('ix_structure_foundation_blueprint_foundation_blueprint_id'), table_name='structure_foundation_blueprint')
    op.drop_table('structure_foundation_blueprint')
    op.drop_index(op.f('ix_network_site_id'), table_name='network')
    op.drop_table('network')
    op.drop_index(op.f('ix_foundation_type'), table_name='foundation')
    op.drop_index(op.f('ix_foundation_site_id'), table_name='foundation')
    op.drop_index(op.f('ix_foundation_blueprint_id'), table_name='foundation')
    op.drop_table('foundation')
    op.drop_index(op.f('ix_complex_site_id'), table_name='complex')
    op.drop_table('complex')
    op.drop_index('ix_address_block_site_range', table_name='address_block')
    op.drop_table('address_block')
    op.drop_table('structure_blueprint')
    op.drop_index(op.f('ix_site_zone_id'), table_name='site')
    op.drop_index(op.f('ix_site_parent_id'), table_name='site')
    op.drop_table('site')
    op.drop_table('foundation_blueprint')
    op.drop_index(op.f('ix_blueprint_script_script_id'), table_name='blueprint_script')
    op.drop_table('blueprint_script')
    op.drop_index(op.f('ix_blueprint_parent_parent_id'), table_name='blueprint_parent')
    op.drop_table('blueprint_parent')
    op.drop_index(op.f('ix_api_token_user_id'), table_name='api_token')
    op.drop_table('api_token')
    op.drop_index('uq_zone_top_level_name', table_name='zone', postgresql_where=sa.text('parent_id IS NULL'), sqlite_where=sa.text('parent_id IS NULL'))
    op.drop_index(op.f('ix_zone_parent_id'), table_name='zone')
    op.drop_table('zone')
    op.drop_table('user_account')
    op.drop_table('script')
    op.drop_table('pxe')
    op.drop_table('blueprint')
