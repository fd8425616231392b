"""Long-polls against a real `contractor serve`: a client that disconnects mid-poll stops
waiting, so the next task goes at once to a poller that is still there."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import jobs
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.foreman.inventory import make_job_stack
from tests.serving import clean_env, contractor_serve


def _start_poll(base: str, token: str, site: str, wait: float) -> socket.socket:
    """Send a long-poll over a raw connection and return it, unanswered."""
    where = urlsplit(base)
    body = json.dumps({"site": site, "modules": ["simulated"], "wait": wait}).encode()
    connection = socket.create_connection((where.hostname, where.port), timeout=10)
    connection.sendall(
        b"POST /api/v1/subcontractor/poll HTTP/1.1\r\n"
        + f"Host: {where.netloc}\r\nAuthorization: Bearer {token}\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return connection


async def test_a_disconnected_poller_gets_no_task(tmp_path: Path) -> None:
    url = Settings(database_url=make_pg_database("contractor_poll_gone")).database_url
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        sessions = create_session_factory(engine)
        async with transaction(sessions) as session:
            stack = await make_job_stack(session, foundation_create="foundation.power_state()\n")
            site = stack.site.name
            token = (
                await task_service.create_subcontractor_token(
                    session, name="sub", sites=[site], modules=["simulated"]
                )
            ).text
        env = clean_env(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_FOREMAN_IDLE_SECONDS="0.2")
        with contractor_serve(env, tmp_path) as base:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                # the first poller waits (nothing to do yet), then goes away mid-poll
                gone = _start_poll(base, token, site, wait=30)
                await asyncio.sleep(0.5)
                gone.close()
                await asyncio.sleep(0.5)
                async with transaction(sessions) as session:
                    job = await jobs.create_job(
                        session, target=stack.foundation, script_name="create", creator="alice"
                    )
                started = time.monotonic()
                response = await http.post(
                    "/api/v1/subcontractor/poll",
                    json={"site": site, "modules": ["simulated"], "wait": 10},
                )
                waited = time.monotonic() - started
                assert response.status_code == 200, response.text
                (task,) = response.json()["tasks"]
                # first hand-out: the gone client was never given it
                assert (task["job_id"], task["function"], task["attempt"]) == (
                    job.id,
                    "power_state",
                    1,
                )
                assert waited < 5.0, f"the task came after {waited:.1f} s"
    finally:
        await engine.dispose()
