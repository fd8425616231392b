"""Dependency jobs and the start ordering around them, both ways, stepped by the engine in
one (rolled-back) transaction; and targets with an unfinished job refuse to be deleted."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.errors import InUse
from contractor.foreman.engine import step_job
from contractor.models import Dependency, Foundation, FoundationBluePrint, Job, Structure
from contractor.services import building, job_actions, jobs
from contractor.settings import Settings
from tests.factories import make_foundation
from tests.foreman.inventory import Stack, make_job_stack
from tests.foreman.test_engine import _answer, _token

SETTINGS = Settings(database_url="sqlite://")


async def _step(session: AsyncSession, job: Job) -> Job:
    await step_job(session, job, settings=SETTINGS)
    return job


async def _dependency_stack(session: AsyncSession) -> tuple[Stack, Dependency, Foundation]:
    """A structure, a dependency on it, and a second (located) foundation that needs the
    dependency (a machine that can only be built once a service on the structure runs)."""
    stack = await make_job_stack(session)
    blueprint = await session.get_one(FoundationBluePrint, stack.foundation.blueprint_id)
    needs = await make_foundation(session, stack.site, blueprint, type="simulated")
    await building.set_located(session, needs)
    dependency = await building.create_dependency(
        session, structure=stack.structure, foundation=needs
    )
    return stack, dependency, needs


async def test_dependency_create_waits_for_its_structure_and_holds_its_foundation(
    session: AsyncSession,
) -> None:
    stack, dependency, needs = await _dependency_stack(session)
    dependency_job = await jobs.create_job(
        session, target=dependency, script_name="create", creator="alice"
    )
    foundation_job = await jobs.create_job(
        session, target=needs, script_name="create", creator="alice"
    )
    await _step(session, dependency_job)
    await _step(session, foundation_job)
    assert dependency_job.state == "waiting"
    assert dependency_job.message == f"waiting for structure {stack.structure.hostname} to be built"
    assert foundation_job.state == "waiting"
    assert foundation_job.message == f"waiting for dependency {dependency.id} to be built"

    await building.set_built(session, stack.foundation)
    await building.set_structure_built(session, stack.structure)
    await _step(session, foundation_job)
    assert foundation_job.state == "waiting"  # still: the dependency is not built yet
    await _step(session, dependency_job)
    assert dependency_job.state == "done", dependency_job.message  # no create script: nothing
    assert dependency.state == "built"
    await _step(session, foundation_job)
    assert foundation_job.state == "queued"


async def test_destroys_go_top_down_through_a_dependency(session: AsyncSession) -> None:
    stack, dependency, needs = await _dependency_stack(session)
    await building.set_built(session, stack.foundation)
    await building.set_structure_built(session, stack.structure)
    await building.set_dependency_built(session, dependency)
    await building.set_built(session, needs)

    structure_job = await jobs.create_job(
        session, target=stack.structure, script_name="destroy", creator="alice"
    )
    dependency_job = await jobs.create_job(
        session, target=dependency, script_name="destroy", creator="alice"
    )
    await _step(session, structure_job)
    await _step(session, dependency_job)
    assert structure_job.state == "waiting"
    assert structure_job.message == f"waiting for dependency {dependency.id} to be destroyed"
    assert dependency_job.state == "waiting"
    assert dependency_job.message == f"waiting for foundation {needs.locator} to be destroyed"

    foundation_job = await jobs.create_job(
        session, target=needs, script_name="destroy", creator="alice"
    )
    await _step(session, foundation_job)
    assert foundation_job.state == "queued"  # nothing stands on it
    token = await _token(session, stack.site.name, ["simulated"])
    task = await _answer(session, token, stack.site.name, {"state": "off"})
    assert (task.job_id, task.function) == (foundation_job.id, "set_power")
    await _step(session, foundation_job)
    assert foundation_job.state == "done", foundation_job.message
    assert needs.state == "planned"

    await _step(session, structure_job)
    assert structure_job.state == "waiting"  # the dependency is still built
    await _step(session, dependency_job)
    assert dependency_job.state == "done", dependency_job.message
    assert dependency.state == "planned"
    await _step(session, structure_job)
    assert structure_job.state == "paused"  # its destroy script asks the operator


async def test_a_target_with_an_unfinished_job_is_not_deleted(session: AsyncSession) -> None:
    stack, dependency, needs = await _dependency_stack(session)
    structure_job = await jobs.create_job(
        session, target=stack.structure, script_name="create", creator="alice"
    )
    dependency_job = await jobs.create_job(
        session, target=dependency, script_name="create", creator="alice"
    )
    needs_job = await jobs.create_job(session, target=needs, script_name="create", creator="alice")
    with pytest.raises(InUse, match=f"unfinished job {needs_job.id} \\(create, waiting\\)"):
        await building.delete_foundation(session, needs)
    with pytest.raises(InUse, match=f"unfinished job {dependency_job.id} "):
        await building.delete_dependency(session, dependency)
    with pytest.raises(InUse, match=f"unfinished job {structure_job.id} "):
        await building.delete_structure(session, stack.structure)
    ids = [structure_job.id, dependency_job.id, needs_job.id]
    rows = await session.execute(
        select(Job.id, Job.state, Job.finished_at).where(Job.id.in_(ids)).order_by(Job.id)
    )
    assert [tuple(row) for row in rows] == [(job_id, "waiting", None) for job_id in sorted(ids)]
    for kind, row_id in (
        (Foundation, needs.id),
        (Dependency, dependency.id),
        (Structure, stack.structure.id),
    ):
        found = await session.execute(select(kind.id).where(kind.id == row_id))
        assert found.scalar_one() == row_id

    # once the job is finished (cancelled), the target may go
    await job_actions.cancel_job(session, dependency_job, actor="alice")
    await building.delete_dependency(session, dependency)
    found = await session.execute(select(Dependency.id).where(Dependency.id == dependency.id))
    assert found.first() is None
