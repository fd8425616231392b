"""Complexes and dependencies in GraphQL: groups of structures built together, and what a
foundation's create job or another dependency waits for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.schema.building import BuildState, Foundation, Structure
from contractor.schema.common import (
    Row,
    linked,
    optional,
)
from contractor.schema.configurable import Configurable
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.permissions import Operator
from contractor.schema.prefetch import related
from contractor.schema.site import Site
from contractor.services import batches, building, complexes, inventory
from contractor.services import site as sites


@strawberry.type
class Complex(Configurable):
    id: int
    name: str
    description: str
    built_percentage: int
    row: strawberry.Private[models.Complex]

    @strawberry.field(description="Built when built members reach built_percentage.")
    async def state(self, info: Info) -> BuildState:
        loader = info.context.loaders.custom("complex_state", batches.complex_states_by_id)
        return BuildState(await loader.load(self.row.id))

    site: Site = related(models.Site.id, "site_id")

    @strawberry.field
    async def members(self, info: Info) -> list[Structure]:
        links = await linked(
            info,
            models.ComplexMember.complex_id,
            models.ComplexMember.id,
            self.row.id,
            models.Structure.id,
            "structure_id",
        )
        return [Structure.of(structure) for _, structure in links]


@strawberry.type
class Dependency(Row):
    id: int
    link: str
    create_script_name: str | None
    destroy_script_name: str | None
    state: BuildState
    built_at: dt.datetime | None
    row: strawberry.Private[models.Dependency]

    @classmethod
    def of(cls, row: models.Dependency) -> Self:
        return cls.from_row(row, state=BuildState(row.state))

    structure: Structure | None = related(
        models.Structure.id,
        "structure_id",
        description="The structure depended on (or null when on a dependency).",
    )
    dependency: Dependency | None = related(
        models.Dependency.id, "dependency_id", description="The dependency depended on, for chains."
    )
    foundation: Foundation | None = related(
        models.Foundation.id,
        "foundation_id",
        description="The foundation whose create job waits for this.",
    )
    script_structure: Structure | None = related(models.Structure.id, "script_structure_id")


ComplexResult = Annotated[Complex | AnyError, strawberry.union("ComplexResult")]
DependencyResult = Annotated[Dependency | AnyError, strawberry.union("DependencyResult")]


@strawberry.type
class ComplexQuery:
    complex = lookup(Complex, complexes.get_complex, name=str)
    complexes = connection(Complex, inventory.complexes, site=str)
    dependency = lookup(Dependency, building.get_dependency, id=int)
    dependencies = connection(Dependency, inventory.dependencies)


def _membership(change: Callable[..., Awaitable[object]]) -> Any:
    """The mutation making a structure a member of a complex, or no longer one."""

    async def member(session: AsyncSession, complex: str, structure: int) -> ComplexResult:
        row = await complexes.get_complex(session, complex)
        await change(session, row, await building.get_structure_by_id(session, structure))
        return Complex.of(row)

    return mutation(Operator)(member)


@strawberry.type
class ComplexMutation:
    @mutation(Operator)
    async def create_complex(
        session: AsyncSession,
        name: str,
        site: str,
        description: str = "",
        built_percentage: int = 90,
    ) -> ComplexResult:
        row = await complexes.create_complex(
            session,
            name=name,
            site=await sites.get_site(session, site),
            description=description,
            built_percentage=built_percentage,
        )
        return Complex.of(row)

    add_complex_member = _membership(complexes.add_complex_member)
    remove_complex_member = _membership(complexes.remove_complex_member)

    delete_complex = deletion("Complex", complexes.get_complex, complexes.delete_complex, name=str)

    @mutation(Operator)
    async def create_dependency(
        session: AsyncSession,
        structure: int | None = None,
        dependency: int | None = None,
        foundation: str | None = None,
        script_structure: int | None = None,
        link: str = "soft",
        create_script_name: str | None = None,
        destroy_script_name: str | None = None,
    ) -> DependencyResult:
        row = await building.create_dependency(
            session,
            structure=await optional(building.get_structure_by_id, session, structure),
            dependency=await optional(building.get_dependency, session, dependency),
            foundation=await optional(building.get_foundation, session, foundation),
            script_structure=await optional(
                building.get_structure_by_id, session, script_structure
            ),
            link=link,
            create_script_name=create_script_name,
            destroy_script_name=destroy_script_name,
        )
        return Dependency.of(row)

    delete_dependency = deletion(
        "Dependency", building.get_dependency, building.delete_dependency, id=int
    )
