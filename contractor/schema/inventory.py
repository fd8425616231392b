"""The single-source-of-truth questions: counts grouped in SQL, what depends on something
(impact), and what a Complex holds."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from contractor.schema.building import (
    BuildState,
    FoundationFilter,
    FoundationState,
    Structure,
    StructureFilter,
)
from contractor.schema.common import plain
from contractor.schema.complexes import Complex
from contractor.schema.context import Info
from contractor.schema.fields import query
from contractor.schema.permissions import Reader
from contractor.services import complexes, inventory
from contractor.services.impact import impact_of


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


@strawberry.type
class _CountGroup:
    site: str | None = None
    blueprint: str | None = None
    type: str | None = None
    count: int


@strawberry.type(description="One group of a foundation count; only the grouped-by fields are set.")
class FoundationCountGroup(_CountGroup):
    state: FoundationState | None = None


@strawberry.type(description="One group of a structure count; only the grouped-by fields are set.")
class StructureCountGroup(_CountGroup):
    state: BuildState | None = None


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
    state: FoundationState = strawberry.field(
        description="The object's state (LOCATED only for foundations)."
    )
    path: list[str] = strawberry.field(
        description="From the origin to this object, each step as 'kind name'."
    )


@strawberry.type(description="What a complex is made of and what stands on it.")
class ComplexUsage:
    complex: Complex
    member_count: int
    built_member_count: int
    members: list[Structure]


def _counts(
    count: Callable[..., Awaitable[list[inventory.Group]]],
    dimension: type[enum.Enum],
    where: type,
    group: type[FoundationCountGroup | StructureCountGroup],
    state: type[FoundationState | BuildState],
    what: str,
) -> Any:
    """The field counting ``what`` per the chosen dimensions with the service's ``count``;
    a group's state is the enum the objects' own ``state`` answers."""

    async def resolve(self: Any, info: Info, group_by: list[Any], filter: Any = None) -> Any:
        async with info.context.sessions() as session:
            groups = await count(session, plain(group_by), plain(filter))
        answer = []
        for found in groups:
            values: dict[str, Any] = dict(found.values)
            if "state" in values:
                values["state"] = state(values["state"])
            answer.append(group(count=found.count, **values))
        return answer

    return query(
        resolve,
        list[group],  # type: ignore[valid-type]
        ("group_by", list[dimension]),  # type: ignore[valid-type]
        ("filter", where | None, None),
        description=f"{what} counted per the chosen dimensions, in SQL.",
    )


@strawberry.type
class InventoryQuery:
    foundation_counts = _counts(
        inventory.count_foundations,
        FoundationDimension,
        FoundationFilter,
        FoundationCountGroup,
        FoundationState,
        "Foundations",
    )
    structure_counts = _counts(
        inventory.count_structures,
        StructureDimension,
        StructureFilter,
        StructureCountGroup,
        BuildState,
        "Structures",
    )

    @strawberry.field(
        description="Everything that depends, transitively, on the origin.",
        extensions=[Reader()],
    )
    async def impact(self, info: Info, of: ImpactOrigin) -> list[Impacted]:
        async with info.context.sessions() as session:
            found = await impact_of(
                session,
                foundation=of.foundation,
                structure=of.structure,
                complex=of.complex,
                dependency=of.dependency,
            )
        return [
            Impacted(
                kind=ImpactKind(i.kind),
                id=i.id,
                name=i.name,
                state=FoundationState(i.state),
                path=i.path,
            )
            for i in found
        ]

    @strawberry.field(
        description="Members of a complex and how many are built.", extensions=[Reader()]
    )
    async def complex_usage(self, info: Info, name: str) -> ComplexUsage:
        async with info.context.sessions() as session:
            row = await complexes.get_complex(session, name)
            members = await inventory.complex_members(session, row)
        return ComplexUsage(
            complex=Complex.of(row),
            member_count=len(members),
            built_member_count=sum(1 for m in members if m.built_at is not None),
            members=[Structure.of(m) for m in members],
        )
