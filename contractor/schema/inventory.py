"""The single-source-of-truth questions: counts grouped in SQL, what depends on something
(impact), and what a Complex holds."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import strawberry
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.errors import InvalidInput
from contractor.schema.context import Info
from contractor.schema.filters import (
    FoundationFilter,
    StructureFilter,
    filter_foundations,
    filter_structures,
)
from contractor.schema.types import Complex, Structure
from contractor.services import building


@strawberry.enum
class FoundationDimension(enum.Enum):
    SITE = "site"
    BLUEPRINT = "blueprint"
    TYPE = "type"
    STATE = "state"


@strawberry.enum
class StructureDimension(enum.Enum):
    SITE = "site"
    BLUEPRINT = "blueprint"
    STATE = "state"
    FOUNDATION_TYPE = "type"


@strawberry.type(description="One group of a count; only the grouped-by fields are set.")
class CountGroup:
    site: str | None = None
    blueprint: str | None = None
    type: str | None = None
    state: str | None = None
    count: int


def _foundation_state() -> Any:
    f = models.Foundation
    return case(
        (f.located_at.is_(None), "planned"),
        (f.built_at.is_(None), "located"),
        else_="built",
    )


async def _grouped(
    session: AsyncSession, base: Any, row_id: Any, columns: dict[str, Any]
) -> list[CountGroup]:
    query = base.with_only_columns(*columns.values(), func.count(row_id)).group_by(
        *columns.values()
    )
    query = query.order_by(*columns.values())
    groups = []
    for row in await session.execute(query):
        values = dict(zip(columns, row[:-1], strict=True))
        groups.append(CountGroup(count=int(row[-1]), **values))
    return groups


@strawberry.enum
class ImpactKind(enum.Enum):
    FOUNDATION = "foundation"
    STRUCTURE = "structure"
    COMPLEX = "complex"
    DEPENDENCY = "dependency"


@strawberry.input(description="Exactly one of the fields names the origin.")
class ImpactOrigin:
    foundation: str | None = strawberry.field(default=None, description="A locator.")
    structure: int | None = strawberry.field(default=None, description="A structure id.")
    complex: str | None = strawberry.field(default=None, description="A complex name.")
    dependency: int | None = strawberry.field(default=None, description="A dependency id.")


@strawberry.type(description="Something that is affected, and the chain linking it to the origin.")
class Impacted:
    kind: ImpactKind
    id: int
    name: str
    state: str
    path: list[str] = strawberry.field(
        description="From the origin to this object, each step as 'kind name'."
    )


@dataclass(frozen=True)
class _Node:
    kind: ImpactKind
    id: int


async def _describe(session: AsyncSession, nodes: set[_Node]) -> dict[_Node, tuple[str, str]]:
    """Name and state of each node, one query per kind."""
    out: dict[_Node, tuple[str, str]] = {}
    by_kind: dict[ImpactKind, list[int]] = {}
    for node in nodes:
        by_kind.setdefault(node.kind, []).append(node.id)
    if ImpactKind.FOUNDATION in by_kind:
        rows = await session.execute(
            select(models.Foundation).where(
                models.Foundation.id.in_(by_kind[ImpactKind.FOUNDATION])
            )
        )
        for f in rows.scalars():
            out[_Node(ImpactKind.FOUNDATION, f.id)] = (f.locator, f.state)
    if ImpactKind.STRUCTURE in by_kind:
        structures = await session.execute(
            select(models.Structure).where(models.Structure.id.in_(by_kind[ImpactKind.STRUCTURE]))
        )
        for s in structures.scalars():
            out[_Node(ImpactKind.STRUCTURE, s.id)] = (s.hostname, s.state)
    if ImpactKind.COMPLEX in by_kind:
        complexes = list(
            (
                await session.execute(
                    select(models.Complex).where(models.Complex.id.in_(by_kind[ImpactKind.COMPLEX]))
                )
            ).scalars()
        )
        states = await building.complex_states(session, complexes)
        for c in complexes:
            out[_Node(ImpactKind.COMPLEX, c.id)] = (c.name, states[c.id])
    if ImpactKind.DEPENDENCY in by_kind:
        rows = await session.execute(
            select(models.Dependency).where(
                models.Dependency.id.in_(by_kind[ImpactKind.DEPENDENCY])
            )
        )
        for d in rows.scalars():
            out[_Node(ImpactKind.DEPENDENCY, d.id)] = (f"dependency-{d.id}", d.state)
    return out


async def _dependants(session: AsyncSession, frontier: set[_Node]) -> list[tuple[_Node, _Node]]:
    """Edges (cause, affected) out of the frontier, a few queries per level."""
    ids = {kind: [n.id for n in frontier if n.kind is kind] for kind in ImpactKind}
    edges: list[tuple[_Node, _Node]] = []
    if ids[ImpactKind.FOUNDATION]:
        rows = await session.execute(
            select(models.Structure.foundation_id, models.Structure.id).where(
                models.Structure.foundation_id.in_(ids[ImpactKind.FOUNDATION])
            )
        )
        edges += [
            (_Node(ImpactKind.FOUNDATION, f), _Node(ImpactKind.STRUCTURE, s)) for f, s in rows
        ]
    if ids[ImpactKind.STRUCTURE]:
        rows = await session.execute(
            select(models.ComplexMember.structure_id, models.ComplexMember.complex_id).where(
                models.ComplexMember.structure_id.in_(ids[ImpactKind.STRUCTURE])
            )
        )
        edges += [(_Node(ImpactKind.STRUCTURE, s), _Node(ImpactKind.COMPLEX, c)) for s, c in rows]
        rows = await session.execute(
            select(models.Dependency.structure_id, models.Dependency.id).where(
                models.Dependency.structure_id.in_(ids[ImpactKind.STRUCTURE])
            )
        )
        edges += [
            (_Node(ImpactKind.STRUCTURE, s), _Node(ImpactKind.DEPENDENCY, d)) for s, d in rows
        ]
    if ids[ImpactKind.DEPENDENCY]:
        links = await session.execute(
            select(
                models.Dependency.id,
                models.Dependency.dependency_id,
                models.Dependency.foundation_id,
            ).where(
                models.Dependency.dependency_id.in_(ids[ImpactKind.DEPENDENCY])
                | models.Dependency.id.in_(ids[ImpactKind.DEPENDENCY])
            )
        )
        for dep_id, parent_id, foundation_id in links:
            if parent_id in ids[ImpactKind.DEPENDENCY]:
                edges.append(
                    (_Node(ImpactKind.DEPENDENCY, parent_id), _Node(ImpactKind.DEPENDENCY, dep_id))
                )
            if dep_id in ids[ImpactKind.DEPENDENCY] and foundation_id is not None:
                edges.append(
                    (
                        _Node(ImpactKind.DEPENDENCY, dep_id),
                        _Node(ImpactKind.FOUNDATION, foundation_id),
                    )
                )
    return edges


async def _origin(session: AsyncSession, of: ImpactOrigin) -> _Node:
    given = [v for v in (of.foundation, of.structure, of.complex, of.dependency) if v is not None]
    if len(given) != 1:
        raise InvalidInput(
            "name exactly one origin: foundation, structure, complex or dependency", field="of"
        )
    if of.foundation is not None:
        return _Node(
            ImpactKind.FOUNDATION, (await building.get_foundation(session, of.foundation)).id
        )
    if of.structure is not None:
        return _Node(
            ImpactKind.STRUCTURE, (await building.get_structure_by_id(session, of.structure)).id
        )
    if of.complex is not None:
        return _Node(ImpactKind.COMPLEX, (await building.get_complex(session, of.complex)).id)
    assert of.dependency is not None
    return _Node(ImpactKind.DEPENDENCY, (await building.get_dependency(session, of.dependency)).id)


async def impact_of(session: AsyncSession, of: ImpactOrigin) -> list[Impacted]:
    """Everything that depends, transitively, on the origin, nearest first, each with the
    first (shortest) path that reaches it."""
    origin = await _origin(session, of)
    paths: dict[_Node, list[_Node]] = {origin: [origin]}
    frontier = {origin}
    order: list[_Node] = []
    while frontier:
        next_frontier: set[_Node] = set()
        for cause, affected in sorted(
            await _dependants(session, frontier),
            key=lambda e: (e[0].kind.value, e[0].id, e[1].kind.value, e[1].id),
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
            path=[f"{step.kind.value} {names[step][0]}" for step in paths[node]],
        )
        for node in order
    ]


@strawberry.type(description="What a complex is made of and what stands on it.")
class ComplexUsage:
    complex: Complex
    member_count: int
    built_member_count: int
    members: list[Structure]


@strawberry.type
class InventoryQuery:
    @strawberry.field(description="Foundations counted per the chosen dimensions, in SQL.")
    async def foundation_counts(
        self,
        info: Info,
        group_by: list[FoundationDimension],
        filter: FoundationFilter | None = None,
    ) -> list[CountGroup]:
        info.context.require("reader")
        f = models.Foundation
        columns: dict[str, Any] = {}
        base = select(f.id)
        for dimension in dict.fromkeys(group_by):
            if dimension is FoundationDimension.SITE:
                base = base.join(models.Site, models.Site.id == f.site_id)
                columns["site"] = models.Site.name
            elif dimension is FoundationDimension.BLUEPRINT:
                base = base.join(models.BluePrint, models.BluePrint.id == f.blueprint_id)
                columns["blueprint"] = models.BluePrint.name
            elif dimension is FoundationDimension.TYPE:
                columns["type"] = f.type
            else:
                columns["state"] = _foundation_state()
        async with info.context.sessions() as session:
            base = await filter_foundations(session, base, filter)
            return await _grouped(session, base, f.id, columns)

    @strawberry.field(description="Structures counted per the chosen dimensions, in SQL.")
    async def structure_counts(
        self,
        info: Info,
        group_by: list[StructureDimension],
        filter: StructureFilter | None = None,
    ) -> list[CountGroup]:
        info.context.require("reader")
        s = models.Structure
        columns: dict[str, Any] = {}
        base = select(s.id)
        for dimension in dict.fromkeys(group_by):
            if dimension is StructureDimension.SITE:
                base = base.join(models.Site, models.Site.id == s.site_id)
                columns["site"] = models.Site.name
            elif dimension is StructureDimension.BLUEPRINT:
                base = base.join(models.BluePrint, models.BluePrint.id == s.blueprint_id)
                columns["blueprint"] = models.BluePrint.name
            elif dimension is StructureDimension.FOUNDATION_TYPE:
                base = base.join(models.Foundation, models.Foundation.id == s.foundation_id)
                columns["type"] = models.Foundation.type
            else:
                columns["state"] = case((s.built_at.is_(None), "planned"), else_="built")
        async with info.context.sessions() as session:
            base = await filter_structures(session, base, filter)
            return await _grouped(session, base, s.id, columns)

    @strawberry.field(description="Everything that depends, transitively, on the origin.")
    async def impact(self, info: Info, of: ImpactOrigin) -> list[Impacted]:
        info.context.require("reader")
        async with info.context.sessions() as session:
            return await impact_of(session, of)

    @strawberry.field(description="Members of a complex and how many are built.")
    async def complex_usage(self, info: Info, name: str) -> ComplexUsage:
        info.context.require("reader")
        async with info.context.sessions() as session:
            row = await building.get_complex(session, name)
            members = list(
                (
                    await session.execute(
                        select(models.Structure)
                        .join(
                            models.ComplexMember,
                            models.ComplexMember.structure_id == models.Structure.id,
                        )
                        .where(models.ComplexMember.complex_id == row.id)
                        .order_by(models.Structure.hostname)
                    )
                ).scalars()
            )
        return ComplexUsage(
            complex=Complex.of(row),
            member_count=len(members),
            built_member_count=sum(1 for m in members if m.built_at is not None),
            members=[Structure.of(m) for m in members],
        )
