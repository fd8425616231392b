"""zone settings and last good text

``zone.external`` (a zone delegated to Contractor from a parent it does not serve), the
file text of each zone as last published valid (``published_zone.text``, so an invalid zone
is still served as it was), and SOA timers within RFC 1912 / RFC 2308 for zones that still
have the old defaults (refresh 86400, retry 7200, expire 36000, minimum 172800: the zone
expired before its next refresh and negative answers were cached for two days).
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'

_OLD = {'refresh': 86400, 'retry': 7200, 'expire': 36000, 'minimum': 172800}
_NEW = {'refresh': 14400, 'retry': 3600, 'expire': 1209600, 'minimum': 3600}


def _retime(old: dict[str, int], new: dict[str, int]) -> None:
    zone = sa.table('zone', *(sa.column(name, sa.Integer()) for name in old))
    op.execute(
        zone.update()
        .where(*(zone.c[name] == value for name, value in old.items()))
        .values(**new)
    )


def upgrade() -> None:
    op.add_column('zone', sa.Column('external', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('zone') as batch:
        batch.alter_column('external', server_default=None)
    op.add_column('published_zone', sa.Column('text', sa.Text(), nullable=True))
    _retime(_OLD, _NEW)


def downgrade() -> None:
    _retime(_NEW, _OLD)
    with op.batch_alter_table('published_zone') as batch:
        batch.drop_column('text')
    with op.batch_alter_table('zone') as batch:
        batch.drop_column('external')
