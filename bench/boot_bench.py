"""Boot data benchmark: a site with 10,000 reservations served by `contractor serve` on
PostgreSQL to one agent long-polling the boot data API.

1. Snapshot: the agent's first snapshot in pages of 2,000 (the first refresh computes every
   entry), then a second one (entries current: read only).
2. Change-to-agent latency: one MAC changes in a transaction of this process (another
   process than the server, so the wake-up is the commit's NOTIFY); the time from its
   commit to the agent's answer holding it, SAMPLES times.
3. Changes per second: WRITERS concurrent writers each change MACs, one per transaction,
   CHANGES in all, while the agent keeps long-polling: commits per second, and how soon
   after the last commit the agent holds every change (the polls coalesce many commits).

The DHCP server's part (reservations applied by dnsmasq or Kea) comes with the
subcontractor's boot services.

    python bench/boot_bench.py                      # a throwaway PostgreSQL
    python bench/boot_bench.py --database-url URL   # an empty database you own
    python bench/boot_bench.py --reservations 2000 --changes 200

Targets: change-to-agent under 1 s (p99) with 10,000 reservations; the snapshot under 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from contractor import migrate  # noqa: E402
from contractor.db import create_engine, create_session_factory, transaction  # noqa: E402
from contractor.models import (  # noqa: E402
    BaseAddress,
    Foundation,
    RealNetworkInterface,
    Structure,
    utcnow,
)
from contractor.plugins import foundation_types  # noqa: E402
from contractor.plugins.manual import ManualFoundation  # noqa: E402
from contractor.services import blueprint as bp_service  # noqa: E402
from contractor.services import interfaces, network  # noqa: E402
from contractor.services import site as site_service  # noqa: E402
from contractor.services import tasks as task_service  # noqa: E402
from contractor.settings import Settings  # noqa: E402
from tests.serving import clean_env, contractor_serve  # noqa: E402

BOOT = "/api/v1/subcontractor/boot"
SITE = "boot"


def mac_of(number: int) -> str:
    return f"52:54:{number >> 24 & 255:02x}:{number >> 16 & 255:02x}:{number >> 8 & 255:02x}:" + (
        f"{number & 255:02x}"
    )


async def populate(settings: Settings, count: int) -> tuple[str, list[int]]:
    """The site, ``count`` machines with a provisioning MAC and an address (bulk-inserted:
    the services' per-row checks would dominate the set-up), and a boot token; the
    interface ids."""
    foundation_types()
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            site = await site_service.create_site(
                session, name=SITE, config_values={"dns_servers": ["10.0.0.53"]}
            )
            block = await network.create_address_block(
                session, site=site, name="prov", subnet="10.128.0.0/16", gateway_offset=1
            )
            fbp = await bp_service.create_foundation_blueprint(
                session, name="fbp", foundation_types=["manual"]
            )
            sbp = await bp_service.create_structure_blueprint(
                session, name="sbp", foundation_blueprints=[fbp]
            )
            now = utcnow()
            stamps = {"created": now, "updated": now}
            ids = range(1, count + 1)
            await session.execute(
                insert(Foundation.__table__),
                [
                    {"id": i, "locator": f"n{i}", "type": "manual", "site_id": site.id}
                    | {"blueprint_id": fbp.id, **stamps}
                    for i in ids
                ],
            )
            await session.execute(insert(ManualFoundation.__table__), [{"id": i} for i in ids])
            await session.execute(
                insert(RealNetworkInterface.__table__),
                [
                    {"id": i, "foundation_id": i, "name": "eth0", "physical_location": "eth0"}
                    | {"mac": mac_of(i), "is_provisioning": True, **stamps}
                    for i in ids
                ],
            )
            await session.execute(
                insert(Structure.__table__),
                [
                    {"id": i, "hostname": f"h{i}", "site_id": site.id, "blueprint_id": sbp.id}
                    | {"foundation_id": i, "config_uuid": str(uuid.uuid4()), "config_values": {}}
                    | stamps
                    for i in ids
                ],
            )
            await session.execute(
                insert(BaseAddress.__table__),
                [
                    {"kind": "address", "address_block_id": block.id, "offset": i + 1}
                    | {"structure_id": i, "interface_name": "eth0", "alias_index": 0}
                    | {"is_primary": True, **stamps}
                    for i in ids
                ],
            )
            token = await task_service.create_subcontractor_token(
                session, name="bench", sites=[SITE], modules=["boot"]
            )
            interface_ids = list(
                (await session.execute(select(RealNetworkInterface.id))).scalars().all()
            )
        return token.text, interface_ids
    finally:
        await engine.dispose()


class Agent:
    """What a boot service keeps: the entries by id, and the version they are at."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.entries: dict[str, dict[str, Any]] = {}
        self.version = 0

    async def snapshot(self) -> int:
        body: dict[str, Any] = {"site": SITE, "limit": 2000}
        pages = 0
        self.entries.clear()
        while True:
            answer = (await self.http.post(BOOT, json=body)).json()
            pages += 1
            self._apply(answer)
            if answer["cursor"] is None:
                return pages
            body = {"site": SITE, "cursor": answer["cursor"], "limit": 2000}

    async def changes(self, wait: float) -> dict[str, Any]:
        body: dict[str, Any] = {"site": SITE, "since": self.version, "wait": wait}
        while True:
            answer = (await self.http.post(BOOT, json=body)).json()
            self._apply(answer)
            if answer["cursor"] is None:
                return answer
            body = {"site": SITE, "cursor": answer["cursor"]}

    def _apply(self, answer: dict[str, Any]) -> None:
        for entry in answer["reservations"] + answer["pools"]:
            self.entries[entry["id"]] = entry
        for key in answer["removed"]:
            self.entries.pop(key, None)
        if answer["cursor"] is None or answer["snapshot"]:
            self.version = answer["version"]

    def macs(self) -> set[str]:
        return {e["mac"] for e in self.entries.values() if "mac" in e}


async def set_mac(sessions: Any, interface_id: int, mac: str) -> float:
    async with transaction(sessions) as session:
        row = await session.get_one(RealNetworkInterface, interface_id)
        await interfaces.update_interface(session, row, mac=mac)
    return time.monotonic()


async def measure(base: str, url: str, token: str, ids: list[int], args: Any) -> None:
    engine = create_engine(Settings(database_url=url))
    writers = create_session_factory(engine, writes=True)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            agent = Agent(http)
            started = time.monotonic()
            pages = await agent.snapshot()
            cold = time.monotonic() - started
            started = time.monotonic()
            await agent.snapshot()
            warm = time.monotonic() - started
            print(
                f"snapshot of {len(agent.entries)} entries in {pages} pages: "
                f"first {cold:.2f} s (computes every entry), again {warm:.2f} s"
            )

            latencies = []
            for sample in range(args.samples):
                poll = asyncio.create_task(agent.changes(wait=30))
                await asyncio.sleep(0.2)
                mac = mac_of(0x7F000000 + sample)
                committed = await set_mac(writers, ids[sample % len(ids)], mac)
                await poll
                while mac not in agent.macs():  # (a poll answered just before the commit)
                    await agent.changes(wait=30)
                latencies.append(time.monotonic() - committed)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))]
            print(
                f"change-to-agent latency over {args.samples} changes: "
                f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
            )

            wanted = {mac_of(0x7E000000 + n) for n in range(args.changes)}
            done = asyncio.Event()

            async def follow() -> int:
                polls = 0
                while not (wanted <= agent.macs() and done.is_set()):
                    await agent.changes(wait=2)
                    polls += 1
                return polls

            async def write(offset: int) -> None:
                for n in range(offset, args.changes, args.writers):
                    await set_mac(writers, ids[(n * 7919) % len(ids)], mac_of(0x7E000000 + n))

            following = asyncio.create_task(follow())
            started = time.monotonic()
            await asyncio.gather(*(write(w) for w in range(args.writers)))
            written = time.monotonic()
            done.set()
            polls = await following
            seen = time.monotonic()
            print(
                f"{args.changes} reservation changes by {args.writers} writers: "
                f"{args.changes / (written - started):.0f} commits/s; the agent held them all "
                f"{(seen - written) * 1000:.0f} ms after the last commit "
                f"({args.changes / (seen - started):.0f} changes/s end to end, {polls} polls)"
            )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database")
    parser.add_argument("--reservations", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    base_dir = None
    url = args.database_url
    if url is None:
        url, base_dir = harness.start_cluster()
    try:
        url = Settings(database_url=url).database_url
        migrate.upgrade(Settings(database_url=url))
        token, ids = asyncio.run(populate(Settings(database_url=url), args.reservations))
        with (
            tempfile.TemporaryDirectory(prefix="boot-bench-") as scratch,
            contractor_serve(clean_env(CONTRACTOR_DATABASE_URL=url), Path(scratch)) as base,
        ):
            asyncio.run(measure(base, url, token, ids, args))
    finally:
        if base_dir:
            harness.stop_cluster(base_dir)


if __name__ == "__main__":
    main()
