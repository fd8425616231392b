"""The real `contractor serve` and `contractor foreman` processes: ``--port 0`` announces the
port the kernel chose, and a clean stop on SIGTERM or SIGINT exits 0."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.serving import clean_env

TIMEOUT = 60


@contextmanager
def started(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``contractor ARGS`` running in ``cwd``; yields it and the stderr lines read so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "contractor", *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


def read_until(process: subprocess.Popen[str], lines: list[str], pattern: str) -> re.Match[str]:
    """Read stderr lines until one matches ``pattern``."""
    assert process.stderr is not None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        assert line, "exited before it said so:\n" + "".join(lines)
        lines.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    pytest.fail("it did not say so in time:\n" + "".join(lines))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_announces_the_bound_port_and_exits_0_when_stopped(
    tmp_path: Path, stop: signal.Signals
) -> None:
    with started(tmp_path, "serve", "--port", "0") as (process, lines):
        found = read_until(process, lines, r"^contractor serving on (http://127\.0\.0\.1:(\d+))$")
        assert int(found[2]) != 0
        health = httpx.get(f"{found[1]}/healthz", timeout=10, trust_env=False)
        assert health.json() == {"status": "ok", "database": "ok"}
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0, "".join(lines)
    assert not any("Uvicorn running on" in line for line in lines)  # no second, wrong address


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_foreman_exits_0_when_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    with started(tmp_path, "foreman") as (process, lines):
        read_until(process, lines, r"^contractor foreman: stepping jobs")
        assert (tmp_path / "contractor.sqlite3").exists()  # made ready as serve does
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0, "".join(lines)


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1 port {port}: Address already in use"
    ]
    assert list(tmp_path.iterdir()) == []  # refused before the database was made
