"""The agent's metrics server: what a scrape reads, a scrape while the agent stops, unknown
paths, and a metrics port that is taken (the agent refuses to start, naming the key)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from click.testing import CliRunner

from subcontractor.agent import Agent
from subcontractor.cli import main
from subcontractor.config import Config, load
from subcontractor.journal import Journal
from subcontractor.masking import Masker
from subcontractor.metrics import AgentMetrics
from subcontractor.module import load_modules
from tests.metrics_scrape import parse, value

TOKEN = "sct_0123456789abcdef.secret-secret-secret"


def _config(tmp_path: Path, port: int) -> Config:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return load(
        overrides={
            "contractor.url": "http://127.0.0.1:9",
            "contractor.site": "dc1",
            "contractor.token_file": token,
            "agent.journal_dir": tmp_path / "journal",
            "agent.metrics_port": port,
        },
        module_flags=("simulated=3",),
        environ={},
    )


def _agent(config: Config, tmp_path: Path) -> Agent:
    modules = load_modules({"simulated": 3}, config.module_options)
    return Agent(config, modules, None, Journal(tmp_path / "journal"), Masker())  # type: ignore[arg-type]


def test_a_scrape_reads_the_agent_and_answers_clearly(tmp_path: Path) -> None:
    config = _config(tmp_path, 0)
    meters = AgentMetrics(config)
    address = meters.listen()
    assert address is not None
    assert address.startswith("http://127.0.0.1:")
    agent = _agent(config, tmp_path)
    agent.counts.update(tasks=5, results=4, errors=1)
    meters.on_event("started", {"task_id": 1, "function": "simulated.set_power"})
    meters.on_event("answered", {"task_id": 1, "kind": "result"})
    with meters.serving(agent):
        samples = parse(httpx.get(address).text)
        assert value(samples, "subcontractor_tasks_total") == 5
        assert value(samples, "subcontractor_answers_total", kind="error") == 1
        assert value(samples, "subcontractor_slots", module="simulated") == 3
        assert value(samples, "subcontractor_tasks_running", module="simulated") == 0
        assert value(samples, "subcontractor_task_duration_seconds_count", kind="result") == 1
        assert TOKEN.partition(".")[2] not in httpx.get(address).text
        unknown = httpx.get(address.replace("/metrics", "/status"))
        assert unknown.status_code == 404
        assert unknown.text == "nothing at /status: the metrics are at /metrics\n"
        assert httpx.post(address).status_code == 405
        agent.stopping.set()  # what SIGTERM does first
        stopping = httpx.get(address)
        assert stopping.status_code == 503
        assert stopping.text == "the subcontractor is shutting down\n"
    # stopped with the agent: nothing listens any more
    try:
        httpx.get(address, timeout=2)
        raise AssertionError("the metrics server still answers")
    except httpx.TransportError:
        pass


def test_no_port_no_server(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    config = load(
        overrides={
            "contractor.url": "http://127.0.0.1:9",
            "contractor.site": "dc1",
            "contractor.token_file": token,
        },
        module_flags=("simulated",),
        environ={},
    )
    assert config.agent.metrics_port is None
    assert AgentMetrics(config).listen() is None


def test_a_taken_metrics_port_is_refused_naming_the_key(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            [
                "run",
                "--url",
                "http://127.0.0.1:9",
                "--site",
                "dc1",
                "--token-file",
                str(token),
                "--module",
                "simulated",
                "--journal-dir",
                str(tmp_path / "journal"),
                "--metrics-port",
                str(port),
            ],
        )
    assert result.exit_code == 1
    assert (
        f"agent.metrics_port (flag --metrics-port): cannot listen on 127.0.0.1 port {port}"
        in result.output
    )
