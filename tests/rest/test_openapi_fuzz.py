"""Schemathesis, with every check it has, against a real `contractor serve` on PostgreSQL and
its own `/api/v1/subcontractor/openapi.json`, with a valid subcontractor token: the server
accepts what the document accepts, refuses what it refuses, and answers as it says."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.foreman.inventory import make_job_stack
from tests.serving import clean_env, contractor_serve


async def _token(url: str) -> str:
    """A site with a job waiting, and a subcontractor token for it."""
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine)) as session:
            stack = await make_job_stack(session)
            token = await task_service.create_subcontractor_token(
                session, name="fuzz", sites=[stack.site.name], modules=["simulated"]
            )
            return token.text
    finally:
        await engine.dispose()


def test_schemathesis_finds_nothing_in_the_task_api(tmp_path: Path) -> None:
    url = Settings(database_url=make_pg_database("contractor_fuzz")).database_url
    migrate.upgrade(Settings(database_url=url))
    token = asyncio.run(_token(url))
    # a long-poll holds its answer for at most a second here (60 s by default)
    env = clean_env(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_TASK_MAX_WAIT_SECONDS="1")
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert schemathesis is not None, "schemathesis is in the dev extra"
    log = tmp_path / "serve.log"
    with contractor_serve(env, tmp_path, output=log) as base:
        run = subprocess.run(
            [
                schemathesis,
                "run",
                f"{base}/api/v1/subcontractor/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                "100",
                "--workers",
                "2",
                "--request-timeout",
                "30",  # a shared CI machine may stall a while; a hang still fails
                "--no-color",
            ],
            cwd=tmp_path,  # its example database and reports stay in the test's directory
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    server = log.read_text()
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:] + server[-5000:]
    assert "passed" in run.stdout
