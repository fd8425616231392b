"""The Prometheus metrics of a Contractor process (``docs/operations.md`` lists each one).

Two kinds:

* **Instruments** (counters, histograms, the pool gauge) that the code records into as things
  happen: requests, job transitions, leases, answers, webhook attempts, DNS pushes.
  ``instruments()`` is the process's one set. That is the only process-wide object in
  Contractor, and on purpose: prometheus_client keeps a metric's value per process (under
  ``contractor serve --workers N`` in files of ``PROMETHEUS_MULTIPROC_DIR``, which the
  scraped worker adds up), so two sets in one process would only split what it counts.
  ``metrics_enabled=false`` turns the recording off (what the benchmark compares).
* **The database's view** (``Snapshot``): jobs by site and state, the task queue, the outbox,
  webhook backlogs, DNS zones. Read at scrape time by ``contractor.services.observability``,
  cached for ``metrics_cache_seconds``, and turned into gauges here (``snapshot_families``).

Labels are bounded: routes are templates (``/config/{uuid}``, never the path itself),
GraphQL operations are the schema's root fields and the operation names an operator lists
(``metrics_graphql_operations``; any other name is ``other``), webhook targets are their
names, never their URLs. Nothing here holds a secret.

This module imports nothing of Contractor, so every layer may record into it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from contractor.models.foreman import JobState

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_ENV",
    "OTHER",
    "UNMATCHED",
    "Instruments",
    "Snapshot",
    "exposition",
    "instruments",
    "snapshot_families",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"  # a GraphQL operation name nobody listed
UNMATCHED = "unmatched"  # a path no route answers (404s: their paths are anyone's text)

# Seconds: a task API call or a GraphQL query takes milliseconds; a long-poll up to a minute.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Instruments:
    """The metrics recorded as things happen (see the module docstring)."""

    def __init__(self) -> None:
        self.enabled = True
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only double what a scrape reads
        registry = self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, registry=registry)

        def histogram(name: str, documentation: str, *labels: str) -> Histogram:
            return Histogram(name, documentation, labels, buckets=_LATENCY, registry=registry)

        self.http_requests = counter(
            "contractor_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            "method",
            "route",
            "status",
        )
        self.http_duration = histogram(
            "contractor_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            "method",
            "route",
        )
        self.graphql_operations = counter(
            "contractor_graphql_operations",
            "GraphQL operations run, by type, root field, listed operation name and outcome.",
            "type",
            "field",
            "operation",
            "outcome",
        )
        self.graphql_duration = histogram(
            "contractor_graphql_operation_duration_seconds",
            "Time to run a GraphQL operation, by type and root field.",
            "type",
            "field",
        )
        self.jobs_started = counter(
            "contractor_jobs_started",
            "Jobs that started running.",
        )
        self.jobs_finished = counter(
            "contractor_jobs_finished",
            "Jobs that finished, by final state (done, aborted).",
            "state",
        )
        self.jobs_errors = counter(
            "contractor_jobs_errors",
            "Jobs that stopped in the error state (an operator resumes or aborts them).",
        )
        self.tasks_created = counter(
            "contractor_tasks_created",
            "Remote tasks made by job steps.",
        )
        self.tasks_leased = counter(
            "contractor_tasks_leased",
            "Tasks handed to subcontractors, by site, module and whether it is a re-lease "
            "(attempt > 1: after an expired lease or a retryable error).",
            "site",
            "module",
            "attempt",
        )
        self.task_answers = counter(
            "contractor_task_answers",
            "Subcontractor answers, by kind (result, error, heartbeat) and outcome "
            "(accepted, stale, refused).",
            "kind",
            "outcome",
        )
        self.result_to_next_task = histogram(
            "contractor_task_result_to_next_task_seconds",
            "From a task's result arriving to the job's next task existing (taken and "
            "stepped in one transaction).",
        )
        self.webhook_deliveries = counter(
            "contractor_webhook_deliveries",
            "Webhook delivery attempts, by target name and outcome (delivered, http_error, "
            "unreachable).",
            "target",
            "outcome",
        )
        self.dns_pushes = counter(
            "contractor_dns_pushes",
            "RFC 2136 pushes to the DNS server, by outcome (acknowledged, failed).",
            "outcome",
        )
        self.discovery_reports = counter(
            "contractor_discovery_reports",
            "Discovery reports from boot services, by outcome (located, matched, unmatched: "
            "recorded; throttled: refused by a flood bound).",
            "outcome",
        )
        self.dhcp_leases = counter(
            "contractor_dhcp_leases_reported",
            "DHCP leases reported by subcontractors' boot services, by outcome (added, updated).",
            "outcome",
        )
        self.db_connections = Gauge(
            "contractor_db_connections_in_use",
            "Database connections checked out of the pool now (all server processes).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_checkouts = counter(
            "contractor_db_checkouts",
            "Connections taken from the pool (rate: transactions per second).",
        )

    # -- recording (each a no-op with metrics_enabled=false) ------------------------------

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        if not self.enabled:
            return
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:  # the label sets are bounded, so this cache is too
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def graphql(self, kind: str, root: str, operation: str, outcome: str, seconds: float) -> None:
        if self.enabled:
            self.graphql_operations.labels(kind, root, operation, outcome).inc()
            self.graphql_duration.labels(kind, root).observe(seconds)

    def job_transition(self, before: str, after: str) -> None:
        if not self.enabled or before == after:
            return
        if after == JobState.QUEUED and before == JobState.WAITING:
            self.jobs_started.inc()
        elif after in (JobState.DONE, JobState.ABORTED):
            self.jobs_finished.labels(str(after)).inc()
        elif after == JobState.ERROR:
            self.jobs_errors.inc()

    def task_created(self) -> None:
        if self.enabled:
            self.tasks_created.inc()

    def leased(self, site: str, module: str, attempts: Iterable[int]) -> None:
        if self.enabled:
            for attempt in attempts:
                self.tasks_leased.labels(site, module, "first" if attempt <= 1 else "retry").inc()

    def next_task(self, seconds: float) -> None:
        if self.enabled:
            self.result_to_next_task.observe(seconds)

    def webhook(self, target: str, outcome: str) -> None:
        if self.enabled:
            self.webhook_deliveries.labels(target, outcome).inc()

    def dns_push(self, outcome: str) -> None:
        if self.enabled:
            self.dns_pushes.labels(outcome).inc()

    def discovery(self, outcome: str) -> None:
        if self.enabled:
            self.discovery_reports.labels(outcome).inc()

    def leases(self, added: int, updated: int) -> None:
        if self.enabled:
            self.dhcp_leases.labels("added").inc(added)
            self.dhcp_leases.labels("updated").inc(updated)

    def answer(self, kind: str, outcome: str) -> None:
        if self.enabled:
            self.task_answers.labels(kind, outcome).inc()


_instruments: list[Instruments] = []


def instruments() -> Instruments:
    """The process's instruments, made on first use (after ``PROMETHEUS_MULTIPROC_DIR`` is
    set, for a worker of ``serve --workers``)."""
    if not _instruments:
        _instruments.append(Instruments())
    return _instruments[0]


@dataclass
class Snapshot:
    """What the database says, as the gauges show it (``services.observability`` reads it).
    ``database_up`` is False when it could not be read; the rest is empty then."""

    database_up: bool = True
    read_seconds: float = 0.0
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (site, state)
    tasks: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (site, module, state)
    events_cursor: int = 0
    outbox_lag: dict[str, float] = field(default_factory=dict)  # reader -> seconds
    webhook_backlog: dict[str, int] = field(default_factory=dict)  # target name -> pending
    webhook_oldest: dict[str, float] = field(default_factory=dict)  # target name -> seconds
    dns_zones: dict[str, str] = field(default_factory=dict)  # zone -> push state


def _gauge(name: str, documentation: str, labels: list[str], values: dict[Any, Any]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def snapshot_families(snapshot: Snapshot) -> Iterator[Metric]:
    """The gauges of a ``Snapshot``."""
    yield _gauge(
        "contractor_metrics_database_up",
        "1 when this scrape could read the database's gauges, else 0.",
        [],
        {(): 1 if snapshot.database_up else 0},
    )
    if not snapshot.database_up:
        return
    yield _gauge(
        "contractor_metrics_database_read_seconds",
        "How long reading the database's gauges took (cached between scrapes).",
        [],
        {(): snapshot.read_seconds},
    )
    yield _gauge("contractor_jobs", "Jobs by site and state.", ["site", "state"], snapshot.jobs)
    yield _gauge(
        "contractor_tasks",
        "Unfinished tasks by site, module and state: ready (waiting for a poll), backoff "
        "(after a retryable error), leased (a subcontractor holds it), expired (leased, its "
        "lease ran out unanswered, not yet leased again).",
        ["site", "module", "state"],
        snapshot.tasks,
    )
    yield _gauge(
        "contractor_events_cursor",
        "The newest event's id (rate: events written per second, by every process).",
        [],
        {(): snapshot.events_cursor},
    )
    yield _gauge(
        "contractor_outbox_lag_seconds",
        "Age of the oldest event a reader (webhooks, dns) has not handled yet (0: none).",
        ["reader"],
        snapshot.outbox_lag,
    )
    yield _gauge(
        "contractor_webhook_backlog",
        "Pending webhook deliveries, by target name.",
        ["target"],
        snapshot.webhook_backlog,
    )
    yield _gauge(
        "contractor_webhook_oldest_pending_seconds",
        "Age of the oldest pending webhook delivery, by target name.",
        ["target"],
        snapshot.webhook_oldest,
    )
    states: dict[str, int] = dict.fromkeys(("current", "pending", "failing", "invalid"), 0)
    for state in snapshot.dns_zones.values():
        states[state] = states.get(state, 0) + 1
    yield _gauge(
        "contractor_dns_zones", "Zones published by updates, by push state.", ["state"], states
    )
    yield _gauge(
        "contractor_dns_zone_problem",
        "1 for each zone whose pushes fail (failing) or that cannot be generated (invalid).",
        ["zone", "state"],
        {
            (zone, state): 1
            for zone, state in snapshot.dns_zones.items()
            if state in ("failing", "invalid")
        },
    )


class _Families:
    """Metric families as a collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class _Together:
    def __init__(self, collectors: list[Collector]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(extra: Iterable[Metric] = ()) -> bytes:
    """The text format of this process's instruments (of every worker's, under ``serve
    --workers``) and of ``extra`` (a snapshot's gauges)."""
    collectors: list[Collector] = []
    if os.environ.get(MULTIPROCESS_ENV):
        collectors.append(MultiProcessCollector(None))  # type: ignore[no-untyped-call]
    else:
        collectors.append(instruments().registry)
    collectors.append(_Families(extra))
    return generate_latest(_Together(collectors))


def watch_pool(engine: Any) -> None:
    """Count ``engine``'s pool checkouts and the connections in use (an ``AsyncEngine``)."""
    from sqlalchemy import event

    meters = instruments()
    pool_engine = engine.sync_engine

    @event.listens_for(pool_engine, "checkout")
    def _out(*_: Any) -> None:
        if meters.enabled:
            meters.db_checkouts.inc()
            meters.db_connections.inc()

    @event.listens_for(pool_engine, "checkin")
    def _in(*_: Any) -> None:
        if meters.enabled:
            meters.db_connections.dec()
