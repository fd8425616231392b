"""Stopping `contractor serve` while a subcontractor long-polls: the poll answers at once
with no tasks and the server exits, instead of holding the shutdown for the poll's wait."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.factories import make_site
from tests.serving import clean_env, free_port


async def _token(url: str) -> tuple[str, str]:
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine)) as session:
            site = await make_site(session)
            new = await task_service.create_subcontractor_token(
                session, name="sub", sites=[site.name], modules=["simulated"]
            )
            return site.name, new.text
    finally:
        await engine.dispose()


def _serve(url: str, port: int, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
        cwd=cwd,
        env=clean_env(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_TASK_MAX_WAIT_SECONDS="60"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_long_poll_does_not_hold_the_shutdown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'contractor.sqlite3'}"
    migrate.upgrade(Settings(database_url=url))
    site, token = await _token(url)
    port = free_port()
    server = _serve(url, port, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=90) as http:
            for _ in range(300):
                try:
                    await http.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            body = {"site": site, "modules": ["simulated"], "wait": 50}
            polling = asyncio.create_task(http.post("/api/v1/subcontractor/poll", json=body))
            await asyncio.sleep(1.0)  # the poll is waiting now
            assert not polling.done()
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(polling, timeout=10)
            assert response.status_code == 200
            assert response.json() == {"tasks": []}
            # uvicorn exits by the signal it got, once it has shut down cleanly
            assert await asyncio.to_thread(server.wait, 15) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 10  # not the poll's 50 s
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=5)
