"""What the metrics cost the task API: round trips with metrics on and off, back to back.

Starts `contractor serve` on PostgreSQL (as ``bench/foreman_bench.py`` does: jobs of 10
remote ``power_state`` steps, answered by long-polling clients over HTTP), alternately with
``CONTRACTOR_METRICS_ENABLED`` true and false, the order swapped every round, a fresh server
each time; while metrics are on, ``/metrics`` is scraped every ``--scrape-seconds`` (15, a
usual Prometheus interval; the first scrape at once). Prints each run, the medians, and the
cost of the metrics: the drop in round trips per second and the rise in server CPU per round
trip (target: at most 5%).

    python bench/metrics_bench.py                      # a throwaway PostgreSQL
    python bench/metrics_bench.py --database-url URL   # an empty database you own
    python bench/metrics_bench.py --rounds 7 --jobs 80
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from foreman_bench import (  # noqa: E402
    ROOT,
    drive,
    harness,
    populate,
    server_seconds,
    wait_for_server,
)

from contractor import migrate  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402
from contractor.settings import Settings  # noqa: E402


async def scraping(base: str, every: float, stop: asyncio.Event) -> int:
    """Scrape ``/metrics`` every ``every`` seconds until ``stop``; how many scrapes."""
    count = 0
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            answer = await client.get("/metrics")
            answer.raise_for_status()
            count += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    return count


async def measured(
    port: int, token: str, settings: Settings, first: int, args: argparse.Namespace, on: bool
) -> tuple[dict[str, Any], int]:
    stop = asyncio.Event()
    scraper = None
    if on:
        scraper = asyncio.create_task(
            scraping(f"http://127.0.0.1:{port}", args.scrape_seconds, stop)
        )
    try:
        figures = await drive(port, token, settings, first, args.jobs, args.clients)
    finally:
        stop.set()
    scrapes = await scraper if scraper is not None else 0
    return figures, scrapes


def one_run(
    url: str, token: str, settings: Settings, first: int, args: argparse.Namespace, on: bool
) -> dict[str, Any]:
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    env.update(
        CONTRACTOR_DATABASE_URL=url,
        CONTRACTOR_LOG_LEVEL="warning",
        CONTRACTOR_METRICS_ENABLED="true" if on else "false",
        CONTRACTOR_METRICS_ALLOW_NETWORKS='["127.0.0.1/32"]',
        PYTHONPATH=str(ROOT),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "contractor", "serve", "--port", str(port)], env=env
    )
    try:
        wait_for_server(port)
        cpu = server_seconds(server.pid)
        figures, scrapes = asyncio.run(measured(port, token, settings, first, args, on))
        cpu = server_seconds(server.pid) - cpu
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "on": on,
        "round_trips_per_second": figures["round_trips_per_second"],
        "cpu_ms": 1000 * cpu / figures["round_trips"],
        "p50_ms": figures["p50_ms"],
        "scrapes": scrapes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of runs (on and off)")
    parser.add_argument("--jobs", type=int, default=60, help="jobs of 10 steps per run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scrape-seconds", type=float, default=15.0)
    args = parser.parse_args()
    url, base_dir = (args.database_url, None) if args.database_url else harness.start_cluster()
    runs: list[dict[str, Any]] = []
    try:
        settings = Settings(database_url=url, auto_migrate=False)
        foundation_types()
        migrate.upgrade(settings)
        token = asyncio.run(populate(settings, 2 * args.rounds * args.jobs))
        first = 0
        for round_number in range(args.rounds):
            order = (True, False) if round_number % 2 == 0 else (False, True)
            for on in order:
                run = one_run(url, token, settings, first, args, on)
                first += args.jobs
                runs.append(run)
                print(
                    f"round {round_number + 1} metrics {'on ' if on else 'off'}  "
                    f"{run['round_trips_per_second']:6.0f} round trips/s  "
                    f"server CPU {run['cpu_ms']:.2f} ms per round trip  "
                    f"result -> next task p50 {run['p50_ms']:.1f} ms"
                    + (f"  ({run['scrapes']} scrapes)" if on else ""),
                    flush=True,
                )
    finally:
        if base_dir:
            subprocess.run([str(ROOT / "scripts" / "pg-throwaway"), "stop", base_dir], check=False)

    def median(on: bool, key: str) -> float:
        return statistics.median(run[key] for run in runs if run["on"] == on)

    rate_on, rate_off = (
        median(True, "round_trips_per_second"),
        median(False, "round_trips_per_second"),
    )
    cpu_on, cpu_off = median(True, "cpu_ms"), median(False, "cpu_ms")
    print(
        f"medians of {args.rounds} runs each ({args.jobs} jobs x 10 steps, {args.clients} "
        f"clients; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    for what, on_value, off_value, shown in (
        ("round trips/s        ", rate_on, rate_off, "7.0f"),
        ("server CPU/round trip", cpu_on, cpu_off, "7.2f"),
    ):
        print(
            f"{what}  on {on_value:{shown}}   off {off_value:{shown}}   "
            f"ratio {on_value / off_value:.3f}"
        )
    cost = max(1 - rate_on / rate_off, cpu_on / cpu_off - 1)
    print(f"cost of the metrics: {100 * cost:.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
