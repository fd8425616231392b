"""Complexes and dependencies in GraphQL: groups of structures built together, and what a
foundation's create job or another dependency waits for.

A typed Complex's members show their endpoint and username, never their password
(``hasPassword`` says whether one is set), their capacity, what the foundations placed on
them take, and what is free; ``resourcesUsed`` sums what a structure, blueprint or
dependency stands on, by Complex."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import models
from contractor.schema.building import BuildState, Foundation, Structure
from contractor.schema.common import (
    Row,
    given,
    linked,
    optional,
)
from contractor.schema.configurable import Configurable
from contractor.schema.context import Info
from contractor.schema.errors import AnyError
from contractor.schema.fields import connection, deletion, lookup, mutation
from contractor.schema.permissions import Operator, Reader
from contractor.schema.prefetch import related
from contractor.schema.site import Site
from contractor.services import batches, building, complexes, inventory, placement, usage
from contractor.services import blueprint as bps
from contractor.services import site as sites
from contractor.services.placement import Demand, MemberRoom

if TYPE_CHECKING:
    from contractor.schema.jobs import Job


@strawberry.type(description="CPUs, memory (MB) and disk (GB).")
class Resources:
    cpus: int
    memory_mb: int
    disk_gb: int

    @classmethod
    def of(cls, demand: Demand) -> Resources:
        return cls(cpus=demand.cpus, memory_mb=demand.memory_mb, disk_gb=demand.disk_gb)

    @classmethod
    def maybe(cls, demand: Demand | None) -> Resources | None:
        return None if demand is None else cls.of(demand)


def _total(parts: list[Demand]) -> Demand:
    return Demand(
        sum(p.cpus for p in parts), sum(p.memory_mb for p in parts), sum(p.disk_gb for p in parts)
    )


@strawberry.type(
    description="A Structure's membership of a Complex: how the Complex type's module reaches "
    "it (its password is never shown) and its capacity (null until read or set)."
)
class ComplexMember(Row):
    id: int
    endpoint: str
    username: str
    capacity_read_at: dt.datetime | None
    row: strawberry.Private[models.ComplexMember]
    room: strawberry.Private[MemberRoom]

    structure: Structure = related(models.Structure.id, "structure_id")

    @strawberry.field(description="Whether a password is set (it is never shown).")
    def has_password(self) -> bool:
        return bool(self.row.password)

    @strawberry.field(description="The member Structure's hostname.")
    def hostname(self) -> str:
        return self.room.hostname

    @strawberry.field(description="As read from the host (or set by hand); null until then.")
    def capacity(self) -> Resources | None:
        return Resources.maybe(self.room.capacity)

    @strawberry.field(description="The capacity times the Complex's over-commit ratios.")
    def effective(self) -> Resources | None:
        return Resources.maybe(self.room.effective)

    @strawberry.field(description="What the foundations placed on the member take.")
    def allocated(self) -> Resources:
        return Resources.of(self.room.allocated)

    @strawberry.field(description="Effective capacity less allocated; null until read.")
    def free(self) -> Resources | None:
        return Resources.maybe(self.room.free)


async def _rooms(info: Info, complex_id: int) -> list[MemberRoom]:
    loader = info.context.loaders.custom("member_rooms", placement.member_rooms_by_complex)
    rooms: list[MemberRoom] = await loader.load(complex_id)
    return rooms


@strawberry.type
class Complex(Configurable):
    id: int
    name: str
    description: str
    built_percentage: int
    type: str = strawberry.field(description="generic, libvirt, docker or simulated.")
    cpu_overcommit: float
    memory_overcommit: float
    disk_overcommit: float
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

    @strawberry.field(
        description="The members with their endpoints, capacity and placements, by hostname."
    )
    async def memberships(self, info: Info) -> list[ComplexMember]:
        loader = info.context.loaders.many(models.ComplexMember.complex_id)
        rows = {row.id: row for row in await loader.load(self.row.id)}
        return [
            ComplexMember.from_row(rows[room.member_id], room=room)
            for room in await _rooms(info, self.row.id)
            if room.member_id in rows
        ]

    @strawberry.field(description="The capacity of the members whose capacity is known.")
    async def capacity(self, info: Info) -> Resources:
        rooms = await _rooms(info, self.row.id)
        return Resources.of(_total([r.capacity for r in rooms if r.capacity is not None]))

    @strawberry.field(description="What the foundations placed on the members take.")
    async def allocated(self, info: Info) -> Resources:
        return Resources.of(_total([r.allocated for r in await _rooms(info, self.row.id)]))

    @strawberry.field(description="Free on the members whose capacity is known.")
    async def free(self, info: Info) -> Resources:
        rooms = await _rooms(info, self.row.id)
        return Resources.of(_total([r.free for r in rooms if r.free is not None]))


@strawberry.type(description="What is used of one Complex, and by how many foundations.")
class ResourceUse:
    complex: Complex
    cpus: int
    memory_mb: int
    disk_gb: int
    foundations: int


@strawberry.type(description="The capacity jobs started, one per member.")
class CapacityRefresh:
    complex: Complex
    jobs: list[Annotated[Job, strawberry.lazy("contractor.schema.jobs")]]


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
CapacityRefreshResult = Annotated[
    CapacityRefresh | AnyError, strawberry.union("CapacityRefreshResult")
]


async def _resources_used(
    self: Any,
    info: Info,
    structure: int | None = None,
    blueprint: str | None = None,
    dependency: int | None = None,
) -> list[ResourceUse]:
    async with info.context.sessions() as session:
        uses = await usage.resources_used(
            session,
            structure=await optional(building.get_structure_by_id, session, structure),
            blueprint=await optional(bps.get_blueprint, session, blueprint),
            dependency=await optional(building.get_dependency, session, dependency),
        )
    return [
        ResourceUse(
            complex=Complex.of(use.complex),
            cpus=use.used.cpus,
            memory_mb=use.used.memory_mb,
            disk_gb=use.used.disk_gb,
            foundations=use.foundations,
        )
        for use in uses
    ]


@strawberry.type
class ComplexQuery:
    complex = lookup(Complex, complexes.get_complex, name=str)
    complexes = connection(Complex, inventory.complexes, site=str)
    dependency = lookup(Dependency, building.get_dependency, id=int)
    dependencies = connection(Dependency, inventory.dependencies)
    resources_used = strawberry.field(
        resolver=_resources_used,
        description="The CPUs, memory and disk of the placed foundations that exactly one of "
        "a structure (id), a blueprint (name) or a dependency (id) stands on (following "
        "dependencies), by complex.",
        extensions=[Reader()],
    )


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
        type: str = "generic",
        cpu_overcommit: float = 1.0,
        memory_overcommit: float = 1.0,
        disk_overcommit: float = 1.0,
    ) -> ComplexResult:
        row = await complexes.create_complex(
            session,
            name=name,
            site=await sites.get_site(session, site),
            description=description,
            built_percentage=built_percentage,
            type=type,
            cpu_overcommit=cpu_overcommit,
            memory_overcommit=memory_overcommit,
            disk_overcommit=disk_overcommit,
        )
        return Complex.of(row)

    @mutation(Operator)
    async def update_complex(
        session: AsyncSession,
        name: str,
        description: str | None = strawberry.UNSET,
        built_percentage: int | None = strawberry.UNSET,
        type: str | None = strawberry.UNSET,
        cpu_overcommit: float | None = strawberry.UNSET,
        memory_overcommit: float | None = strawberry.UNSET,
        disk_overcommit: float | None = strawberry.UNSET,
    ) -> ComplexResult:
        row = await complexes.get_complex(session, name)
        await complexes.update_complex(
            session,
            row,
            description=given(description),
            built_percentage=given(built_percentage),
            type=given(type),
            cpu_overcommit=given(cpu_overcommit),
            memory_overcommit=given(memory_overcommit),
            disk_overcommit=given(disk_overcommit),
        )
        return Complex.of(row)

    @mutation(
        Operator,
        description="Make a structure a member; endpoint (checked per complex type), "
        "username and password reach it (the password is never shown).",
    )
    async def add_complex_member(
        session: AsyncSession,
        complex: str,
        structure: int,
        endpoint: str = "",
        username: str = "",
        password: str = "",
    ) -> ComplexResult:
        row = await complexes.get_complex(session, complex)
        await complexes.add_complex_member(
            session,
            row,
            await building.get_structure_by_id(session, structure),
            endpoint=endpoint,
            username=username,
            password=password,
        )
        return Complex.of(row)

    remove_complex_member = _membership(complexes.remove_complex_member)

    @mutation(Operator, description="Change how a member (by hostname) is reached.")
    async def update_complex_member(
        session: AsyncSession,
        complex: str,
        member: str,
        endpoint: str | None = strawberry.UNSET,
        username: str | None = strawberry.UNSET,
        password: str | None = strawberry.UNSET,
    ) -> ComplexResult:
        row = await complexes.get_complex(session, complex)
        found = await complexes.get_member(session, row, member)
        await complexes.update_complex_member(
            session,
            row,
            found,
            endpoint=given(endpoint),
            username=given(username),
            password=given(password),
        )
        return Complex.of(row)

    @mutation(
        Operator,
        description="Set a member's capacity by hand (for a host nothing can read).",
    )
    async def set_complex_member_capacity(
        session: AsyncSession, complex: str, member: str, cpus: int, memory_mb: int, disk_gb: int
    ) -> ComplexResult:
        row = await complexes.get_complex(session, complex)
        found = await complexes.get_member(session, row, member)
        await complexes.set_member_capacity(
            session, found, cpus=cpus, memory_mb=memory_mb, disk_gb=disk_gb
        )
        return Complex.of(row)

    @mutation(
        Operator,
        description="Read each member's capacity (or one member's, by hostname) from the host: "
        "a job per member whose task asks the complex type's subcontractor module.",
    )
    async def refresh_complex_capacity(
        session: AsyncSession, actor: str, complex: str, member: str | None = None
    ) -> CapacityRefreshResult:
        from contractor.schema.jobs import Job

        row = await complexes.get_complex(session, complex)
        started = await complexes.refresh_capacity(session, row, creator=actor, member=member)
        return CapacityRefresh(complex=Complex.of(row), jobs=[Job.of(job) for job in started])

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
