"""The loaders' batches: one row or a list per key, in the keys' order, None or empty for a
key without rows."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Site
from contractor.services import batches
from tests.factories import make_site


async def test_rows_by_a_unique_column(session: AsyncSession) -> None:
    a = await make_site(session, "batch-a")
    b = await make_site(session, "batch-b")
    found = await batches.rows_by(session, Site.id, [b.id, 999999, a.id])
    assert found == [b, None, a]


async def test_rows_grouped_by_a_column_in_order(session: AsyncSession) -> None:
    root = await make_site(session, "batch-root")
    for name in ("batch-z", "batch-x", "batch-y"):
        await make_site(session, name, parent=root)
    other = await make_site(session, "batch-leaf")
    grouped = await batches.rows_grouped_by(
        session, Site.parent_id, [other.id, root.id], order_by=(Site.name,)
    )
    assert grouped[0] == []
    assert [site.name for site in grouped[1]] == ["batch-x", "batch-y", "batch-z"]
