"""Keyset pages: every row once, in order, whatever the page size; counts over all pages."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.models import Site
from contractor.services import paging
from contractor.services.paging import Listing
from tests.factories import make_site


@pytest.mark.parametrize("size", [1, 2, 5, 6])
async def test_pages_cover_every_row_once(session: AsyncSession, size: int) -> None:
    for name in ("e", "a", "d", "b", "c"):
        await make_site(session, f"page-{name}")
    listing = Listing.of(Site, Site.name)
    seen: list[str] = []
    after = None
    while True:
        rows, more = await paging.page(session, listing, after=after, size=size)
        seen += [row.name for row in rows]
        if not more:
            break
        after = listing.key(rows[-1])
    assert seen == [f"page-{name}" for name in "abcde"]
    assert await paging.count(session, listing) == 5


async def test_a_two_column_key_pages_past_equal_first_columns(session: AsyncSession) -> None:
    for name in ("x", "y", "z"):
        await make_site(session, f"key-{name}", description="same")
    listing = Listing.of(Site, Site.description, Site.id)
    first, more = await paging.page(session, listing, after=None, size=2)
    assert more
    assert listing.key(first[-1]) == ["same", first[-1].id]
    rest, more = await paging.page(session, listing, after=listing.key(first[-1]), size=2)
    assert not more
    assert [row.name for row in first + rest] == ["key-x", "key-y", "key-z"]
