"""The shell scripts around the suite: ``scripts/apt-get-waiting`` waits for another apt's
lock with the real apt-get (on lock and list directories of its own), and ``scripts/test``
uses it and shows the slowest tests."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.serving import CHECKOUT

WAITING = CHECKOUT / "scripts" / "apt-get-waiting"

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")


def apt_dirs(tmp_path: Path) -> list[str]:
    """Options that give apt-get update directories of its own and no sources: it takes the
    lists lock in ``tmp_path/lists`` and downloads nothing."""
    for part in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (tmp_path / part).mkdir(parents=True)
    return [
        "-o",
        f"Dir::State::Lists={tmp_path / 'lists'}",
        "-o",
        f"Dir::Cache={tmp_path / 'cache'}",
        "-o",
        "Dir::Etc::SourceList=/dev/null",
        "-o",
        f"Dir::Etc::SourceParts={tmp_path / 'sources.list.d'}",
    ]


@contextmanager
def held(lock: Path) -> Iterator[None]:
    """Hold ``lock`` as apt does (an fcntl write lock) until the block ends."""
    with lock.open("w") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def start(tmp_path: Path, *args: str, wait: str = "600") -> subprocess.Popen[str]:
    env = {**os.environ, "APT_LOCK_WAIT": wait, "APT_LOCK_POLL": "0.2", "LC_ALL": "C"}
    return subprocess.Popen(
        [str(WAITING), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_it_waits_for_the_lists_lock_then_runs(tmp_path: Path) -> None:
    options = apt_dirs(tmp_path)
    with held(tmp_path / "lists" / "lock"):
        process = start(tmp_path, "update", "-qq", *options)
        time.sleep(1.5)
        assert process.poll() is None, process.communicate()  # still waiting
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "another process holds the apt lock; waiting up to 600s" in err
    assert f"Could not get lock {tmp_path / 'lists' / 'lock'}" in err
    assert err.count("waiting up to") == 1  # said once, not at every retry
    assert "the apt lock is free again" in err


def test_it_gives_up_after_the_bound(tmp_path: Path) -> None:
    options = apt_dirs(tmp_path)
    with held(tmp_path / "lists" / "lock"):
        began = time.monotonic()
        process = start(tmp_path, "update", "-qq", *options, wait="1")
        _out, err = process.communicate(timeout=60)
        took = time.monotonic() - began
    assert process.returncode != 0
    assert "gave up after 1s: Could not get lock" in err
    assert took < 30


def test_other_failures_are_not_retried(tmp_path: Path) -> None:
    process = start(tmp_path, "no-such-operation")
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 100
    assert "Invalid operation no-such-operation" in err
    assert "waiting" not in err


def test_scripts_test_waits_for_apt_and_shows_the_slowest_tests() -> None:
    lines = [line.strip() for line in (CHECKOUT / "scripts" / "test").read_text().splitlines()]
    commands = [line.removeprefix("DEBIAN_FRONTEND=noninteractive ") for line in lines]
    assert "scripts/apt-get-waiting update -qq" in commands
    assert any(line.startswith("scripts/apt-get-waiting install ") for line in commands)
    assert not [line for line in commands if line.startswith("apt-get ")]
    assert [line for line in lines if line.startswith(".venv/bin/pytest")] == [
        '.venv/bin/pytest -n "${TEST_WORKERS:-3}" --dist loadgroup --durations=15 "$@"'
    ]
