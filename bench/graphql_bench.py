"""GraphQL benchmark: a 10,000-host inventory on PostgreSQL.

Measures the latency (p50, p99) and SQL statement count of a nested page of 1,000
Structures (site, blueprint, foundation, interfaces, addresses), of the aggregates and of an
impact query, and the requests per second of a small query under concurrent load.

    python bench/graphql_bench.py                      # starts a throwaway PostgreSQL
    python bench/graphql_bench.py --database-url URL   # an empty database you own
    python bench/graphql_bench.py --hosts 2000         # smaller inventory

Targets (2 cores): nested 1,000-row page under 300 ms p50 with a constant statement count;
aggregates and impact under 100 ms.

``measure`` (what bench/run_all.py calls) gives the page's p50 round by round beside its
floor: the SQL statements the page issued (captured with their parameters) replayed on a
plain psycopg connection, every row fetched, and the page's JSON serialised again: the same
rows read with the same SQL and written as the same JSON, without the GraphQL layer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event, insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.harness import Clock, Figure, Series, postgres  # noqa: E402
from contractor import migrate, models  # noqa: E402
from contractor.app import create_app  # noqa: E402
from contractor.db import POSTGRESQL_OPTIONS, transaction  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402
from contractor.plugins.manual import ManualFoundation  # noqa: E402
from contractor.rest.state import app_state  # noqa: E402
from contractor.services import (  # noqa: E402
    auth,
    building,
    complexes,
    network,
    site,
)
from contractor.services import blueprint as bps  # noqa: E402
from contractor.settings import Settings  # noqa: E402

PAGE = """query Page($after: String) {
  structures(first: 1000, after: $after) {
    pageInfo { endCursor }
    edges { node {
      hostname state
      site { name parent { name } }
      blueprint { name }
      foundation { locator type state interfaces { physicalLocation mac } }
      addresses { interfaceName ipAddress isPrimary }
    } }
  }
}"""
COUNTS = """{ foundationCounts(groupBy: [SITE, TYPE, STATE]) { site type state count }
  structureCounts(groupBy: [SITE, BLUEPRINT, STATE]) { site blueprint state count } }"""
IMPACT = "{ impact(of: {structure: %d}) { kind name path } }"
SMALL = '{ site(name: "dc1") { name parent { name } } }'


async def populate(settings: Settings, hosts: int) -> tuple[str, int]:
    """The inventory, mostly by bulk insert; returns an admin token and a structure id."""
    app = create_app(settings)
    sessions = app_state(app).writer_sessions
    async with transaction(sessions) as session:
        world = await site.create_site(session, name="world")
        eu = await site.create_site(session, name="eu", parent=world)
        sites = [await site.create_site(session, name=f"dc{i}", parent=eu) for i in range(1, 5)]
        metal = await bps.create_foundation_blueprint(
            session, name="metal", foundation_types=["manual"]
        )
        linux = await bps.create_structure_blueprint(
            session, name="linux", foundation_blueprints=[metal]
        )
        web = await bps.create_structure_blueprint(session, name="web", parents=[linux])
        blocks = [
            await network.create_address_block(
                session, site=s, name="prov", subnet=f"10.{i}.0.0/16", gateway_offset=1
            )
            for i, s in enumerate(sites)
        ]
        user = await auth.create_user(session, username="bench", role="admin")
        token = (await auth.create_token(session, user=user)).text
        now = models.utcnow()
        foundation_rows = [
            {
                "locator": f"node{n:06d}",
                "type": "manual",
                "site_id": sites[n % 4].id,
                "blueprint_id": metal.id,
                "created": now,
                "updated": now,
                "located_at": now if n % 3 else None,
                "built_at": now if n % 3 == 2 else None,
            }
            for n in range(hosts)
        ]
        ids = (
            (
                await session.execute(
                    insert(models.Foundation.__table__).returning(models.Foundation.__table__.c.id),
                    foundation_rows,
                )
            )
            .scalars()
            .all()
        )
        await session.execute(insert(ManualFoundation.__table__), [{"id": i} for i in ids])
        await session.execute(
            insert(models.RealNetworkInterface.__table__),
            [
                {
                    "foundation_id": fid,
                    "name": f"eth{p}",
                    "physical_location": f"eth{p}",
                    "mac": f"52:54:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}:{p:02x}",
                    "is_provisioning": p == 0,
                    "created": now,
                    "updated": now,
                }
                for n, fid in enumerate(ids)
                for p in range(2)
            ],
        )
        structure_ids = (
            (
                await session.execute(
                    insert(models.Structure.__table__).returning(models.Structure.__table__.c.id),
                    [
                        {
                            "hostname": f"web{n:06d}",
                            "site_id": sites[n % 4].id,
                            "blueprint_id": web.id,
                            "foundation_id": fid,
                            "config_uuid": f"00000000-0000-4000-8000-{n:012d}",
                            "config_values": {},
                            "created": now,
                            "updated": now,
                            "built_at": now if n % 3 == 2 else None,
                        }
                        for n, fid in enumerate(ids)
                    ],
                )
            )
            .scalars()
            .all()
        )
        await session.execute(
            insert(models.BaseAddress.__table__),
            [
                {
                    "kind": "address",
                    "address_block_id": blocks[n % 4].id,
                    "offset": 2 + n // 4,
                    "structure_id": sid,
                    "interface_name": "eth0",
                    "alias_index": 0,
                    "is_primary": True,
                    "created": now,
                    "updated": now,
                }
                for n, sid in enumerate(structure_ids)
            ],
        )
        complex_ = await complexes.create_complex(session, name="cluster", site=sites[0])
        first = await session.get_one(models.Structure, structure_ids[0])
        for sid in structure_ids[:10]:
            await complexes.add_complex_member(
                session, complex_, await session.get_one(models.Structure, sid)
            )
        target = await session.get_one(models.Foundation, ids[1])
        await building.create_dependency(session, structure=first, foundation=target)
    await app_state(app).engine.dispose()
    return token, structure_ids[0]


async def replay(
    connection: psycopg.AsyncConnection[Any], statements: list[tuple[str, Any]], data: Any
) -> None:
    """The page's floor: its statements on an open plain psycopg connection (the server's
    are pooled too), every row fetched, and its JSON serialised (the rows are not assembled
    into it: that is the layer)."""
    for statement, parameters in statements:
        cursor = await connection.execute(statement, parameters or None)
        if cursor.description is not None:
            await cursor.fetchall()
    await connection.rollback()
    json.dumps(data)


async def measure_queries(
    settings: Settings, token: str, structure_id: int, rounds: int, floor_rounds: int = 0
) -> dict[str, Any]:
    """p50, p99 and statements of each query; with ``floor_rounds``, also per round the
    page's p50 over ``rounds`` requests and its floor's (``replay``), alternating."""
    app = create_app(settings)
    statements: list[tuple[str, Any]] = []
    event.listen(
        app_state(app).engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, parameters, *a: statements.append((statement, parameters)),
    )
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, Any] = {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers=headers,
            timeout=60,
        ) as client,
    ):

        async def timed(
            document: str, variables: dict[str, Any] | None = None
        ) -> tuple[float, int]:
            statements.clear()
            start = time.perf_counter()
            response = await client.post(
                "/graphql", json={"query": document, "variables": variables or {}}
            )
            elapsed = time.perf_counter() - start
            body = response.json()
            if response.status_code != 200 or "errors" in body:
                raise SystemExit(f"query failed: {body}")
            return elapsed, len(statements)

        await timed(SMALL)  # warm: connections, token check
        for name, document, variables in (
            ("nested page of 1,000 structures", PAGE, None),
            ("aggregates (2 grouped counts)", COUNTS, None),
            ("impact of a structure", IMPACT % structure_id, None),
        ):
            samples = [await timed(document, variables) for _ in range(rounds)]
            times = sorted(s[0] for s in samples)
            counts = {s[1] for s in samples}
            results[name] = {
                "p50_ms": 1000 * statistics.median(times),
                "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
                "statements": sorted(counts),
            }
        # a page deep in the list costs the same statements as the first
        first = (await client.post("/graphql", json={"query": PAGE})).json()
        cursor = first["data"]["structures"]["pageInfo"]["endCursor"]
        _, deep_statements = await timed(PAGE, {"after": cursor})
        results["nested page of 1,000 structures"]["statements_on_page_2"] = deep_statements

        page_rounds: list[dict[str, Any]] = []
        plain = settings.database_url.replace("+psycopg", "")
        connection = (  # the server's session settings: the same plans for the same SQL
            await psycopg.AsyncConnection.connect(plain, options=POSTGRESQL_OPTIONS)
            if floor_rounds
            else None
        )
        for _ in range(floor_rounds):
            assert connection is not None
            statements.clear()
            response = await client.post("/graphql", json={"query": PAGE})
            captured, data = list(statements), response.json()
            floors, pages = [], []
            for _ in range(rounds):
                with Clock() as floor:
                    await replay(connection, captured, data)
                floors.append((floor.wall, floor.cpu))
                with Clock() as page:
                    await timed(PAGE)
                pages.append((page.wall, page.cpu))
            page_rounds.append({"page": pages, "floor": floors, "statements": len(captured)})
        results["page rounds"] = page_rounds
        if connection is not None:
            await connection.close()

        concurrency, total = 10, 1000
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < total:
                done += 1
                response = await client.post("/graphql", json={"query": SMALL})
                assert response.status_code == 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        results["small query"] = {"requests_per_second": total / (time.perf_counter() - start)}
    return results


def bench_settings(url: str) -> Settings:
    # No job stepping or webhook delivery in this process: their background queries would
    # be counted with the request's statements.
    return Settings(
        database_url=url,
        auto_migrate=False,
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        foreman_enabled=False,
        webhooks_enabled=False,
    )


def _median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median sample by wall time, with its CPU time."""
    return sorted(pairs)[len(pairs) // 2]


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py (a fresh PostgreSQL database)."""
    hosts = 1_100 if quick else 10_000
    requests = 2 if quick else 9
    with postgres() as url:
        settings = bench_settings(url)
        foundation_types()
        migrate.upgrade(settings)
        token, structure_id = asyncio.run(populate(settings, hosts))
        results = asyncio.run(
            measure_queries(settings, token, structure_id, requests, floor_rounds=rounds)
        )
    note = f"{hosts:,} hosts, p50 of {requests}"
    page = Figure("nested page of 1,000 structures", unit="ms", note=note, target="≤ 3x floor")
    page.floor = Series("same SQL on psycopg + json.dumps", note="no GraphQL")
    for sample in results["page rounds"]:
        wall, cpu = _median_pair(sample["page"])
        page.add(1000 * wall, wall, cpu)
        wall, cpu = _median_pair(sample["floor"])
        page.floor.add(1000 * wall, wall, cpu)
    statements = Figure("SQL statements per page", unit="", note="page 2 the same")
    for sample in results["page rounds"]:
        statements.add(sample["statements"])
    nested = results["nested page of 1,000 structures"]
    assert nested["statements"] == [nested["statements_on_page_2"]], nested
    figures = [page, statements]
    for name in ("aggregates (2 grouped counts)", "impact of a structure"):
        figure = Figure(name, unit="ms", note=f"p50 of {requests}", target="< 100 ms")
        figure.add(results[name]["p50_ms"])
        figures.append(figure)
    small = Figure("small query, 10 clients", unit="req/s", better="higher", note="in process")
    small.add(results["small query"]["requests_per_second"])
    return [*figures, small]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: a throwaway one)"
    )
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    base = None
    url = args.database_url
    if url is None:
        url, base = harness.start_cluster()
    try:
        settings = bench_settings(url)
        foundation_types()
        migrate.upgrade(settings)
        start = time.perf_counter()
        token, structure_id = asyncio.run(populate(settings, args.hosts))
        print(
            f"inventory: {args.hosts} foundations, {args.hosts} structures, "
            f"{2 * args.hosts} interfaces, {args.hosts} addresses "
            f"({time.perf_counter() - start:.1f} s to load)"
        )
        results = asyncio.run(measure_queries(settings, token, structure_id, args.rounds))
    finally:
        if base:
            harness.stop_cluster(base)
    targets = {
        "nested page of 1,000 structures": 300.0,
        "aggregates (2 grouped counts)": 100.0,
        "impact of a structure": 100.0,
    }
    del results["page rounds"]
    for name, figures in results.items():
        if "p50_ms" in figures:
            target = targets[name]
            print(
                f"{name:34s} p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  "
                f"statements {figures['statements']}  target {target:.0f} ms  "
                f"ratio {figures['p50_ms'] / target:.2f}"
            )
            if "statements_on_page_2" in figures:
                print(f"{'':34s} statements on page 2: {figures['statements_on_page_2']}")
        else:
            print(
                f"{name:34s} {figures['requests_per_second']:.0f} requests/s "
                "(10 concurrent clients, in-process)"
            )


if __name__ == "__main__":
    main()
