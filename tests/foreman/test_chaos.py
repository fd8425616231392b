"""Chaos: `contractor serve` (API and foreman in one process) is killed with SIGKILL at random
moments while a subcontractor works through 100 jobs; after each kill it is started again.
Every job must finish, every remote step must be accepted exactly once, and no answer the
client saw refused may have been taken."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Foundation, Job, Task
from contractor.services import blueprint as bps
from contractor.services import building, jobs, site
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.serving import clean_env, free_port

JOBS = 100
STEPS = 2
KILLS = 3
SCRIPT = "".join(f"s{n} = foundation.power_state()\n" for n in range(STEPS))


class Server:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "contractor", "serve", "--port", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("contractor serve did not come back")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


async def _populate(settings: Settings) -> str:
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            here = await site.create_site(session, name="chaos")
            blueprint = await bps.create_foundation_blueprint(
                session, name="sim", foundation_types=["simulated"]
            )
            script = await bps.create_script(session, name="steps", source=SCRIPT)
            await bps.link_script(session, blueprint=blueprint, role="create", script=script)
            for n in range(JOBS):
                foundation = await building.create_foundation(
                    session, locator=f"sim{n}", site=here, blueprint=blueprint, type="simulated"
                )
                await building.set_located(session, foundation)
                await jobs.create_job(
                    session, target=foundation, script_name="create", creator="chaos"
                )
            new = await task_service.create_subcontractor_token(
                session, name="chaos", sites=["chaos"], modules=["simulated"]
            )
            return new.text
    finally:
        await engine.dispose()


async def test_sigkill_during_100_jobs(tmp_path: Path) -> None:
    url = Settings(database_url=make_pg_database("contractor_chaos")).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    token = await _populate(settings)
    server = Server(
        clean_env(
            CONTRACTOR_DATABASE_URL=url,
            CONTRACTOR_TASK_LEASE_SECONDS="2",
            CONTRACTOR_FOREMAN_IDLE_SECONDS="0.2",
            CONTRACTOR_LOG_LEVEL="warning",
        ),
        tmp_path,
    )
    accepted: Counter[int] = Counter()
    accepted_leases: set[str] = set()
    refused_leases: set[str] = set()
    answers = 0
    done = asyncio.Event()
    rng = random.Random(6)

    async def subcontractor() -> None:
        nonlocal answers
        headers = {"Authorization": f"Bearer {token}"}
        while not done.is_set():
            try:
                async with httpx.AsyncClient(
                    base_url=server.base, headers=headers, timeout=10
                ) as http:
                    while not done.is_set():
                        poll = await http.post(
                            "/api/v1/subcontractor/poll",
                            json={
                                "site": "chaos",
                                "modules": ["simulated"],
                                "max_tasks": 10,
                                "wait": 1,
                            },
                        )
                        poll.raise_for_status()
                        for task in poll.json()["tasks"]:
                            body: dict[str, Any] = {
                                "task_id": task["task_id"],
                                "cookie": task["cookie"],
                                "lease": task["lease"],
                                "data": {"state": "off"},
                            }
                            answers += 1  # sent (the reply may be lost in a kill)
                            reply = await http.post("/api/v1/subcontractor/result", json=body)
                            if reply.status_code == 200:
                                accepted[task["task_id"]] += 1
                                accepted_leases.add(task["lease"])
                            else:
                                assert reply.status_code == 409, reply.text
                                refused_leases.add(task["lease"])
            except (httpx.TransportError, httpx.HTTPStatusError):
                await asyncio.sleep(0.1)  # the server is down: try again

    async def finished() -> int:
        engine = create_engine(settings)
        try:
            async with create_session_factory(engine)() as session:
                query = select(func.count()).select_from(Job).where(Job.state == "done")
                return int((await session.execute(query)).scalar_one())
        finally:
            await engine.dispose()

    server.start()
    workers = [asyncio.create_task(subcontractor()) for _ in range(3)]
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
        deadline = time.monotonic() + 90
        while await finished() < JOBS:
            assert time.monotonic() < deadline, "jobs did not finish after the kills"
            await asyncio.sleep(0.2)
    finally:
        done.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.to_thread(server.stop)

    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            states = (await session.execute(select(Foundation.built_at.is_not(None)))).scalars()
            assert all(states)
            per_job = Counter(
                (await session.execute(select(Task.job_id).where(Task.state == "done"))).scalars()
            )
            assert set(per_job.values()) == {STEPS}
            assert len(per_job) == JOBS
            variables = [row for row in (await session.execute(select(Job.runner_state))).scalars()]
            assert all('"s1":"off"' in state for state in variables)
    finally:
        await engine.dispose()
    # a task the client saw accepted was accepted once; refusals were for leases that had
    # expired while the server was down (the task went to another poller)
    assert max(accepted.values()) == 1
    assert not refused_leases & accepted_leases
    assert answers >= JOBS * STEPS
