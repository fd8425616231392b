"""What the end-to-end tests (IPMI, Redfish, AWS) share: a migrated PostgreSQL database of
their own (``Database``, ``migrated_database``) and a `contractor serve` on it with the
config file of a `subcontractor run` for one site (``served``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contractor import migrate
from contractor.child_process import free_port
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Job, Task
from contractor.services import jobs
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.subcontractor.processes import contractor_on, write_config

__all__ = ["WAIT", "Database", "Served", "Setup", "migrated_database", "served"]

T = TypeVar("T")
D = TypeVar("D", bound="Database")
WAIT = 45.0  # every wait of ``Database`` is bounded by this


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    settings: Settings

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with transaction(create_session_factory(self.engine)) as session:
            return await work(session)

    async def job(self, job_id: int) -> Job:
        return await self.run(lambda session: jobs.get_job(session, job_id))

    async def wait_for(self, job_id: int, *states: str) -> Job:
        deadline = time.monotonic() + WAIT
        while True:
            job = await self.job(job_id)
            if job.state in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {job.state} ({job.message!r}), not {states}")
            await asyncio.sleep(0.1)

    async def tasks(self, job_id: int) -> list[Task]:
        async def work(session: AsyncSession) -> list[Task]:
            query = select(Task).where(Task.job_id == job_id).order_by(Task.id)
            return list((await session.execute(query)).scalars())

        return await self.run(work)

    async def wait_for_lease(self, job_id: int) -> Task:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for task in await self.tasks(job_id):
                if task.state == "open" and task.lease is not None:
                    return task
            await asyncio.sleep(0.05)
        raise AssertionError(f"no task of job {job_id} was handed out")


@dataclass
class Setup:
    """A foundation with a create job, and the token of an agent for its site."""

    site: str
    foundation_id: int
    job_id: int
    token: str


@asynccontextmanager
async def migrated_database(prefix: str, kind: type[D]) -> AsyncIterator[D]:
    """A new PostgreSQL database (named from ``prefix``) at the latest schema, as ``kind``;
    its engine disposed of afterwards."""
    url = Settings(database_url=make_pg_database(prefix)).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        yield kind(url=url, engine=engine, settings=settings)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Served:
    url: str  # the running `contractor serve`
    config: Path  # a `subcontractor run` config file for it


@contextmanager
def served(
    database_url: str,
    directory: Path,
    *,
    token: str,
    site: str,
    modules: dict[str, dict[str, object]],
    journal: str = "journal",
    **settings: str,
) -> Iterator[Served]:
    """`contractor serve` on ``database_url`` (with these ``CONTRACTOR_`` settings) on a free
    port for the block, and the config of an agent of ``site`` running ``modules`` with its
    journal in ``directory / journal``."""
    with contractor_on(free_port(), database_url, directory, **settings) as url:
        config = write_config(
            directory,
            url=url,
            token=token,
            site=site,
            modules=modules,
            journal=directory / journal,
        )
        yield Served(url, config)
