"""The metrics as exported: every series the Grafana dashboard and the example alerts query
exists, every exported metric is documented, and the counters' rules (a job's transitions
counted at commit, never on rollback; recording off)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.core import Metric

from contractor import metrics
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import JobState
from contractor.services import jobs
from contractor.settings import Settings
from subcontractor.agent import Agent
from subcontractor.config import load
from subcontractor.journal import Journal
from subcontractor.masking import Masker
from subcontractor.metrics import AgentMetrics
from tests.foreman.inventory import make_job_stack

DOCS = Path(__file__).resolve().parents[1] / "docs"
_SERIES = re.compile(r"\b((?:contractor|subcontractor)_[a-z_]+)\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _families(tmp_path: Path) -> list[Metric]:
    found = list(metrics.instruments().registry.collect())
    found += metrics.snapshot_families(metrics.Snapshot())
    token = tmp_path / "token"
    token.write_text("sct_0123456789abcdef.secret-secret-secret")
    config = load(
        overrides={
            "contractor.url": "http://127.0.0.1:9",
            "contractor.site": "dc1",
            "contractor.token_file": token,
            "agent.journal_dir": tmp_path / "journal",
        },
        module_flags=("simulated",),
        environ={},
    )
    agent_metrics = AgentMetrics(config)
    agent_metrics.agent = Agent(config, {}, None, Journal(tmp_path / "journal"), Masker())  # type: ignore[arg-type]
    found += agent_metrics.collect()
    found += agent_metrics.duration.collect()
    return found


def _exported(tmp_path: Path) -> dict[str, str]:
    """Every sample name a scrape can hold, with its family's name."""
    names: dict[str, str] = {}
    for family in _families(tmp_path):
        for suffix in _SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _alert_queries() -> list[str]:
    text = (DOCS / "operations.md").read_text()
    rules = text.split("### Alerts", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return [line.split("expr:", 1)[1] for line in rules.splitlines() if "expr:" in line]


def test_the_dashboard_and_the_alerts_query_exported_series(tmp_path: Path) -> None:
    exported = _exported(tmp_path)
    queries = _dashboard_queries() + _alert_queries()
    assert len(_alert_queries()) >= 5
    used = {name for query in queries for name in _SERIES.findall(query)}
    assert used, "no queries found"
    unknown = sorted(used - set(exported))
    assert unknown == [], f"queried but never exported: {unknown}"
    # and the dashboard shows every kind of thing the issue names
    for needed in (
        "contractor_jobs",
        "contractor_tasks",
        "contractor_outbox_lag_seconds",
        "contractor_webhook_backlog",
        "contractor_dns_zone_problem",
        "contractor_task_result_to_next_task_seconds_bucket",
        "subcontractor_tasks_running",
    ):
        assert needed in used, needed


def test_every_exported_metric_is_documented(tmp_path: Path) -> None:
    documented = (DOCS / "operations.md").read_text().split("### The metrics", 1)[1]
    table = documented.split("### Readiness", 1)[0]
    families = {family for family in _exported(tmp_path).values()}
    missing = sorted(
        family
        for family in families
        if f"`{family}`" not in table and f"`{family}_total`" not in table
    )
    assert missing == []


async def test_a_rolled_back_savepoint_drops_only_its_own_counts(sqlite_url: str) -> None:
    meters = metrics.instruments()
    engine = create_engine(Settings(database_url=sqlite_url))
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            stack = await make_job_stack(session)
            job = await jobs.create_job(
                session, target=stack.foundation, script_name="create", creator="alice"
            )
        errors, finished = meters.jobs_errors._value.get(), _finished(meters)
        async with transaction(create_session_factory(engine, writes=True)) as session:
            job = await jobs.lock_job(session, job.id)
            jobs.set_state(session, job, JobState.ERROR, actor="t", action="error", message="x")
            nested = await session.begin_nested()
            jobs.set_state(session, job, JobState.ABORTED, actor="t", action="aborted")
            await nested.rollback()
            assert meters.jobs_errors._value.get() == errors  # not committed yet
        assert meters.jobs_errors._value.get() == errors + 1
        assert _finished(meters) == finished
    finally:
        await engine.dispose()


def _finished(meters: metrics.Instruments) -> float:
    return float(meters.jobs_finished.labels("aborted")._value.get())


def test_recording_off_records_nothing() -> None:
    meters = metrics.instruments()
    before = meters.http_requests.labels("GET", "/off-test", "200")._value.get()
    meters.enabled = False
    try:
        meters.http("GET", "/off-test", 200, 0.1)
        meters.job_transition("waiting", "queued")
    finally:
        meters.enabled = True
    assert meters.http_requests.labels("GET", "/off-test", "200")._value.get() == before
    meters.http("GET", "/off-test", 200, 0.1)
    assert meters.http_requests.labels("GET", "/off-test", "200")._value.get() == before + 1
