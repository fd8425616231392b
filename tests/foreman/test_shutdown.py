"""`contractor serve` as real processes: one on SQLite, or `--workers 2` on PostgreSQL (a job
driven to done over HTTP through both). Stopping it while a subcontractor long-polls answers
the poll at once with no tasks, and the server exits, instead of holding the shutdown for the
poll's wait."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import jobs
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import answer_over_http
from tests.serving import clean_env, free_port


async def _inventory(url: str) -> tuple[str, str, int]:
    """A site with a foundation and its create job (3 remote steps), and a token."""
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine)) as session:
            stack = await make_job_stack(session)
            job = await jobs.create_job(
                session, target=stack.foundation, script_name="create", creator="alice"
            )
            new = await task_service.create_subcontractor_token(
                session, name="sub", sites=[stack.site.name], modules=["simulated"]
            )
            return stack.site.name, new.text, job.id
    finally:
        await engine.dispose()


async def _job_state(url: str, job_id: int) -> str:
    engine = create_engine(Settings(database_url=url))
    try:
        async with create_session_factory(engine)() as session:
            return (await jobs.get_job(session, job_id)).state
    finally:
        await engine.dispose()


def _serve(url: str, port: int, cwd: Path, workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contractor",
            "serve",
            *("--port", str(port)),
            *("--workers", str(workers)),
        ],
        cwd=cwd,
        env=clean_env(
            CONTRACTOR_DATABASE_URL=url,
            CONTRACTOR_TASK_MAX_WAIT_SECONDS="60",
            CONTRACTOR_FOREMAN_IDLE_SECONDS="0.5",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_and_stop_with_a_long_poll_open(tmp_path: Path, workers: int) -> None:
    if workers == 1:
        url = f"sqlite:///{tmp_path / 'contractor.sqlite3'}"
    else:
        url = Settings(database_url=make_pg_database("contractor_workers")).database_url
    migrate.upgrade(Settings(database_url=url))
    site, token, job_id = await _inventory(url)
    port = free_port()
    server = _serve(url, port, tmp_path, workers)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=90) as http:
            for _ in range(300):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            functions = await answer_over_http(http, site, ["simulated"], 3)
            assert functions == ["set_power", "power_state", "set_power"]
            for _ in range(100):
                if await _job_state(url, job_id) == "done":
                    break
                await asyncio.sleep(0.1)
            assert await _job_state(url, job_id) == "done"

            body = {"site": site, "modules": ["simulated"], "wait": 50}
            polling = asyncio.create_task(http.post("/api/v1/subcontractor/poll", json=body))
            await asyncio.sleep(1.0)  # the poll is waiting now
            assert not polling.done()
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(polling, timeout=10)
            assert response.status_code == 200
            assert response.json() == {"tasks": []}
            # a clean stop is a success for supervisors (uvicorn alone exits by the signal)
            assert await asyncio.to_thread(server.wait, 15) == 0
            assert time.monotonic() - started < 10  # not the poll's 50 s
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=5)
