"""A libvirt VM's shipped create and destroy jobs end to end: `contractor serve` on PostgreSQL
steps the jobs of a ``libvirt`` foundation placed on a member of a libvirt Complex, and the
real subcontractor agent with the real ``libvirt`` module takes their tasks over HTTP and
runs them against libvirt's test driver (``test:///default``). The agent runs in this
process, so the test reads the driver's state itself: the member's capacity read from the
host, then one domain defined with the shape, the MACs recorded on the foundation's
interfaces, running; then destroyed with nothing left."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import migrate
from contractor.db import create_engine
from contractor.models import (
    Complex,
    ComplexMember,
    Foundation,
    RealNetworkInterface,
    Site,
    Task,
)
from contractor.services import blueprint as bps
from contractor.services import building, complexes, interfaces, jobs, resources
from contractor.services import tasks as task_service
from contractor.settings import Settings
from subcontractor.agent import Agent
from subcontractor.client import Client
from subcontractor.config import load
from subcontractor.journal import Journal
from subcontractor.masking import Masker
from tests.conftest import make_pg_database
from tests.factories import make_stack, unique
from tests.serving import free_port
from tests.subcontractor.processes import contractor_on, write_config
from tests.subcontractor.test_end_to_end import Database

libvirt = pytest.importorskip("libvirt", reason="the libvirt extra (libvirt-python) is needed")

from subcontractor.modules.libvirt import LibvirtModule, LibvirtOptions  # noqa: E402

pytestmark = pytest.mark.postgres
URI = "test:///default"
POOL = "default-pool"
PASSWORD = "libvirt-s3cret"


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    url = Settings(database_url=make_pg_database("contractor_libvirt")).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        yield Database(url=url, engine=engine, settings=settings)
    finally:
        await engine.dispose()


@pytest.fixture
def host() -> Iterator[Any]:
    """The test driver held open, and what the test made removed afterwards."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    before = {d.UUIDString() for d in conn.listAllDomains()}
    try:
        yield conn
    finally:
        for domain in conn.listAllDomains():
            if domain.UUIDString() not in before:
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        conn.close()


@dataclass
class Planned:
    site: str
    complex_id: int
    member_id: int
    token: str


async def plan(db: Database) -> Planned:
    """The shipped resources, a libvirt Complex with one built member whose endpoint is the
    test driver (its capacity not read yet), and an agent token."""

    async def work(session: AsyncSession) -> Planned:
        await resources.load_builtin(session)
        site, host_foundation, structure = await make_stack(session)
        await building.set_built(session, host_foundation)
        await building.set_structure_built(session, structure)
        complex_ = await complexes.create_complex(
            session, name=unique("kvm"), site=site, type="LibVirt"
        )
        member = await complexes.add_complex_member(
            session, complex_, structure, endpoint=URI, username="ops", password=PASSWORD
        )
        token = await task_service.create_subcontractor_token(
            session,
            name=unique("agent"),
            sites=[site.name],
            modules=["libvirt"],
        )
        return Planned(site.name, complex_.id, member.id, token.text)

    return await db.run(work)


async def refresh_capacity(db: Database, planned: Planned) -> int:
    async def work(session: AsyncSession) -> int:
        complex_ = await session.get_one(Complex, planned.complex_id)
        [job] = await complexes.refresh_capacity(session, complex_, creator="alice")
        return job.id

    return await db.run(work)


async def create_vm(db: Database, planned: Planned, locator: str) -> tuple[int, int]:
    """A VM foundation placed on the member, with one interface, and its create job:
    (foundation id, job id)."""

    async def work(session: AsyncSession) -> tuple[int, int]:
        complex_ = await session.get_one(Complex, planned.complex_id)
        site = await session.get_one(Site, complex_.site_id)
        blueprint = await bps.get_foundation_blueprint(session, "libvirt-vm")
        foundation = await building.create_foundation(
            session,
            locator=locator,
            site=site,
            blueprint=blueprint,
            type="LibVirt",
            fields={
                "complex": complex_.name,
                "cpu_count": 2,
                "memory_mb": 512,
                "disk_gb": 4,
                "pool": POOL,
                "network": "default",
            },
        )
        await interfaces.add_interface(
            session,
            foundation=foundation,
            physical_location="nic0",
            name="eth0",
            is_provisioning=True,
        )
        await building.set_located(session, foundation)
        job = await jobs.create_job(
            session, target=foundation, script_name="create", creator="alice"
        )
        return foundation.id, job.id

    return await db.run(work)


async def wait_for(db: Database, job_id: int, state: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        job = await db.job(job_id)
        if job.state in (state, "error", "aborted"):
            assert job.state == state, f"job {job_id}: {job.state} {job.message!r}"
            return
        assert asyncio.get_running_loop().time() < deadline, f"{job.state} {job.message!r}"
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def agent_in_process(config_path: Path, token: str) -> AsyncIterator[Agent]:
    config = load(config_path)
    module = LibvirtModule(
        "libvirt", LibvirtOptions(confirm_interval=0.05, shutdown_timeout=2), concurrency=2
    )
    client = Client(config.contractor)
    journal = Journal(config.agent.journal_dir)
    journal.open()
    agent = Agent(config, {"libvirt": module}, client, journal, Masker(config.secrets()))
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await client.aclose()
        journal.close()
        await module.aclose()


async def test_capacity_create_and_destroy_through_the_foreman(
    database: Database, host: Any, tmp_path: Path
) -> None:
    locator = f"vm-{uuid.uuid4().hex[:8]}"
    planned = await plan(database)
    with contractor_on(free_port(), database.url, tmp_path) as url:
        config = write_config(
            tmp_path,
            url=url,
            token=planned.token,
            site=planned.site,
            modules={"libvirt": {"concurrency": 2}},
            journal=tmp_path / "journal",
            wait=0.5,
        )
        async with agent_in_process(config, planned.token):
            # the member's capacity, read from the host by the module through a job
            await wait_for(database, await refresh_capacity(database, planned), "done")
            member = await database.run(
                lambda session: session.get_one(ComplexMember, planned.member_id)
            )
            info = host.getInfo()
            assert (member.cpu_count, member.memory_mb) == (info[2], info[1])
            assert member.disk_gb == host.storagePoolLookupByName(POOL).info()[3] // 2**30

            foundation_id, job_id = await create_vm(database, planned, locator)
            await wait_for(database, job_id, "done")

            async def state(session: AsyncSession) -> tuple[Foundation, list[RealNetworkInterface]]:
                foundation = await session.get_one(Foundation, foundation_id)
                rows = await session.execute(
                    select(RealNetworkInterface).where(
                        RealNetworkInterface.foundation_id == foundation_id
                    )
                )
                return foundation, list(rows.scalars())

            foundation, nics = await database.run(state)
            assert foundation.state == "built"
            recorded = foundation.domain_uuid  # type: ignore[attr-defined]
            assert recorded is not None
            domain = host.lookupByUUIDString(recorded)
            assert domain.name() == locator
            assert domain.isActive()  # booted (from the network first)
            tree = ET.fromstring(domain.XMLDesc(0))
            assert tree.findtext("vcpu") == "2"
            assert [b.get("dev") for b in tree.findall("os/boot")] == ["network", "hd"]
            [mac] = [m.get("address") for m in tree.findall("devices/interface/mac")]
            assert [n.mac for n in nics] == [mac]  # the boot path knows the VM
            assert [d.name() for d in host.listAllDomains()].count(locator) == 1

            async def destroy(session: AsyncSession) -> int:
                found = await session.get_one(Foundation, foundation_id)
                job = await jobs.create_job(
                    session, target=found, script_name="destroy", creator="alice"
                )
                return job.id

            destroy_id = await database.run(destroy)
            await wait_for(database, destroy_id, "done")
            foundation, _ = await database.run(state)
            assert foundation.domain_uuid is None  # type: ignore[attr-defined]
            assert locator not in {d.name() for d in host.listAllDomains()}
            left = host.storagePoolLookupByName(POOL).listAllVolumes()
            assert not [v.name() for v in left if recorded in v.name()]

        # the member's password went only inside the tasks' parameters: never shown back
        async def shown(session: AsyncSession) -> list[Task]:
            rows = await session.execute(select(Task).where(Task.job_id.in_([job_id, destroy_id])))
            return list(rows.scalars())

        tasks = await database.run(shown)
        assert {t.function for t in tasks} >= {
            "create",
            "get_interface_map",
            "set_boot_device",
            "set_power",
            "destroy",
        }
        for log in tmp_path.glob("contractor-*.log"):  # noqa: ASYNC240 (the test is over)
            assert PASSWORD not in log.read_text(errors="replace")
