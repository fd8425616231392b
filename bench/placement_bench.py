"""Placement on a big Complex, and the ``resourcesUsed`` query at that size (PostgreSQL).

The inventory: one ``simulated`` Complex of 1,000 members (64 CPUs, 256 GB, 4 TB each,
CPUs over-committed 4 times) carrying 100,000 placed ``simulated-vm`` Foundations (1 CPU,
1 GB, 10 GB each), bulk-inserted; then a chain of 10 Structures on VMs, each VM's Foundation
depending on the previous Structure. Measured:

* placement decisions per second: ``createFoundation`` of a ``simulated-vm`` through the
  service (its own transaction each: the lock on the Complex, the rooms of its 1,000
  members from their allocation sums, the choice, the placement row and the member's sums);
* ``resourcesUsed`` p50 for the chain's last Structure (10 levels of dependencies) and for
  the members' blueprint (1,000 Structures), and the SQL statements each issues (the same
  whatever the depth or size: one recursive query and one for the Complexes).

Targets: the query under 100 ms at that size.

    .venv/bin/python bench/placement_bench.py                   # a throwaway PostgreSQL
    .venv/bin/python bench/placement_bench.py --database-url postgresql://user@host/db
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.harness import Clock, Figure, percentile, postgres
from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.models import (
    ComplexMember,
    Foundation,
    FoundationPlacement,
    Structure,
    utcnow,
)
from contractor.plugins import foundation_types
from contractor.services import blueprint as bps
from contractor.services import building, complexes, usage
from contractor.services import site as sites
from contractor.settings import Settings

QUERY_TARGET_MS = 100.0
BATCH = 5000


async def _bulk(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(table), rows[start : start + BATCH])


async def build(session: AsyncSession, members: int, vms: int) -> dict[str, Any]:
    """The inventory; names and ids the measurements need."""
    run = uuid.uuid4().hex[:6]
    site = await sites.create_site(session, name=f"pb{run}")
    fbp = await bps.create_foundation_blueprint(
        session, name=f"pb{run}f", foundation_types=["manual", "simulated-vm"]
    )
    sbp = await bps.create_structure_blueprint(
        session, name=f"pb{run}s", foundation_blueprints=[fbp]
    )
    complex_ = await complexes.create_complex(
        session, name=f"pb{run}c", site=site, type="simulated", cpu_overcommit=4.0
    )
    now = utcnow()
    common = {"site_id": site.id, "blueprint_id": fbp.id, "created": now, "updated": now}
    hosts = [{"locator": f"pb{run}-hv{i:04d}", "type": "manual", **common} for i in range(members)]
    await _bulk(session, Foundation.__table__, hosts)
    host_ids = await _ids(session, f"pb{run}-hv")
    manual = foundation_types()["manual"].model.__table__
    await _bulk(session, manual, [{"id": i} for i in host_ids])
    structures = [
        {
            "hostname": f"pb{run}-hv{i:04d}",
            "site_id": site.id,
            "blueprint_id": sbp.id,
            "foundation_id": host_id,
            "config_uuid": str(uuid.uuid4()),
            "config_values": {},
            "created": now,
            "updated": now,
        }
        for i, host_id in enumerate(host_ids)
    ]
    await _bulk(session, Structure.__table__, structures)
    structure_ids = (
        (
            await session.execute(
                select(Structure.id).where(Structure.site_id == site.id).order_by(Structure.id)
            )
        )
        .scalars()
        .all()
    )
    member_rows = [
        {
            "complex_id": complex_.id,
            "structure_id": sid,
            "endpoint": "",
            "username": "",
            "password": "",
            "cpu_count": 64,
            "memory_mb": 262144,
            "disk_gb": 4000,
            "capacity_read_at": now,
        }
        for sid in structure_ids
    ]
    await _bulk(session, ComplexMember.__table__, member_rows)
    member_ids = (
        (
            await session.execute(
                select(ComplexMember.id).where(ComplexMember.complex_id == complex_.id)
            )
        )
        .scalars()
        .all()
    )
    vm_rows = [
        {"locator": f"pb{run}-vm{i:06d}", "type": "simulated-vm", **common} for i in range(vms)
    ]
    await _bulk(session, Foundation.__table__, vm_rows)
    vm_ids = await _ids(session, f"pb{run}-vm")
    simulated = foundation_types()["simulated"].model.__table__
    await _bulk(session, simulated, [{"id": i} for i in vm_ids])
    placements = [
        {
            "foundation_id": vm_id,
            "complex_id": complex_.id,
            "member_id": member_ids[i % len(member_ids)],
            "cpus": 1,
            "memory_mb": 1024,
            "disk_gb": 10,
            "pinned": False,
        }
        for i, vm_id in enumerate(vm_ids)
    ]
    await _bulk(session, FoundationPlacement.__table__, placements)
    # the members' sums, as place() keeps them
    await session.execute(
        text(
            "UPDATE complex_member SET allocated_cpus = a.cpus, allocated_memory_mb = a.memory, "
            "allocated_disk_gb = a.disk FROM (SELECT member_id, SUM(cpus) AS cpus, "
            "SUM(memory_mb) AS memory, SUM(disk_gb) AS disk FROM foundation_placement "
            "WHERE complex_id = :complex GROUP BY member_id) AS a WHERE a.member_id = "
            "complex_member.id"
        ),
        {"complex": complex_.id},
    )
    # the chain: chain[i] stands on a VM whose foundation depends on chain[i - 1]
    chain: list[int] = []
    for index in range(10):
        vm = await building.create_foundation(
            session,
            locator=f"pb{run}-chain{index}",
            site=site,
            blueprint=fbp,
            type="simulated-vm",
            fields={"complex": complex_.name, "cpus": 2, "memory_mb": 2048, "disk_gb": 20},
        )
        if chain:
            previous = await session.get_one(Structure, chain[-1])
            await building.create_dependency(session, structure=previous, foundation=vm)
        made = await building.create_structure(
            session, hostname=f"pb{run}-app{index}", site=site, blueprint=sbp, foundation=vm
        )
        chain.append(made.id)
    await session.execute(text("ANALYZE"))  # as autovacuum would soon: plans for this size
    return {
        "site": site.name,
        "fbp": fbp.name,
        "sbp": sbp.name,
        "complex": complex_.name,
        "chain": chain,
        "run": run,
    }


async def _ids(session: AsyncSession, prefix: str) -> list[int]:
    query = select(Foundation.id).where(Foundation.locator.startswith(prefix))
    return list((await session.execute(query.order_by(Foundation.locator))).scalars())


def _count(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: seen.append(statement),
    )
    return seen


async def run(args: argparse.Namespace) -> dict[str, Any]:
    foundation_types()
    settings = Settings(database_url=args.database_url, auto_migrate=False)
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    try:
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            made = await build(session, args.members, args.vms)
        print(
            f"{args.members:,} members, {args.vms:,} placed foundations; built in "
            f"{time.perf_counter() - started:.1f} s"
        )
        decisions: list[tuple[float, float, float]] = []  # per round: rate, wall, cpu
        for round_ in range(args.repeat):
            with Clock() as clock:
                for index in range(args.decisions):
                    async with sessions() as session, session.begin():
                        await building.create_foundation(
                            session,
                            locator=f"pb{made['run']}-new{round_}-{index}",
                            site=await sites.get_site(session, made["site"]),
                            blueprint=await bps.get_foundation_blueprint(session, made["fbp"]),
                            type="simulated-vm",
                            fields={"complex": made["complex"], "cpus": 1, "memory_mb": 512},
                        )
            decisions.append((args.decisions / clock.wall, clock.wall, clock.cpu))
        statements = _count(engine)
        timings: dict[str, list[float]] = {"structure": [], "blueprint": []}
        counts: dict[str, int] = {}
        for kind in timings:
            for _ in range(args.queries):
                async with sessions() as session:
                    statements.clear()
                    begun = time.perf_counter()
                    if kind == "structure":
                        target = await building.get_structure_by_id(session, made["chain"][-1])
                        uses = await usage.resources_used(session, structure=target)
                    else:
                        blueprint = await bps.get_blueprint(session, made["sbp"])
                        uses = await usage.resources_used(session, blueprint=blueprint)
                    timings[kind].append(time.perf_counter() - begun)
                    counts[kind] = len(statements)
                    assert uses, kind
        rates = [rate for rate, _, _ in decisions]
        print(f"placement decisions: {statistics.median(rates):.1f}/s (createFoundation each)")
        for kind, values in timings.items():
            p50 = percentile(values, 0.5) * 1000
            print(
                f"resourcesUsed({kind}) p50 {p50:.1f} ms, {counts[kind]} statements "
                f"(target < {QUERY_TARGET_MS:.0f} ms)"
            )
        return {"decisions": decisions, "timings": timings, "counts": counts}
    finally:
        await engine.dispose()


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py, on PostgreSQL."""
    members, vms = (50, 2000) if quick else (1000, 100_000)
    with postgres() as url:
        args = argparse.Namespace(
            database_url=url,
            members=members,
            vms=vms,
            decisions=10 if quick else 100,
            queries=5 if quick else 20,
            repeat=rounds,
        )
        results = asyncio.run(run(args))
    note = f"{members:,} members, {vms:,} placed foundations"
    rate = Figure(
        "placement decisions", unit="/s", better="higher", note=f"{note}, createFoundation each"
    )
    for value, wall, cpu in results["decisions"]:
        rate.add(value, wall, cpu)
    figures = [rate]
    for kind, what in (("structure", "a 10-level chain"), ("blueprint", f"{members:,} structures")):
        figure = Figure(
            f"resourcesUsed p50, {what}",
            unit="ms",
            note=f"{note}; {results['counts'][kind]} statements",
            target=f"< {QUERY_TARGET_MS:.0f} ms",
        )
        for _ in range(rounds):
            figure.add(1000 * percentile(results["timings"][kind], 0.5))
        figures.append(figure)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a throwaway cluster)")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.database_url is None:
        with postgres() as url:
            args.database_url = url
            asyncio.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
