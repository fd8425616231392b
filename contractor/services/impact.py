"""What depends on something, transitively: a foundation carries its structure, a structure
its complexes and dependencies, a dependency the dependencies chained on it and the
foundation whose create job waits for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from contractor import models
from contractor.errors import InvalidInput
from contractor.services import building, complexes

FOUNDATION, STRUCTURE, COMPLEX, DEPENDENCY = "foundation", "structure", "complex", "dependency"
KINDS = (FOUNDATION, STRUCTURE, COMPLEX, DEPENDENCY)


@dataclass(frozen=True)
class Node:
    kind: str  # one of KINDS
    id: int


@dataclass(frozen=True)
class Impacted:
    """Something affected, and the chain from the origin to it, each step as 'kind name'."""

    kind: str
    id: int
    name: str
    state: str
    path: list[str]


_NAMED: dict[str, tuple[type[Any], Callable[[Any], str]]] = {
    FOUNDATION: (models.Foundation, lambda f: f.locator),
    STRUCTURE: (models.Structure, lambda s: s.hostname),
    COMPLEX: (models.Complex, lambda c: c.name),
    DEPENDENCY: (models.Dependency, lambda d: f"dependency-{d.id}"),
}


async def _describe(session: AsyncSession, nodes: set[Node]) -> dict[Node, tuple[str, str]]:
    """Name and state of each node, one query per kind."""
    out: dict[Node, tuple[str, str]] = {}
    for kind in KINDS:
        ids = [node.id for node in nodes if node.kind == kind]
        if not ids:
            continue
        model, name = _NAMED[kind]
        rows = list((await session.execute(select(model).where(model.id.in_(ids)))).scalars())
        if kind == COMPLEX:
            states = await complexes.complex_states(session, rows)
        else:
            states = {row.id: row.state for row in rows}
        for row in rows:
            out[Node(kind, row.id)] = (name(row), states[row.id])
    return out


async def _edges(
    session: AsyncSession,
    cause: str,
    cause_column: InstrumentedAttribute[Any],
    ids: dict[str, list[int]],
    affected: str,
    affected_column: InstrumentedAttribute[Any],
) -> list[tuple[Node, Node]]:
    """Edges from the frontier's ``cause`` nodes (matched on ``cause_column``) to the
    ``affected`` nodes named by ``affected_column`` of the same rows."""
    rows = await session.execute(
        select(cause_column, affected_column).where(cause_column.in_(ids[cause]))
    )
    return [(Node(cause, c), Node(affected, a)) for c, a in rows]


async def _dependants(session: AsyncSession, frontier: set[Node]) -> list[tuple[Node, Node]]:
    """Edges (cause, affected) out of the frontier, a few queries per level."""
    ids = {kind: [n.id for n in frontier if n.kind == kind] for kind in KINDS}
    edges: list[tuple[Node, Node]] = []
    if ids[FOUNDATION]:
        edges += await _edges(
            session, FOUNDATION, models.Structure.foundation_id, ids, STRUCTURE, models.Structure.id
        )
    if ids[STRUCTURE]:
        edges += await _edges(
            session,
            STRUCTURE,
            models.ComplexMember.structure_id,
            ids,
            COMPLEX,
            models.ComplexMember.complex_id,
        )
        edges += await _edges(
            session,
            STRUCTURE,
            models.Dependency.structure_id,
            ids,
            DEPENDENCY,
            models.Dependency.id,
        )
    if ids[DEPENDENCY]:
        links = await session.execute(
            select(
                models.Dependency.id,
                models.Dependency.dependency_id,
                models.Dependency.foundation_id,
            ).where(
                models.Dependency.dependency_id.in_(ids[DEPENDENCY])
                | models.Dependency.id.in_(ids[DEPENDENCY])
            )
        )
        for dep_id, parent_id, foundation_id in links:
            if parent_id in ids[DEPENDENCY]:
                edges.append((Node(DEPENDENCY, parent_id), Node(DEPENDENCY, dep_id)))
            if dep_id in ids[DEPENDENCY] and foundation_id is not None:
                edges.append((Node(DEPENDENCY, dep_id), Node(FOUNDATION, foundation_id)))
    return edges


async def _origin(
    session: AsyncSession,
    foundation: str | None,
    structure: int | None,
    complex: str | None,
    dependency: int | None,
) -> Node:
    given = [v for v in (foundation, structure, complex, dependency) if v is not None]
    if len(given) != 1:
        raise InvalidInput(
            "name exactly one origin: foundation, structure, complex or dependency", field="of"
        )
    if foundation is not None:
        return Node(FOUNDATION, (await building.get_foundation(session, foundation)).id)
    if structure is not None:
        return Node(STRUCTURE, (await building.get_structure_by_id(session, structure)).id)
    if complex is not None:
        return Node(COMPLEX, (await complexes.get_complex(session, complex)).id)
    assert dependency is not None
    return Node(DEPENDENCY, (await building.get_dependency(session, dependency)).id)


async def impact_of(
    session: AsyncSession,
    *,
    foundation: str | None = None,
    structure: int | None = None,
    complex: str | None = None,
    dependency: int | None = None,
) -> list[Impacted]:
    """Everything that depends, transitively, on the one origin named, nearest first, each
    with the first (shortest) path that reaches it."""
    origin = await _origin(session, foundation, structure, complex, dependency)
    paths: dict[Node, list[Node]] = {origin: [origin]}
    frontier = {origin}
    order: list[Node] = []
    while frontier:
        next_frontier: set[Node] = set()
        for cause, affected in sorted(
            await _dependants(session, frontier),
            key=lambda e: (e[0].kind, e[0].id, e[1].kind, e[1].id),
        ):
            if affected in paths:
                continue
            paths[affected] = [*paths[cause], affected]
            order.append(affected)
            next_frontier.add(affected)
        frontier = next_frontier
    names = await _describe(session, set(paths))
    return [
        Impacted(
            kind=node.kind,
            id=node.id,
            name=names[node][0],
            state=names[node][1],
            path=[f"{step.kind} {names[step][0]}" for step in paths[node]],
        )
        for node in order
    ]
