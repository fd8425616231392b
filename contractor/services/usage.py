"""What a Structure, a blueprint or a Dependency uses of the Complexes: the CPUs, memory and
disk of the placed Foundations it stands on, grouped by Complex.

A Structure stands on its Foundation and, following dependencies the other way from
``services.impact``, on what that Foundation's Dependency waits for: the Structure it is on
(or the Dependency it chains on, and so on), that Structure's Foundation, and so on. A
blueprint stands on what its Structures or Foundations stand on; a Dependency on what it
waits for. One recursive query walks it all, whatever the depth, and sums the placements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InvalidInput
from contractor.models import BluePrint, Complex, Dependency, Structure
from contractor.services.placement import Demand

__all__ = ["ResourceUse", "resources_used"]


@dataclass(frozen=True)
class ResourceUse:
    """What is used of one Complex: the sums and how many placed Foundations make them."""

    complex: Complex
    used: Demand
    foundations: int


# The walk: (kind, id) nodes, S structure, F foundation, D dependency; S -> its F, F -> its
# Dependency, D -> the Structure or Dependency it is on. UNION drops repeats, so a cycle
# ends. The recursive term names the walk once (PostgreSQL's rule), the three steps as
# outer joins on the node's kind.
_WALK = """
WITH RECURSIVE walk(kind, id) AS (
    {start}
    UNION
    SELECT
        CASE w.kind
            WHEN 'S' THEN 'F'
            WHEN 'F' THEN 'D'
            ELSE CASE WHEN d.structure_id IS NOT NULL THEN 'S' ELSE 'D' END
        END,
        CASE w.kind
            WHEN 'S' THEN s.foundation_id
            WHEN 'F' THEN fd.id
            ELSE COALESCE(d.structure_id, d.dependency_id)
        END
    FROM walk AS w
    LEFT JOIN structure AS s ON w.kind = 'S' AND s.id = w.id
    LEFT JOIN dependency AS fd ON w.kind = 'F' AND fd.foundation_id = w.id
    LEFT JOIN dependency AS d ON w.kind = 'D' AND d.id = w.id
    WHERE s.id IS NOT NULL OR fd.id IS NOT NULL OR d.id IS NOT NULL
)
SELECT p.complex_id, SUM(p.cpus), SUM(p.memory_mb), SUM(p.disk_gb), COUNT(*)
FROM walk AS w
JOIN foundation_placement AS p ON w.kind = 'F' AND p.foundation_id = w.id
GROUP BY p.complex_id
"""
_STARTS = {
    "structure": "SELECT 'S', CAST(:start AS INTEGER)",
    "dependency": "SELECT 'D', CAST(:start AS INTEGER)",
    "blueprint": (
        "SELECT 'S', id FROM structure WHERE blueprint_id = :start "
        "UNION SELECT 'F', id FROM foundation WHERE blueprint_id = :start"
    ),
}


async def resources_used(
    session: AsyncSession,
    *,
    structure: Structure | None = None,
    blueprint: BluePrint | None = None,
    dependency: Dependency | None = None,
) -> list[ResourceUse]:
    """The use of each Complex by exactly one of ``structure``, ``blueprint`` or
    ``dependency``, by Complex name: two statements, whatever the inventory's shape."""
    given = [
        (kind, row)
        for kind, row in (
            ("structure", structure),
            ("blueprint", blueprint),
            ("dependency", dependency),
        )
        if row is not None
    ]
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of structure, blueprint or dependency", field="structure"
        )
    kind, row = given[0]
    assert row is not None
    rows = (await session.execute(text(_WALK.format(start=_STARTS[kind])), {"start": row.id})).all()
    if not rows:
        return []
    complexes = await _complexes(session, [int(r[0]) for r in rows])
    uses = [
        ResourceUse(complexes[int(cid)], Demand(int(cpus), int(mem), int(disk)), int(count))
        for cid, cpus, mem, disk, count in rows
    ]
    return sorted(uses, key=lambda use: use.complex.name)


async def _complexes(session: AsyncSession, ids: Sequence[int]) -> dict[int, Complex]:
    found = await session.execute(select(Complex).where(Complex.id.in_(ids)))
    return {c.id: c for c in found.scalars()}
