"""The explorer page works in a real browser with no internet: headless Chromium against a
real `contractor serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from contractor.cli import main
from tests.serving import clean_env, contractor_serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`contractor serve` on a fresh SQLite file; (base URL, an admin token)."""
    env = clean_env(CONTRACTOR_DATABASE_URL=f"sqlite:///{tmp_path / 'explorer.sqlite3'}")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    added = runner.invoke(
        main, ["user", "add", "eve", "--role", "admin"], env=env, input="password1\n"
    )
    assert added.exit_code == 0, added.output
    token = runner.invoke(main, ["token", "create", "eve"], env=env).output.strip().splitlines()[-1]
    with contractor_serve(env, tmp_path) as base:
        yield base, token


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
