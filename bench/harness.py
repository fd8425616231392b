"""What the benchmarks share: the figures they hand to ``bench/run_all.py``, the throwaway
PostgreSQL they run on, CPU time, and a `contractor serve` to measure against.

A figure is plain data (see bench/README.md for the convention): its samples, one per round,
the wall and CPU seconds of the work each sample measured, and, where the figure has one, its
floor measured in the same run, round by round, alternating with the figure.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contractor.child_process import free_port

ROOT = Path(__file__).resolve().parents[1]
PG_THROWAWAY = ROOT / "scripts" / "pg-throwaway"
# Set by run_all.py to a cluster it started: each benchmark gets a fresh database in it
# instead of a cluster of its own, copied from a database already migrated (TEMPLATE).
CLUSTER_ENV = "CONTRACTOR_BENCH_PG_URL"
TEMPLATE = "bench_template"


@dataclass
class Series:
    """Samples of one measured quantity, one per round, with the wall and CPU seconds the
    work of each sample took."""

    name: str
    samples: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, value: float, wall: float | None = None, cpu: float | None = None) -> None:
        """One round's sample, and the seconds its work took where they were measured."""
        self.samples.append(value)
        if wall is not None:
            self.wall_s.append(wall)
        if cpu is not None:
            self.cpu_s.append(cpu)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "samples": self.samples,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "note": self.note,
        }


@dataclass
class Figure(Series):
    """A benchmark figure: ``unit``, whether ``lower`` or ``higher`` is better, its floor
    (the same work without the layers under test) and the target, said as a ratio."""

    unit: str = "s"
    better: str = "lower"
    floor: Series | None = None
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update(
            unit=self.unit,
            better=self.better,
            target=self.target,
            floor=None if self.floor is None else self.floor.as_dict(),
        )
        return data


def cpu_seconds(pids: Sequence[int] = ()) -> float:
    """CPU seconds so far of this process, its children that have ended, and the live
    processes ``pids`` with their own children (a server the benchmark started)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime
    for pid in pids:
        total += process_tree_seconds(pid)
    return total


def process_tree_seconds(pid: int) -> float:
    """User and system CPU seconds of a live process and its live children (Linux)."""
    total = 0.0
    with contextlib.suppress(OSError):  # it ended meanwhile
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += process_tree_seconds(int(child))
    return total


class Clock:
    """Wall and CPU seconds of a block: ``with Clock(pids) as clock: ...; clock.wall``."""

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = pids
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds(self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = cpu_seconds(self.pids) - self._cpu


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_cluster() -> tuple[str, str]:
    """A throwaway PostgreSQL cluster: its URL and its directory (for ``stop_cluster``)."""
    out = subprocess.run(
        [str(PG_THROWAWAY), "start"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(line.split("=", 1) for line in out.split())
    return env["PG_URL"], env["PGBASE"]


def migrated_template(cluster: str) -> None:
    """The database ``postgres()`` copies in ``cluster``: empty, migrated to head."""
    import psycopg

    from contractor import migrate
    from contractor.settings import Settings

    with psycopg.connect(cluster, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate.upgrade(Settings(database_url=cluster.rsplit("/", 1)[0] + f"/{TEMPLATE}"))


def stop_cluster(base: str) -> None:
    subprocess.run([str(PG_THROWAWAY), "stop", base], check=False)


@contextlib.contextmanager
def postgres(url: str | None = None) -> Iterator[str]:
    """A PostgreSQL database for one benchmark: ``url`` when given (the caller's), else a
    fresh database in run_all's cluster, else a throwaway cluster of its own; what this
    started is dropped or stopped at the end."""
    if url is not None:
        yield url
        return
    cluster = os.environ.get(CLUSTER_ENV)
    if cluster:
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(cluster, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        try:
            yield cluster.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with psycopg.connect(cluster, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    url, base = start_cluster()
    try:
        yield url
    finally:
        stop_cluster(base)


def clean_environment() -> dict[str, str]:
    """This process's environment without CONTRACTOR_ settings, the checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    env.update(PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1")
    return env


@contextlib.contextmanager
def serve(
    settings: dict[str, str], *, workers: int = 1, cwd: str | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`contractor serve` on a kernel-chosen loopback port with the given ``CONTRACTOR_``
    settings, ready (``/healthz`` answers); stopped at the end. Yields its base URL and
    process."""
    port = free_port()
    env = clean_environment()
    env.update(CONTRACTOR_LOG_LEVEL="warning")
    env.update(settings)
    command = [sys.executable, "-m", "contractor", "serve", "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, env=env, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_healthy(base: str, process: subprocess.Popen[bytes], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("contractor serve did not start") from None
            time.sleep(0.1)
