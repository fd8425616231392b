"""Console benchmark: each page of the console at /ui/ in Debian's Chromium, 10,000 hosts.

Per page, loaded afresh in the browser (the shell, its modules and the page's queries):

- *first byte*: the slowest of the page's GraphQL answers, from sending it to its first
  byte (Resource Timing); the shell's own files are static and come from the page cache;
- *rendered*: from the navigation's start to the page drawn (the console's
  ``contractor:drawn`` performance mark, set once the page is in the document).

    python bench/console_bench.py                     # starts a throwaway PostgreSQL
    python bench/console_bench.py --hosts 2000 --rounds 3

Targets (2 cores): first byte under 100 ms and rendered under 1 s for every page, with
10,000 structures (the tables are paged: 50 rows, SQL bounded by the page's shape). The
inventory is graphql_bench's: four sites under two parents, 10,000 foundations with two
interfaces each and a structure with an address each.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.graphql_bench import bench_settings, populate  # noqa: E402
from bench.harness import Figure, postgres, serve  # noqa: E402
from contractor import migrate  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402

# name, fragment ({s}: a structure's id); what an operator opens most
PAGES = [
    ("dashboard", "#/"),
    ("site tree", "#/sites?site=eu"),
    ("foundations", "#/foundations"),
    ("foundations filtered", "#/foundations?site=dc2&state=BUILT&q=node00*"),
    ("structures", "#/structures"),
    ("structures, page 2", "#/structures?page=2&after={after}"),
    ("structure", "#/structure/{s}"),
    ("foundation", "#/foundation/node000001"),
    ("jobs", "#/jobs"),
    ("address blocks", "#/blocks"),
    ("address block (/16, 2,500 used)", "#/block/1"),
    ("DNS zones", "#/zones"),
    ("discovered hardware", "#/discovered"),
]

DRAWN = """
const done = arguments[arguments.length - 1];
const wait = () => {
  const drawn = performance.getEntriesByName("contractor:drawn");
  if (!drawn.length) return setTimeout(wait, 5);
  const answers = performance.getEntriesByType("resource")
    .filter((entry) => entry.name.endsWith("/graphql"))
    .map((entry) => entry.responseStart - entry.requestStart);
  done({ rendered: drawn[0].startTime, firstByte: Math.max(0, ...answers),
         title: document.getElementById("page-title")?.textContent || "" });
};
wait();
"""


@contextmanager
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (Selenium; nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise SystemExit("console bench: needs chromium and chromium-driver (scripts/test)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    with tempfile.TemporaryDirectory(prefix="console-bench-") as profile:
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument("--window-size=1280,800")
        session = webdriver.Chrome(service=Service(driver), options=options)
        session.set_script_timeout(60)
        try:
            yield session
        finally:
            session.quit()


def second_page(base: str, token: str) -> str:
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": "{ structures(first: 50) { pageInfo { endCursor } } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    cursor: str = answer["data"]["structures"]["pageInfo"]["endCursor"]
    return cursor


def run(url: str, hosts: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Load the inventory, serve it, and load every page ``rounds`` times."""
    settings = bench_settings(url)
    foundation_types()
    migrate.upgrade(settings)
    token, structure_id = asyncio.run(populate(settings, hosts))
    samples: dict[str, list[dict[str, float]]] = {name: [] for name, _ in PAGES}
    environment = {
        "CONTRACTOR_DATABASE_URL": url,
        "CONTRACTOR_AUTO_MIGRATE": "false",
        "CONTRACTOR_FOREMAN_ENABLED": "false",
    }
    with serve(environment) as (base, _), browser() as session:
        after = second_page(base, token)
        session.get(f"{base}/ui/#token={token}")  # logs the tab in (sessionStorage)
        session.execute_async_script(DRAWN)
        for _ in range(rounds + 1):  # the first round warms the server's caches up
            for name, fragment in PAGES:
                page = fragment.format(s=structure_id, after=after)
                session.get("about:blank")
                session.get(f"{base}/ui/{page}")
                result = session.execute_async_script(DRAWN)
                if "could not be shown" in result["title"]:
                    raise SystemExit(f"console bench: {name} failed: {session.page_source}")
                samples[name].append(result)
        for name in samples:
            del samples[name][0]
    return samples


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py (a fresh PostgreSQL database)."""
    hosts = 500 if quick else 10_000
    with postgres() as url:
        samples = run(url, hosts, rounds)
    figures = []
    kinds = (("firstByte", "first byte", "< 100 ms"), ("rendered", "rendered", "< 1000 ms"))
    for name, _ in PAGES:
        for key, label, target in kinds:
            figure = Figure(f"console {name}: {label}", unit="ms", target=target)
            figure.note = f"{hosts:,} hosts"
            figure.samples.extend(sample[key] for sample in samples[name])
            figures.append(figure)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="console_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a new one)")
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with postgres(args.database_url) as url:
        samples = run(url, args.hosts, args.rounds)
    print(f"{args.hosts:,} hosts, median of {args.rounds} fresh loads per page")
    print(f"{'page':24s} {'first byte':>12s} {'rendered':>12s}")
    for name, _ in PAGES:
        first = statistics.median(s["firstByte"] for s in samples[name])
        drawn = statistics.median(s["rendered"] for s in samples[name])
        verdict = "ok" if first < 100 and drawn < 1000 else "OVER TARGET"
        print(f"{name:24s} {first:9.1f} ms {drawn:9.1f} ms  {verdict}")


if __name__ == "__main__":
    main()
