"""``/metrics`` and ``/readyz`` of a real app over loopback HTTP: who may scrape, what a
scrape during shutdown gets, bounded GraphQL labels, readiness by component (migrations
pending, a stalled foreman loop, a webhook worker behind, an unreachable database)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Event, WebhookTarget
from contractor.monitoring import READ_TIMEOUT, Monitor, monitor_app
from contractor.rest.state import app_state
from contractor.services import webhooks
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.conftest import test_settings as settings_for
from tests.metrics_scrape import parse, value
from tests.serving import serving_in_thread

LOOPBACK = ["127.0.0.1/32"]


@contextmanager
def served(url: str, **overrides: Any) -> Iterator[tuple[str, Any]]:
    app = create_app(settings_for(url, **overrides))
    with serving_in_thread(app) as base:
        yield base, app


def test_scrapes_without_a_token_only_from_allowed_networks(sqlite_url: str) -> None:
    with served(sqlite_url, metrics_allow_networks=LOOPBACK) as (base, _):
        assert httpx.get(f"{base}/metrics").status_code == 200
    with served(sqlite_url, metrics_allow_networks=["10.0.0.0/8"]) as (base, _):
        refused = httpx.get(f"{base}/metrics")
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert error["code"] == "UNAUTHORIZED"
        assert error["request_id"] == refused.headers["x-request-id"]
        malformed = httpx.get(f"{base}/metrics", headers={"Authorization": "Basic abc"})
        assert malformed.status_code == 401
        assert "Bearer <token>" in malformed.json()["error"]["message"]


def test_the_metrics_token_and_nothing_secret_in_the_output(sqlite_url: str) -> None:
    token = "metrics-token-0123456789"
    with served(sqlite_url, metrics_token=token, dns_tsig_secret="c2VjcmV0LXRzaWc=") as (base, _):
        answer = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert token not in answer.text
        assert "c2VjcmV0LXRzaWc=" not in answer.text
        assert "sqlite" not in answer.text  # no database URL either
        samples = parse(answer.text)
        assert value(samples, "contractor_metrics_database_up") == 1
        # a second scrape sees the first one
        again = parse(
            httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}).text
        )
        assert value(again, "contractor_http_requests_total", route="/metrics", status="200") >= 1


def test_a_scrape_during_shutdown_is_answered_at_once(sqlite_url: str) -> None:
    with served(sqlite_url, metrics_allow_networks=LOOPBACK) as (base, app):
        app_state(app).hub.drain()  # what SIGTERM does first
        started = time.monotonic()
        answer = httpx.get(f"{base}/metrics")
        assert time.monotonic() - started < 2
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "SHUTTING_DOWN"
        assert answer.headers["retry-after"] == "5"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert "shutdown: shutting down" in ready.json()["reasons"]


def test_unknown_metrics_paths_and_methods(sqlite_url: str) -> None:
    with served(sqlite_url, metrics_allow_networks=LOOPBACK) as (base, _):
        for path in ("/metrics/", "/metrics/jobs", "/metrics/../x"):
            answer = httpx.get(f"{base}{path}")
            assert answer.status_code == 404, path
        answer = httpx.get(f"{base}/metrics/jobs")
        assert answer.json()["error"]["message"] == (
            "no metrics at /metrics/jobs: they are at /metrics (GET)"
        )
        assert httpx.post(f"{base}/metrics").status_code == 405


def test_graphql_labels_are_the_schemas_and_the_listed_names(sqlite_url: str) -> None:
    with served(
        sqlite_url, metrics_allow_networks=LOOPBACK, metrics_graphql_operations=["Dashboard"]
    ) as (base, _):
        before = parse(httpx.get(f"{base}/metrics").text)
        for document, name in (
            ("query Dashboard { sites { edges { node { name } } } }", "Dashboard"),
            ("query DropTablesNow { sites { edges { node { name } } } }", "DropTablesNow"),
            ("{ noSuchFieldFromAClient }", None),
            ("this is not graphql", None),
        ):
            httpx.post(f"{base}/graphql", json={"query": document, "operationName": name})
        httpx.request("PROPFIND", f"{base}/graphql")
        httpx.get(f"{base}/no/such/path/from/a/client")
        text = httpx.get(f"{base}/metrics").text
    after = parse(text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    operations = "contractor_graphql_operations_total"
    assert moved(operations, operation="Dashboard", field="sites", type="query") == 1
    assert moved(operations, operation="other", field="sites") == 1
    assert moved(operations, field="invalid", outcome="error") == 2
    assert moved("contractor_http_requests_total", method="other", route="/graphql") == 1
    assert moved("contractor_http_requests_total", route="unmatched", status="404") == 1
    for free_text in ("DropTablesNow", "noSuchFieldFromAClient", "PROPFIND", "/no/such"):
        assert free_text not in text


def test_a_bad_allowed_network_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"'10\.0\.0\.300/8' is not a network"):
        Settings(metrics_allow_networks=["10.0.0.300/8"])


@pytest.mark.postgres
def test_readyz_names_pending_migrations() -> None:
    url = Settings(database_url=make_pg_database("contractor_ready")).database_url
    migrate.upgrade(Settings(database_url=url), "0008")
    with served(url) as (base, _):
        answer = httpx.get(f"{base}/readyz")
        assert httpx.get(f"{base}/healthz").status_code == 200  # alive all the same
    assert answer.status_code == 503
    body = answer.json()
    migrations = body["components"]["migrations"]
    assert migrations["ready"] is False
    assert migrations["current"] == ["0008"]
    assert migrations["head"] != ["0008"]
    assert body["reasons"] == ["migrations: migrations pending: run `contractor db upgrade`"]


def test_readyz_names_a_stalled_foreman_loop(sqlite_url: str) -> None:
    # nothing due and nothing waking it: the loop sleeps for a minute, longer than allowed
    with served(
        sqlite_url,
        foreman_enabled=True,
        foreman_idle_seconds=60,
        ready_foreman_stall_seconds=0.5,
        webhooks_enabled=False,
    ) as (base, _):
        assert httpx.get(f"{base}/readyz").json()["components"]["foreman"]["ready"]
        time.sleep(1.0)
        answer = httpx.get(f"{base}/readyz")
    assert answer.status_code == 503
    reason = answer.json()["components"]["foreman"]["reason"]
    assert reason.startswith("foreman loop stalled: no round for ")
    assert reason.endswith("(limit 0.5s)")


async def test_readyz_names_a_webhook_worker_behind(sqlite_url: str) -> None:
    settings = settings_for(sqlite_url, ready_webhook_lag_seconds=60)
    engine = create_engine(settings)
    sessions = create_session_factory(engine, writes=True)
    try:
        async with transaction(sessions) as session:
            target = await webhooks.create_target(
                session, name="ready-behind", url="http://192.0.2.1/hook"
            )
            old = Event(
                at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                kind="created",
                object_type="site",
                object_id=1,
            )
            session.add(old)
            await session.flush()
            target.cursor = old.id - 1
        monitor = Monitor(
            settings,
            engine=engine,
            sessions=create_session_factory(engine),
            writer_sessions=sessions,
            stopping=lambda: False,
        )
        with serving_in_thread(monitor_app(monitor)) as base:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"{base}/readyz")
        assert answer.status_code == 503
        webhook = answer.json()["components"]["webhooks"]
        assert webhook["reason"].startswith("webhook worker behind: an event waits ")
        assert webhook["lag_seconds"] > 3500
    finally:
        async with transaction(sessions) as session:
            row = await session.get_one(WebhookTarget, target.id)
            await session.delete(row)
        await engine.dispose()


def test_an_unreachable_database_never_holds_a_scrape(free_tcp_port: int) -> None:
    settings = Settings(
        database_url=f"postgresql://nobody@127.0.0.1:{free_tcp_port}/none",
        metrics_allow_networks=LOOPBACK,
        foreman_enabled=False,
        webhooks_enabled=False,
    )
    engine = create_engine(settings)
    monitor = Monitor(
        settings,
        engine=engine,
        sessions=create_session_factory(engine),
        writer_sessions=create_session_factory(engine, writes=True),
        stopping=lambda: False,
    )
    with serving_in_thread(monitor_app(monitor)) as base:
        started = time.monotonic()
        scraped = httpx.get(f"{base}/metrics", timeout=READ_TIMEOUT * 3)
        ready = httpx.get(f"{base}/readyz", timeout=READ_TIMEOUT * 3)
        assert time.monotonic() - started < READ_TIMEOUT * 2 + 2
    assert scraped.status_code == 200
    assert value(parse(scraped.text), "contractor_metrics_database_up") == 0
    assert ready.status_code == 503
    assert ready.json()["components"]["database"] == {
        "ready": False,
        "reason": "unreachable (the log says why)",
    }
    assert str(free_tcp_port) not in ready.text
