"""The follower against a real Contractor app: a snapshot in pages, a change arriving in
under a second by long-poll, 410 → a snapshot again, and a restart while Contractor is
away served from the copy on disk."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from subcontractor.boot.backend import BootData
from subcontractor.boot.follower import DATA_FILE, Follower, load_saved
from subcontractor.client import Client
from tests.subcontractor.boot.served import Served, serve_contractor


@pytest.fixture(params=["sqlite", "postgresql"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    """Contractor on SQLite, and on PostgreSQL (where a change reaches the long-poll by the
    commit's NOTIFY alone: the poll's own look is 30 s away)."""
    url = request.getfixturevalue("own_pg_url") if request.param == "postgresql" else None
    async for served in serve_contractor(tmp_path, "198.18.250.0/24", database_url=url):
        yield served


class Seen:
    def __init__(self) -> None:
        self.versions: list[BootData] = []
        self.when: list[float] = []
        self.changed = asyncio.Event()

    async def __call__(self, data: BootData) -> None:
        self.versions.append(data)
        self.when.append(time.monotonic())
        self.changed.set()

    async def next(self, seconds: float = 10) -> BootData:
        await asyncio.wait_for(self.changed.wait(), seconds)
        self.changed.clear()
        return self.versions[-1]


async def test_a_snapshot_in_pages_then_a_change_within_a_second(
    served: Served, tmp_path: Path
) -> None:
    machines = [await served.add_machine() for _ in range(3)]
    client = Client(served.contractor())
    seen = Seen()
    follower = Follower(client, served.site, tmp_path, seen, wait=10, limit=1)
    stop = asyncio.Event()
    running = asyncio.create_task(follower.run(stop))
    try:
        first = await seen.next()
        assert sorted(r.mac for r in first.reservations) == sorted(m.mac for m in machines)
        assert follower.snapshots == 1
        # on disk, whole
        assert load_saved(tmp_path / DATA_FILE, served.site) == first
        await asyncio.sleep(0.3)  # the long-poll is waiting
        added = await served.add_machine()
        committed = time.monotonic()
        second = await seen.next()
        assert seen.when[-1] - committed < 1.0, seen.when[-1] - committed
        assert added.mac in {r.mac for r in second.reservations}
        assert len(second.reservations) == 4
        assert second.version > first.version
        assert follower.snapshots == 1  # a change, not a snapshot
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await client.aclose()


async def test_a_version_not_kept_takes_a_snapshot(served: Served, tmp_path: Path) -> None:
    machine = await served.add_machine()
    client = Client(served.contractor())
    seen = Seen()
    follower = Follower(client, served.site, tmp_path, seen, wait=1)
    follower.version = 10**9  # newer than the site's: 410
    stop = asyncio.Event()
    running = asyncio.create_task(follower.run(stop))
    try:
        data = await seen.next()
        assert [r.mac for r in data.reservations] == [machine.mac]
        assert follower.snapshots == 1
        assert follower.version == data.version < 10**9
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await client.aclose()


async def test_a_restart_while_contractor_is_away_serves_the_copy_on_disk(
    served: Served, tmp_path: Path
) -> None:
    machine = await served.add_machine()
    client = Client(served.contractor())
    seen = Seen()
    stop = asyncio.Event()
    running = asyncio.create_task(Follower(client, served.site, tmp_path, seen).run(stop))
    held = await seen.next()
    stop.set()
    await asyncio.wait_for(running, 15)
    await client.aclose()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        away = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = Client(served.contractor(url=away, request_timeout=1))
    seen = Seen()
    stop = asyncio.Event()
    follower = Follower(client, served.site, tmp_path, seen)
    running = asyncio.create_task(follower.run(stop))
    try:
        data = await seen.next()
        assert data == held
        assert [r.mac for r in data.reservations] == [machine.mac]
        assert follower.ready.is_set()
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await client.aclose()


def test_a_damaged_or_foreign_copy_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / DATA_FILE
    path.write_text("{not json")
    assert load_saved(path, "dc1") is None
    path.write_text(json.dumps({"site": "dc2", "version": 1, "reservations": [], "pools": []}))
    assert load_saved(path, "dc1") is None
    path.write_text(json.dumps({"site": "dc1", "version": 1, "reservations": [{}]}))
    assert load_saved(path, "dc1") is None
    assert load_saved(tmp_path / "none.json", "dc1") is None
