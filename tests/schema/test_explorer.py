"""The explorer page works in a real browser with no internet: headless Chromium against a
real `contractor serve`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from contractor.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`contractor serve` on a fresh SQLite file; (base URL, an admin token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    env["CONTRACTOR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'explorer.sqlite3'}"
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    added = runner.invoke(
        main, ["user", "add", "eve", "--role", "admin"], env=env, input="password1\n"
    )
    assert added.exit_code == 0, added.output
    made = runner.invoke(main, ["token", "create", "eve"], env=env)
    token = made.output.strip().splitlines()[-1]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not start in time"
                time.sleep(0.1)
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=15)


def _dump_dom(url: str) -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/test installs it)")
        pytest.skip("chromium is not installed")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=8000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_explorer_runs_a_query_offline(served: tuple[str, str]) -> None:
    base, token = served
    page = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "https://" not in page.text  # nothing is fetched from the internet
    dom = _dump_dom(f"{base}/graphql#token={token}&run")
    assert "connected to 127.0.0.1" in dom
    assert '"totalCount": 0' in dom  # the default query ran with the token
    assert "FoundationConnection" in dom  # the schema browser loaded through introspection
