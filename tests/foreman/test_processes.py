"""Real processes on one PostgreSQL: `contractor serve` with its foreman off serves the task
API, a separate `contractor foreman` steps the jobs, and NOTIFY carries the wake-ups between
them. Also the CLI for subcontractor tokens."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from click.testing import CliRunner

from contractor import migrate
from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Foundation
from contractor.services import jobs
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.foreman.inventory import make_job_stack
from tests.foreman.test_http import answer_over_http
from tests.serving import clean_env, contractor_serve


@contextmanager
def contractor_foreman(env: dict[str, str], cwd: Path) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "contractor", "foreman"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_serve_and_a_separate_foreman(tmp_path: Path) -> None:
    url = Settings(database_url=make_pg_database("contractor_processes")).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            stack = await make_job_stack(session)
            job = await jobs.create_job(
                session, target=stack.foundation, script_name="create", creator="alice"
            )
            token = (
                await task_service.create_subcontractor_token(
                    session, name="sub", sites=[stack.site.name], modules=["simulated"]
                )
            ).text
        env = clean_env(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_FOREMAN_ENABLED="false")
        foreman_env = clean_env(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_FOREMAN_IDLE_SECONDS="5")
        with contractor_foreman(foreman_env, tmp_path), contractor_serve(env, tmp_path) as base:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                functions = await answer_over_http(http, stack.site.name, ["simulated"], 3)
                assert functions == ["set_power", "power_state", "set_power"]
                openapi = await http.get("/api/v1/subcontractor/openapi.json")
                assert set(openapi.json()["paths"]) == {
                    "/poll",
                    "/result",
                    "/error",
                    "/heartbeat",
                    "/boot",
                    "/leases",
                }

            async def finished() -> tuple[str, str]:
                while True:
                    async with transaction(create_session_factory(engine)) as session:
                        row = await jobs.get_job(session, job.id)
                        foundation = await session.get_one(Foundation, stack.foundation.id)
                        if row.state != "queued":
                            return row.state, foundation.state
                    await asyncio.sleep(0.05)

            assert await asyncio.wait_for(finished(), 10) == ("done", "built")
    finally:
        await engine.dispose()


def test_subcontractor_token_cli(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(
        main,
        ["subcontractor-token", "create", "sub1", "--site", "nowhere", "--module", "ipmi"],
        env=env,
    )
    assert result.exit_code == 1
    assert "site 'nowhere' does not exist" in result.output
