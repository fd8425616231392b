"""The agent's Prometheus metrics, served on ``agent.metrics_port`` when one is set.

Read from the agent as it is at scrape time (nothing on its hot path records anything but
a task's start and end time): tasks taken, answers delivered and dropped, tasks running and
slots per module, answers waiting to be sent, and how long tasks ran by module and
outcome. Labels are the modules this agent serves, configured locally; nothing here holds a
parameter, a token or an address of a machine it drives.

The server is a small threaded WSGI server: ``GET /metrics`` answers the text format; while
the agent is stopping it answers 503; any other path 404 naming ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from subcontractor.config import Config

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from subcontractor.agent import Agent

__all__ = ["AgentMetrics"]

log = logging.getLogger("subcontractor")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATION = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the agent's exit


class AgentMetrics:
    """The metrics of one agent, and their server (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.agent: Agent | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.duration = Histogram(
            "subcontractor_task_duration_seconds",
            "How long tasks ran, from taken to answered, by module and answer (result, error).",
            ["module", "kind"],
            buckets=_DURATION,
            registry=self.registry,
        )
        self.registry.register(self)
        self._started: dict[int, tuple[str, float]] = {}
        self._server: WSGIServer | None = None

    # -- what the agent tells ----------------------------------------------------------

    def on_event(self, name: str, details: dict[str, Any]) -> None:
        task_id = details.get("task_id")
        if not isinstance(task_id, int):
            return
        if name == "started":
            module = str(details.get("function", "")).partition(".")[0]
            self._started[task_id] = (module, time.monotonic())
        elif name == "answered":
            begun = self._started.pop(task_id, None)
            if begun is not None and begun[0] in self.config.modules:
                kind = "result" if details.get("kind") == "result" else "error"
                self.duration.labels(begun[0], kind).observe(time.monotonic() - begun[1])

    def collect(self) -> Iterable[Metric]:
        agent = self.agent
        if agent is None:
            return []
        counts = dict(agent.counts)
        taken = CounterMetricFamily(
            "subcontractor_tasks", "Tasks taken from Contractor.", labels=[]
        )
        taken.add_metric([], counts["tasks"])
        answers = CounterMetricFamily(
            "subcontractor_answers",
            "Answers Contractor took (result, error) or refused (dropped).",
            labels=["kind"],
        )
        for kind, key in (("result", "results"), ("error", "errors"), ("dropped", "dropped")):
            answers.add_metric([kind], counts[key])
        running = GaugeMetricFamily(
            "subcontractor_tasks_running", "Tasks running now, by module.", labels=["module"]
        )
        slots = GaugeMetricFamily(
            "subcontractor_slots", "Tasks a module may run at once.", labels=["module"]
        )
        for module, slot in sorted(agent.slots.items()):
            running.add_metric([module], slot.used)
            slots.add_metric([module], slot.size)
        unsent = GaugeMetricFamily(
            "subcontractor_answers_unsent",
            "Answers kept in the journal, not yet taken by Contractor.",
            labels=[],
        )
        unsent.add_metric([], len(agent.unsent))
        return [taken, answers, running, slots, unsent]

    # -- serving -----------------------------------------------------------------------

    def listen(self) -> str | None:
        """Bind the metrics port, when one is configured (OSError: why not); its URL."""
        port = self.config.agent.metrics_port
        if port is None:
            return None
        host = self.config.agent.metrics_host
        self._server = make_server(
            host, port, self._app, server_class=_Threading, handler_class=_Quiet
        )
        bound = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{bound}/metrics"

    @contextmanager
    def serving(self, agent: Agent) -> Iterator[None]:
        """Serve the metrics of ``agent`` while inside (nothing without a port)."""
        self.agent = agent
        server = self._server
        if server is None:
            yield
            return
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"nothing at {path}: the metrics are at /metrics\n".encode()]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b"/metrics answers GET\n"]
        if self.agent is not None and self.agent.stopping.is_set():
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5")],
            )
            return [b"the subcontractor is shutting down\n"]
        body = generate_latest(self.registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
        return [body]
