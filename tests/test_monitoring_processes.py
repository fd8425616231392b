"""Every process's /metrics during a run of jobs, read with Prometheus's text parser: a real
`contractor serve` (task API, foreman off), a `contractor foreman` (its own metrics port,
kernel-chosen) and a `subcontractor run` (opt-in metrics port), all on one PostgreSQL. The
counters move as the jobs do; bad scrapes are answered clearly. Then `serve --workers 2`:
the workers' counts add up, and the metrics directory is gone after the stop."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Foundation, FoundationBluePrint
from contractor.services import auth, building, interfaces, jobs
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import make_foundation
from tests.foreman.inventory import make_job_stack
from tests.metrics_scrape import announced, parse, scrape, value
from tests.serving import clean_env, contractor_serve
from tests.subcontractor.processes import subcontractor, write_config

pytestmark = pytest.mark.postgres
WAIT = 90.0


@contextmanager
def foreman_process(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """`contractor foreman` with its metrics on a kernel-chosen port; yields /metrics' URL."""
    log = cwd / f"foreman-{time.monotonic_ns()}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "contractor", "foreman"],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        yield announced(log, r"metrics on (http://\S+/metrics)")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)


async def _wait_done(engine: object, job_id: int) -> None:
    sessions = create_session_factory(engine)  # type: ignore[arg-type]
    deadline = time.monotonic() + WAIT
    while True:
        async with transaction(sessions) as session:
            job = await jobs.get_job(session, job_id)
        if job.state == "done":
            return
        assert job.state in ("waiting", "queued"), (job.state, job.message)
        assert time.monotonic() < deadline, f"job {job_id} is still {job.state}"
        await asyncio.sleep(0.2)


@pytest.fixture
def url() -> str:
    """A new PostgreSQL database at the latest schema."""
    made = Settings(database_url=make_pg_database("contractor_metrics")).database_url
    migrate.upgrade(Settings(database_url=made))
    return made


async def test_each_process_counts_the_jobs_it_runs(url: str, tmp_path: Path) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            stack = await make_job_stack(session)
            blueprint = await session.get_one(FoundationBluePrint, stack.foundation.blueprint_id)
            second = await make_foundation(session, stack.site, blueprint, type="simulated")
            await interfaces.add_interface(
                session, foundation=second, physical_location="eth0", name="eth0"
            )
            await building.set_located(session, second)
            user = await auth.create_user(session, username="prometheus", role="reader")
            api_token = (await auth.create_token(session, user=user)).text
            sub_token = (
                await task_service.create_subcontractor_token(
                    session, name="sub", sites=[stack.site.name], modules=["simulated"]
                )
            ).text
        site = stack.site.name
        common = {"CONTRACTOR_DATABASE_URL": url, "CONTRACTOR_METRICS_CACHE_SECONDS": "0"}
        serve_env = clean_env(
            **common,
            CONTRACTOR_FOREMAN_ENABLED="false",
            CONTRACTOR_WEBHOOKS_ENABLED="false",
            CONTRACTOR_METRICS_TOKEN="a-metrics-token-for-prometheus",
        )
        foreman_env = clean_env(
            **common,
            CONTRACTOR_FOREMAN_IDLE_SECONDS="0.2",
            CONTRACTOR_FOREMAN_METRICS_PORT="0",
            CONTRACTOR_METRICS_ALLOW_NETWORKS='["127.0.0.0/8"]',
        )
        with (
            contractor_serve(serve_env, tmp_path) as base,
            foreman_process(foreman_env, tmp_path) as foreman_metrics,
        ):
            config = write_config(
                tmp_path,
                url=base,
                token=sub_token,
                site=site,
                modules={"simulated": {"concurrency": 2, "delay_scale": 0}},
                journal=tmp_path / "journal",
                wait=1,
            )
            with subcontractor(config, tmp_path, "--metrics-port", "0") as agent:
                agent_metrics = announced(agent.log, r"metrics on (http://\S+/metrics)")
                serve_metrics = f"{base}/metrics"
                token = "a-metrics-token-for-prometheus"
                before = scrape(serve_metrics, token), scrape(foreman_metrics)
                for number, foundation in enumerate((stack.foundation, second), start=1):
                    async with transaction(create_session_factory(engine)) as session:
                        target = await session.get_one(Foundation, foundation.id)
                        job = await jobs.create_job(
                            session, target=target, script_name="create", creator="alice"
                        )
                    await _wait_done(engine, job.id)
                    # an API token of any role reads them too
                    served, stepped = scrape(serve_metrics, api_token), scrape(foreman_metrics)
                    agent_side = scrape(agent_metrics)
                    _served_moved(before[0], served, site, number)
                    _foreman_moved(before[1], stepped, number)
                    assert value(agent_side, "subcontractor_tasks_total") == 3 * number
                    assert value(agent_side, "subcontractor_answers_total", kind="result") == (
                        3 * number
                    )
                    assert value(
                        agent_side, "subcontractor_task_duration_seconds_count", module="simulated"
                    ) == (3 * number)
                    assert value(agent_side, "subcontractor_slots", module="simulated") == 2
                _bad_scrapes(base, foreman_metrics, agent_metrics)
                assert sub_token not in agent.output()
    finally:
        await engine.dispose()


def _served_moved(before: dict, after: dict, site: str, jobs_done: int) -> None:  # type: ignore[type-arg]
    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    tasks = 3 * jobs_done
    assert moved("contractor_tasks_leased_total", site=site, module="simulated") == tasks
    assert moved("contractor_task_answers_total", kind="result", outcome="accepted") == tasks
    assert moved(
        "contractor_http_requests_total",
        method="POST",
        route="/api/v1/subcontractor/result",
        status="200",
    ) == (tasks)
    # the last result of each job finishes it (no next task)
    assert moved("contractor_task_result_to_next_task_seconds_count") == 2 * jobs_done
    assert moved("contractor_jobs_finished_total", state="done") == jobs_done
    assert value(after, "contractor_jobs", site=site, state="done") == jobs_done
    assert value(after, "contractor_tasks", site=site, module="simulated") == 0
    assert value(after, "contractor_metrics_database_up") == 1
    assert value(after, "contractor_db_checkouts_total") > value(
        before, "contractor_db_checkouts_total"
    )
    assert value(after, "contractor_events_cursor") > value(before, "contractor_events_cursor")


def _foreman_moved(before: dict, after: dict, jobs_done: int) -> None:  # type: ignore[type-arg]
    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("contractor_jobs_started_total") == jobs_done
    assert moved("contractor_tasks_created_total") == jobs_done  # each job's first task
    assert value(after, "contractor_http_requests_total") == 0  # it serves no API


def _bad_scrapes(base: str, foreman_metrics: str, agent_metrics: str) -> None:
    missing = httpx.get(f"{base}/metrics")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "metrics_allow_networks" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "invalid metrics token"
    revoked_shape = httpx.get(
        f"{base}/metrics",
        headers={"Authorization": "Bearer ctr_0123456789abcdef.nope-nope-nope-nope"},
    )
    assert revoked_shape.status_code == 401
    unknown = httpx.get(f"{base}/metrics/jobs")
    assert unknown.status_code == 404
    assert "they are at /metrics" in unknown.json()["error"]["message"]
    elsewhere = httpx.get(foreman_metrics.replace("/metrics", "/graphql"))
    assert elsewhere.status_code == 404
    assert "/metrics, /readyz and /healthz" in elsewhere.json()["error"]["message"]
    assert httpx.get(foreman_metrics.replace("/metrics", "/readyz")).json()["status"] == "ready"
    agent_unknown = httpx.get(agent_metrics + "/x")
    assert agent_unknown.status_code == 404
    assert "/metrics" in agent_unknown.text


def test_serve_workers_add_up_and_leave_no_directory(url: str, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_env(
        CONTRACTOR_DATABASE_URL=url,
        CONTRACTOR_METRICS_ALLOW_NETWORKS='["127.0.0.1/32"]',
        TMPDIR=str(scratch),
    )
    log = tmp_path / "serve.log"
    workers = ["--workers", "2"]
    with contractor_serve(
        env, tmp_path, WAIT, log, serve_options=workers, stops_cleanly=True
    ) as base:
        assert [p.name[:19] for p in scratch.iterdir()] == ["contractor-metrics-"]
        for _ in range(40):  # new connections: the two workers share them
            httpx.get(f"{base}/healthz", timeout=10)
        samples = parse(httpx.get(f"{base}/metrics", timeout=10).text)
        assert value(samples, "contractor_http_requests_total", route="/healthz") >= 40
    assert list(scratch.iterdir()) == []
