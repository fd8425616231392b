"""Real processes for the end-to-end tests: `contractor serve` on a chosen port (so it can be
restarted where the agent expects it) and `subcontractor run` with a config file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from contractor.child_process import ChildDidNotStart, stop_child, wait_until_up
from tests.serving import clean_env


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def contractor_on(port: int, database_url: str, cwd: Path, **settings: str) -> Iterator[str]:
    env = clean_env(
        CONTRACTOR_DATABASE_URL=database_url,
        CONTRACTOR_FOREMAN_IDLE_SECONDS="0.2",
        CONTRACTOR_FOREMAN_WAITING_RECHECK_SECONDS="0.2",
        **settings,
    )
    log = (cwd / f"contractor-{port}-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(process, lambda: _answers(f"{base}/healthz"), seconds=30)
        except ChildDidNotStart:
            stop_child(process, signal.SIGKILL)
            pytest.fail(f"contractor serve did not come up:\n{Path(log.name).read_text()}")
        yield base
    finally:
        stop_child(process)
        log.close()


class Agent:
    """A `subcontractor run` process."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return stop_child(self.process, sig)


def write_config(
    directory: Path,
    *,
    url: str,
    token: str,
    site: str,
    modules: dict[str, dict[str, object]],
    journal: Path,
    wait: float = 2,
    grace: float = 10,
) -> Path:
    token_file = directory / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    lines = [
        "[contractor]",
        f'url = "{url}"',
        f'token_file = "{token_file}"',
        f'site = "{site}"',
        "",
        "[agent]",
        f"wait = {wait}",
        f'journal_dir = "{journal}"',
        f"shutdown_grace = {grace}",
        'log_level = "debug"',
    ]
    for name, options in modules.items():
        lines += ["", f"[modules.{name}]"]
        for key, value in options.items():
            lines.append(
                f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
            )
    path = directory / "subcontractor.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def subcontractor(config: Path, cwd: Path, *extra: str) -> Iterator[Agent]:
    env = clean_env(NO_PROXY="127.0.0.1,localhost")
    env.pop("SUBCONTRACTOR_TOKEN", None)
    log = cwd / f"subcontractor-{time.monotonic_ns()}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "subcontractor", "run", "--config", str(config), *extra],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    agent = Agent(process, log)
    try:
        yield agent
    finally:
        agent.stop()
