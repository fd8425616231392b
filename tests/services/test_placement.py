"""Typed Complexes and placement: capacity times over-commit, the member with most room,
pins, releases, and two racing creates on PostgreSQL never over-filling a member."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.db import create_engine, create_session_factory
from contractor.errors import Conflict, InUse, InvalidInput
from contractor.models import Complex, ComplexMember, Foundation, FoundationPlacement, Site
from contractor.services import blueprint, building, complexes, placement, usage
from contractor.services.placement import Demand
from contractor.settings import Settings
from tests.factories import (
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_stack,
    make_structure,
    make_structure_blueprint,
    unique,
)


async def vm_blueprint(session: AsyncSession) -> Any:
    return await make_foundation_blueprint(session, foundation_types=["simulated-vm", "manual"])


async def simulated_complex(
    session: AsyncSession,
    capacities: list[tuple[int, int, int] | None],
    **kwargs: Any,
) -> tuple[Site, Complex, list[ComplexMember]]:
    """A simulated Complex whose members (hostnames h<n>-...) have the capacities given
    (None: not read)."""
    site = await make_site(session)
    complex_ = await complexes.create_complex(
        session, name=unique("cplx"), site=site, type="Simulated", **kwargs
    )
    members = []
    for index, capacity in enumerate(capacities):
        _, _, structure = await make_stack(session)
        structure.hostname = f"h{index}-{structure.hostname}"
        member = await complexes.add_complex_member(
            session, complex_, structure, endpoint=f"simulated://h{index}"
        )
        if capacity is not None:
            cpus, memory, disk = capacity
            await complexes.set_member_capacity(
                session, member, cpus=cpus, memory_mb=memory, disk_gb=disk
            )
        members.append(member)
    return site, complex_, members


async def vm(
    session: AsyncSession, site: Site, complex_: Complex, bp: Any, **fields: Any
) -> Foundation:
    fields.setdefault("complex", complex_.name)
    return await make_foundation(session, site, bp, type="simulated-vm", fields=fields)


async def test_complex_type_and_overcommit_are_checked(session: AsyncSession) -> None:
    site = await make_site(session)
    made = await complexes.create_complex(session, name=unique("c"), site=site, type="LibVirt")
    assert (made.type, made.cpu_overcommit) == ("libvirt", 1.0)
    with pytest.raises(InvalidInput, match="type must be one of generic, libvirt") as error:
        await complexes.create_complex(session, name=unique("c"), site=site, type="vmware")
    assert error.value.field == "type"
    with pytest.raises(InvalidInput, match="cpu_overcommit must be a number from 1") as error:
        await complexes.create_complex(session, name=unique("c"), site=site, cpu_overcommit=0.5)
    assert error.value.field == "cpu_overcommit"
    _, _, structure = await make_stack(session)
    with pytest.raises(InvalidInput, match="must be a libvirt URI") as error:
        await complexes.add_complex_member(session, made, structure, endpoint="not a uri")
    assert error.value.field == "endpoint"
    member = await complexes.add_complex_member(
        session, made, structure, endpoint="qemu+ssh://root@host3/system", password="s3cret"
    )
    assert member.password == "s3cret"
    with pytest.raises(InvalidInput, match="must be a Docker endpoint"):
        await complexes.update_complex(session, made, type="docker")
    assert made.type == "libvirt"  # unchanged


async def test_most_free_room_first_and_overcommit(session: AsyncSession) -> None:
    site, complex_, _ = await simulated_complex(
        session, [(4, 8192, 100), (8, 16384, 200), None], cpu_overcommit=2.0
    )
    bp = await vm_blueprint(session)
    first = await vm(session, site, complex_, bp, cpus=4, memory_mb=4096, disk_gb=10)
    access = await placement.member_access(session, first)
    assert access is not None
    assert access.structure.startswith("h1-")  # the bigger one
    assert "password=***" in repr(access)
    # 8 CPUs on h0 over-committed twice: 8 fit on h0 (free 8) and h1 (16 - 4 = 12)
    second = await vm(session, site, complex_, bp, cpus=8, memory_mb=4096, disk_gb=10)
    assert (await placement.member_access(session, second)).structure.startswith("h1-")  # type: ignore[union-attr]
    rooms = {r.hostname[:2]: r for r in await placement.member_rooms(session, complex_)}
    assert rooms["h1"].allocated == Demand(12, 8192, 20)
    assert rooms["h1"].free == Demand(4, 8192, 180)
    assert rooms["h2"].free is None
    third = await vm(session, site, complex_, bp, cpus=6, memory_mb=1024, disk_gb=1)
    assert (await placement.member_access(session, third)).structure.startswith("h0-")  # type: ignore[union-attr]


async def test_a_full_complex_is_a_conflict_naming_what_is_short(session: AsyncSession) -> None:
    site, complex_, members = await simulated_complex(session, [(4, 8192, 100), (2, 4096, 50)])
    bp = await vm_blueprint(session)
    best = await building.get_structure_by_id(session, members[0].structure_id)
    with pytest.raises(Conflict) as error:
        await vm(session, site, complex_, bp, cpus=8, memory_mb=16384)
    assert error.value.message == (
        f"complex {complex_.name} has no member with 8 CPUs, 16384 MB memory free: best is "
        f"{best.hostname} with 4 CPUs free, 8192 MB memory free"
    )
    assert error.value.field == "complex"
    unknown = await simulated_complex(session, [None])
    with pytest.raises(Conflict, match="has no member whose capacity is known"):
        await vm(session, unknown[0], unknown[1], bp, cpus=1)


async def test_the_failed_create_leaves_nothing(db_url: str) -> None:
    """The refused create's transaction holds neither the foundation nor a placement."""
    engine = create_engine(Settings(database_url=db_url))
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            site, complex_, _ = await simulated_complex(session, [(1, 1024, 10)])
            bp = await vm_blueprint(session)
            site_id, complex_id, bp_name = site.id, complex_.id, bp.name
        locator = unique("vm")
        with pytest.raises(Conflict):
            async with sessions() as session, session.begin():
                await building.create_foundation(
                    session,
                    locator=locator,
                    site=await session.get_one(Site, site_id),
                    blueprint=await _blueprint(session, bp_name),
                    type="simulated-vm",
                    fields={"complex": complex_.name, "cpus": 2},
                )
        async with sessions() as session:
            found = await session.execute(
                select(Foundation.id).where(Foundation.locator == locator)
            )
            assert found.first() is None
            placed = select(func.count()).where(FoundationPlacement.complex_id == complex_id)
            assert (await session.execute(placed)).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_pins(session: AsyncSession) -> None:
    site, complex_, members = await simulated_complex(session, [(4, 8192, 100), (8, 16384, 100)])
    bp = await vm_blueprint(session)
    h0 = (await session.get_one(ComplexMember, members[0].id)).structure_id
    hostname = (await building.get_structure_by_id(session, h0)).hostname
    pinned = await vm(session, site, complex_, bp, member=hostname, cpus=1)
    access = await placement.member_access(session, pinned)
    assert access is not None
    assert access.structure == hostname
    row = await session.get_one(FoundationPlacement, pinned.id)
    assert (row.pinned, row.cpus) == (True, 1)
    with pytest.raises(InvalidInput, match="is not the hostname of a member") as error:
        await vm(session, site, complex_, bp, member="nowhere", cpus=1)
    assert error.value.field == "member"
    with pytest.raises(Conflict, match=r"does not have 4 CPUs free: it has 3 CPUs free") as cf:
        await vm(session, site, complex_, bp, member=hostname, cpus=4)
    assert cf.value.field == "member"
    # a Structure that is not a member, pinned through place() itself
    _, _, outsider = await make_stack(session)
    plain = await make_foundation(session, site, bp)
    with pytest.raises(InvalidInput, match="is not a member of complex"):
        await placement.place(session, plain, complex_, Demand(1, 1, 1), pin=outsider)
    with pytest.raises(Conflict, match="is already placed"):
        await placement.place(session, pinned, complex_, Demand(1, 1, 1))


async def test_hosting_fields_are_checked(session: AsyncSession) -> None:
    site, complex_, _ = await simulated_complex(session, [(4, 8192, 100)])
    bp = await vm_blueprint(session)
    with pytest.raises(InvalidInput, match=r"give its name as typeFields\.complex") as error:
        await make_foundation(session, site, bp, type="simulated-vm", fields={"cpus": 1})
    assert error.value.field == "complex"
    with pytest.raises(InvalidInput, match="does not exist"):
        await vm(session, site, complex_, bp, complex="nothing", cpus=1)
    generic = await complexes.create_complex(session, name=unique("g"), site=site)
    with pytest.raises(InvalidInput, match="is a generic complex") as error:
        await vm(session, site, complex_, bp, complex=generic.name, cpus=1)
    assert error.value.field == "complex"
    with pytest.raises(InvalidInput, match="cpus must be a whole number") as error:
        await vm(session, site, complex_, bp, cpus=-1)
    assert error.value.field == "cpus"
    made = await vm(session, site, complex_, bp, cpus=1)
    with pytest.raises(InvalidInput, match="cannot be changed") as error:
        await building.update_foundation(session, made, fields={"complex": generic.name})
    assert error.value.field == "complex"


async def test_release_on_destroy_and_delete(session: AsyncSession) -> None:
    site, complex_, members = await simulated_complex(session, [(4, 8192, 100)])
    bp = await vm_blueprint(session)
    made = await vm(session, site, complex_, bp, cpus=4)
    with pytest.raises(Conflict, match="has no member with 1 CPUs free"):
        await vm(session, site, complex_, bp, cpus=1)
    structure = await building.get_structure_by_id(session, members[0].structure_id)
    with pytest.raises(InUse, match="carries foundations"):
        await complexes.remove_complex_member(session, complex_, structure)
    with pytest.raises(InUse, match="carries 1 placed foundations"):
        await complexes.delete_complex(session, complex_)
    await building.set_built(session, made)
    await building.set_destroyed(session, made)
    assert await placement.member_access(session, made) is None
    again = await vm(session, site, complex_, bp, cpus=4)
    await building.delete_foundation(session, again)
    assert await session.get(FoundationPlacement, again.id) is None
    await vm(session, site, complex_, bp, cpus=4)


async def test_lowering_overcommit_below_what_is_placed_is_refused(session: AsyncSession) -> None:
    site, complex_, _ = await simulated_complex(session, [(4, 8192, 100)], cpu_overcommit=2.0)
    bp = await vm_blueprint(session)
    await vm(session, site, complex_, bp, cpus=6)
    with pytest.raises(InUse, match="more CPUs placed than the lowered over-commit") as error:
        await complexes.update_complex(session, complex_, cpu_overcommit=1.0)
    assert error.value.field == "cpu_overcommit"
    assert complex_.cpu_overcommit == 2.0
    await complexes.update_complex(session, complex_, cpu_overcommit=1.5)
    assert complex_.cpu_overcommit == 1.5


async def test_two_racing_creates_never_overfill(own_pg_url: str) -> None:
    """Many creates at once on separate PostgreSQL connections: exactly as many fit as
    there is room for, the rest are refused."""
    engine = create_engine(Settings(database_url=own_pg_url), pool_size=12, max_overflow=0)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            site, complex_, _ = await simulated_complex(session, [(4, 65536, 1000)] * 2)
            bp = await vm_blueprint(session)
            site_id, bp_name, complex_name = site.id, bp.name, complex_.name
        ready = asyncio.Event()

        async def create(index: int) -> str:
            await ready.wait()
            try:
                async with sessions() as session, session.begin():
                    await building.create_foundation(
                        session,
                        locator=unique(f"race{index}-"),
                        site=await session.get_one(Site, site_id),
                        blueprint=await _blueprint(session, bp_name),
                        type="simulated-vm",
                        fields={"complex": complex_name, "cpus": 2},
                    )
                    await asyncio.sleep(0.05)  # hold the lock a while: the others wait
                return "placed"
            except Conflict:
                return "full"

        tasks = [asyncio.create_task(create(i)) for i in range(10)]
        ready.set()
        outcomes = await asyncio.gather(*tasks)
        assert sorted(outcomes).count("placed") == 4  # 2 members x 4 CPUs / 2 each
        async with sessions() as session:
            rooms = await placement.member_rooms(
                session, await complexes.get_complex(session, complex_name)
            )
            assert [r.allocated.cpus for r in rooms] == [4, 4]
    finally:
        await engine.dispose()


async def _blueprint(session: AsyncSession, name: str) -> Any:
    return await blueprint.get_foundation_blueprint(session, name)


async def test_resources_used_follows_dependencies(session: AsyncSession) -> None:
    """A structure on a VM uses that VM's placement and, through the VM's dependency, what
    the structure it waits for stands on; a blueprint sums its structures'."""
    site, complex_, _ = await simulated_complex(session, [(64, 65536, 1000)] * 2)
    _, other, _ = await simulated_complex(session, [(64, 65536, 1000)])
    bp = await vm_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[bp])
    db_vm = await vm(session, site, complex_, bp, cpus=4, memory_mb=8192, disk_gb=100)
    db = await make_structure(session, site, db_vm, sbp)
    web_vm = await vm(session, site, other, bp, cpus=2, memory_mb=2048, disk_gb=10)
    web = await make_structure(session, site, web_vm, sbp)
    # web's foundation waits for a dependency chained on one on the db structure
    on_db = await building.create_dependency(session, structure=db)
    await building.create_dependency(session, dependency=on_db, foundation=web_vm)
    used = await usage.resources_used(session, structure=web)
    assert [(u.complex.name, u.used, u.foundations) for u in used] == sorted(
        [(complex_.name, Demand(4, 8192, 100), 1), (other.name, Demand(2, 2048, 10), 1)]
    )
    assert [
        (u.complex.name, u.used) for u in await usage.resources_used(session, structure=db)
    ] == [(complex_.name, Demand(4, 8192, 100))]
    assert [u.used for u in await usage.resources_used(session, dependency=on_db)] == [
        Demand(4, 8192, 100)
    ]
    by_blueprint = await usage.resources_used(session, blueprint=sbp)
    assert sorted((u.complex.name, u.foundations) for u in by_blueprint) == sorted(
        [(complex_.name, 1), (other.name, 1)]
    )
    _, _, lone = await make_stack(session)
    assert await usage.resources_used(session, structure=lone) == []
    with pytest.raises(InvalidInput, match="exactly one of"):
        await usage.resources_used(session, structure=web, dependency=on_db)
