"""Compose and render the configurations of many Structures, cold and warm.

The inventory: a 5-level site tree (1, 2, 4, 8, 16 sites; Structures in the 16 leaves), a
structure blueprint with two parents sharing a grandparent (a diamond: 5 blueprint layers),
``--keys`` config keys in every site, blueprint and structure layer (some templated, some
``<``/``>``/``-``/``~`` operators, some ``:Class`` filters), and per Structure a manual
Foundation with a provisioning interface and a primary address.

    .venv/bin/python bench/config_bench.py                      # embedded SQLite (temp file)
    .venv/bin/python bench/config_bench.py --database-url postgresql://user@host/db

The PostgreSQL database must be empty or already migrated (the bench migrates and adds its
rows under fresh names). Cold: a new cache, every source read and every configuration merged
and rendered. Warm: the same request again, answered from the cache after one query for the
config generation. Targets: under 1 s cold and under 50 ms warm for 1,000 Structures on 2
cores; NetBox takes about 60 s per 1,000 devices to render config contexts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bench.harness import Figure
from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.models import (
    Address,
    RealNetworkInterface,
    Site,
    Structure,
)
from contractor.plugins import foundation_types
from contractor.plugins.manual import ManualFoundation
from contractor.services import blueprint as bp_service
from contractor.services import network
from contractor.services import site as site_service
from contractor.services.config import ConfigCache, composed_configs
from contractor.settings import Settings

COLD_TARGET = 1.0
WARM_TARGET = 0.050
NETBOX_PER_1000 = 60.0


def layer_values(tag: str, keys: int) -> dict[str, Any]:
    """``keys`` entries: own keys, shared keys every layer overrides, operators, templates
    and class filters, in the proportions of a real site tree."""
    values: dict[str, Any] = {}
    for index in range(keys):
        slot = index % 10
        if slot == 0:
            values[f"shared_{index}"] = f"{tag}-{index}"  # overridden by every later layer
        elif slot == 1:
            values[f">search_{index % 3}"] = [f"{tag}.example"]  # appended layer by layer
        elif slot == 2:
            values[f"{tag}_url_{index}"] = "{{ __contractor_host }}/" + f"{tag}/{index}"
        elif slot == 3:
            values[f"{tag}_host_{index}"] = "{{ _hostname }}." + tag
        elif slot == 4:
            values[f"{tag}_vm_{index}:VM"] = index  # applies (manual foundations are VMs)
        elif slot == 5:
            values[f"{tag}_vc_{index}:VCenter"] = index  # filtered out
        elif slot == 6:
            values[f"{tag}_list_{index}"] = [index, index + 1, {"nested": tag}]
        elif slot == 7:
            values[f"{tag}_map_{index}"] = {"a": index, "b": [tag, "x"], "c": None}
        elif slot == 8:
            values[f"<prefix_{index % 2}"] = f"{tag}:"
        else:
            values[f"{tag}_plain_{index}"] = f"value {index} of {tag}"
    values["~masked_by_every_layer"] = None
    return values


async def build(session: AsyncSession, structures: int, keys: int) -> list[int]:
    """Create the inventory; return the Structure ids."""
    run = uuid.uuid4().hex[:6]
    mac_run = run[:4]  # MACs are unique across the whole database
    parents: list[Site] = [
        await site_service.create_site(
            session, name=f"b{run}l0", config_values=layer_values("l0", keys)
        )
    ]
    for level in range(1, 5):
        children = []
        for parent in parents:
            for branch in range(2):
                children.append(
                    await site_service.create_site(
                        session,
                        name=f"b{run}l{level}s{len(children)}",
                        parent=parent,
                        config_values=layer_values(f"l{level}", keys),
                    )
                )
                del branch
        parents = children
    leaves = parents

    fbp = await bp_service.create_foundation_blueprint(
        session, name=f"b{run}fbp", foundation_types=["manual"]
    )
    grand = await bp_service.create_structure_blueprint(
        session, name=f"b{run}base", config_values=layer_values("base", keys)
    )
    left = await bp_service.create_structure_blueprint(
        session, name=f"b{run}left", parents=[grand], config_values=layer_values("left", keys)
    )
    right = await bp_service.create_structure_blueprint(
        session, name=f"b{run}right", parents=[grand], config_values=layer_values("right", keys)
    )
    sbp = await bp_service.create_structure_blueprint(
        session,
        name=f"b{run}os",
        parents=[left, right],
        foundation_blueprints=[fbp],
        config_values=layer_values("os", keys),
    )
    blocks = [
        await network.create_address_block(
            session, site=leaf, name="hosts", subnet=f"10.{index}.0.0/22", gateway_offset=1
        )
        for index, leaf in enumerate(leaves)
    ]

    foundations = [
        ManualFoundation(
            locator=f"b{run}n{index}",
            site_id=leaves[index % len(leaves)].id,
            blueprint_id=fbp.id,
        )
        for index in range(structures)
    ]
    session.add_all(foundations)
    await session.flush()
    rows = [
        Structure(
            hostname=f"host{index}",
            site_id=foundation.site_id,
            blueprint_id=sbp.id,
            foundation_id=foundation.id,
            config_values=layer_values("host", keys),
        )
        for index, foundation in enumerate(foundations)
    ]
    session.add_all(rows)
    session.add_all(
        RealNetworkInterface(
            foundation_id=foundation.id,
            name="eth0",
            physical_location="eth0",
            is_provisioning=True,
            mac=f"02:{mac_run[:2]}:{mac_run[2:]}:{index >> 16 & 255:02x}:"
            f"{index >> 8 & 255:02x}:{index & 255:02x}",
        )
        for index, foundation in enumerate(foundations)
    )
    await session.flush()
    session.add_all(
        Address(
            structure_id=structure.id,
            interface_name="eth0",
            alias_index=0,
            is_primary=True,
            address_block_id=blocks[index % len(leaves)].id,
            offset=2 + index // len(leaves),
        )
        for index, structure in enumerate(rows)
    )
    await session.flush()
    return [row.id for row in rows]


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    """Measure and print; returns per cold run the seconds and CPU seconds per 1,000
    Structures, and the median of its three warm requests."""
    foundation_types()
    url = args.database_url
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    settings = Settings(database_url=url, auto_migrate=False)
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    try:
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            ids = await build(session, args.structures, args.keys)
        print(
            f"database: {engine.dialect.name}; {len(ids)} structures, {args.keys} keys per "
            f"layer, 11 layers of values (5 blueprint, 5 site, 1 structure); built in "
            f"{time.perf_counter() - started:.1f} s; cpus: {os.cpu_count()}"
        )

        async with sessions() as session:
            rows = (
                (await session.execute(select(Structure).where(Structure.id.in_(ids))))
                .scalars()
                .all()
            )
            sample = await composed_configs(
                session, rows[:1], settings=settings, cache=ConfigCache()
            )
        print(f"one configuration: {len(sample[0])} keys")

        cold: list[float] = []
        cold_cpu: list[float] = []
        warm: list[float] = []
        warm_medians: list[float] = []
        end_to_end_warm: list[float] = []
        for _ in range(args.repeat):
            cache = ConfigCache()
            async with sessions() as session:
                rows = (
                    (await session.execute(select(Structure).where(Structure.id.in_(ids))))
                    .scalars()
                    .all()
                )
                started, cpu = time.perf_counter(), time.process_time()
                configs = await composed_configs(session, rows, settings=settings, cache=cache)
                cold.append(time.perf_counter() - started)
                cold_cpu.append(time.process_time() - cpu)
                assert len(configs) == len(ids)
                warm_round = []
                for _ in range(3):
                    started = time.perf_counter()
                    await composed_configs(session, rows, settings=settings, cache=cache)
                    warm_round.append(time.perf_counter() - started)
                warm += warm_round
                warm_medians.append(statistics.median(warm_round))
            async with sessions() as session:
                started = time.perf_counter()
                rows = (
                    (await session.execute(select(Structure).where(Structure.id.in_(ids))))
                    .scalars()
                    .all()
                )
                await composed_configs(session, rows, settings=settings, cache=cache)
                end_to_end_warm.append(time.perf_counter() - started)

        scale = 1000 / len(ids)
        cold_s = statistics.median(cold) * scale
        warm_s = statistics.median(warm) * scale
        e2e_s = statistics.median(end_to_end_warm) * scale
        load = os.getloadavg()[0]
        print(
            f"per 1,000 structures (median of {args.repeat} cold, {len(warm)} warm runs; "
            f"load average {load:.1f}):"
        )
        print(
            f"  cold  {cold_s * 1000:8.1f} ms   target {COLD_TARGET * 1000:.0f} ms   "
            f"{cold_s / COLD_TARGET:5.2f}x the target   "
            f"{NETBOX_PER_1000 / cold_s:6.0f}x faster than NetBox (~60 s)"
        )
        print(
            f"  warm  {warm_s * 1000:8.1f} ms   target {WARM_TARGET * 1000:.0f} ms    "
            f"{warm_s / WARM_TARGET:5.2f}x the target   "
            f"{NETBOX_PER_1000 / warm_s:6.0f}x faster than NetBox (~60 s)"
        )
        print(
            f"  cold, CPU time of this process {statistics.median(cold_cpu) * scale * 1000:.1f} ms"
            " (what other processes on the machine cannot inflate; includes the database "
            "driver, and PostgreSQL's own work is not in it)"
        )
        print(
            f"  warm, loading the 1,000 Structure rows too  {e2e_s * 1000:.1f} ms "
            f"(the rows themselves are the caller's query)"
        )
        return {
            "cold": [value * scale for value in cold],
            "cold_cpu": [value * scale for value in cold_cpu],
            "warm": [value * scale for value in warm_medians],
        }
    finally:
        await engine.dispose()


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py, on the embedded SQLite default (a temporary file)."""
    structures = 50 if quick else 1000
    args = argparse.Namespace(database_url=None, structures=structures, keys=50, repeat=rounds)
    results = asyncio.run(run(args))
    note = f"per 1,000 of {structures:,} Structures, 50 keys per layer"
    cold = Figure("config cold", unit="ms", note=note, target="< 1 s")
    warm = Figure("config warm", unit="ms", note=note, target="< 25 ms")
    for seconds, cpu, cached in zip(
        results["cold"], results["cold_cpu"], results["warm"], strict=True
    ):
        cold.add(1000 * seconds, seconds, cpu)
        warm.add(1000 * cached, cached)
    return [cold, warm]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a temporary SQLite)")
    parser.add_argument("--structures", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=50, help="keys per layer")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs (fresh cache each)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
