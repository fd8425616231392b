"""What depends on something: the walk from foundation to structure to complex and
dependency, nearest first, each with its path."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput, NotFound
from contractor.services import building, complexes
from contractor.services.impact import impact_of
from tests.factories import make_stack


async def test_impact_walks_every_kind_of_link(session: AsyncSession) -> None:
    site, foundation, structure = await make_stack(session)
    complex_ = await complexes.create_complex(session, name="cluster", site=site)
    await complexes.add_complex_member(session, complex_, structure)
    dependency = await building.create_dependency(session, structure=structure)
    found = await impact_of(session, foundation=foundation.locator)
    assert [(i.kind, i.name) for i in found] == [
        ("structure", structure.hostname),
        ("complex", "cluster"),
        ("dependency", f"dependency-{dependency.id}"),
    ]
    assert found[1].path == [
        f"foundation {foundation.locator}",
        f"structure {structure.hostname}",
        "complex cluster",
    ]
    assert found[0].state == "planned"
    assert await impact_of(session, complex="cluster") == []


@pytest.mark.parametrize(
    "origin", [{}, {"foundation": "a", "structure": 1}, {"complex": "x", "dependency": 2}]
)
async def test_exactly_one_origin(session: AsyncSession, origin: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        await impact_of(session, **origin)  # type: ignore[arg-type]
    assert info.value.field == "of"


async def test_an_unknown_origin_is_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await impact_of(session, dependency=999999)
