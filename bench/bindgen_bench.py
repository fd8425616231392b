"""DNS zones for 100,000 hosts across 20 zones: full export, re-export after one change, and
bindgen's render time against writing the same records with dnspython directly.

    .venv/bin/python bench/bindgen_bench.py                     # embedded SQLite (temp file)
    .venv/bin/python bench/bindgen_bench.py --hosts 20000       # smaller
    .venv/bin/python bench/bindgen_bench.py --database-url postgresql://user@host/db

The inventory: a parent zone with 20 child zones, one site per child zone with a /16 block,
and per host a manual Foundation, a Structure and one primary address (two A records: the
bare hostname and eth0.<hostname>, and one PTR): 41 zones, 300,000 records. The rows are
bulk-inserted (the services' per-row checks would dominate the set-up, not the bench).

Export: ``publish_zones`` (every query, every record, every content hash, the serials) and
``export_zones`` (render, named-checkzone when installed, atomic replace) into an empty
directory; then one address moves and the export runs again: only its forward zone and its
reverse zone may be rewritten. Render: the 20 forward zones as plain ``bindgen.ZoneData``,
against the same records put into a ``dns.zone.Zone`` with ``dns.rdata.from_text`` (how
dnspython's documentation builds zones) and with rdata constructors (the fastest way).

A publish with nothing changed (no DNS-relevant event since the last one) answers from the
rows the last publish stored, without reading the inventory: the change is moved through
the ORM, so the outbox writes the event that tells the next publish to read it.

Targets: full export under 10 s, one change under 1 s, a publish with nothing changed under
0.1 s, render within 1.5x of dnspython.

``measure`` (what bench/run_all.py calls) gives the same figures round by round: the
publish with nothing changed beside its floor (reading the zones' stored rows), each
round's re-export after one change beside its floor: writing and ``named-checkzone``-ing
just the zones it rewrote, with the same code the export uses.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.zone
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bindgen
from bench.harness import Clock, Figure, Series
from contractor import migrate
from contractor.db import create_engine, create_session_factory, transaction
from contractor.models import Address, BaseAddress, Foundation, Structure, utcnow
from contractor.models.directory import PublishedZone
from contractor.plugins import foundation_types
from contractor.plugins.manual import ManualFoundation
from contractor.services import blueprint as bp_service
from contractor.services import directory, network
from contractor.services import dns as dns_service
from contractor.services import site as site_service
from contractor.settings import Settings

ZONES = 20
NS = "ns1.example.net"
# What a publish with nothing changed cannot do without: the zones' stored rows.
STORED_ROWS = select(
    PublishedZone.name, PublishedZone.serial, PublishedZone.content_hash, PublishedZone.text
)


async def populate(session: AsyncSession, hosts: int, tag: str) -> None:
    parent = await directory.create_zone(session, name=f"b{tag}", nameservers=[NS])
    fbp = await bp_service.create_foundation_blueprint(
        session, name=f"fbp{tag}", foundation_types=["manual"]
    )
    sbp = await bp_service.create_structure_blueprint(
        session, name=f"sbp{tag}", foundation_blueprints=[fbp]
    )
    now = utcnow()
    next_id = 1 + max(
        (await session.execute(select(func.max(Foundation.id)))).scalar() or 0,
        (await session.execute(select(func.max(Structure.id)))).scalar() or 0,
    )
    per_zone = -(-hosts // ZONES)
    for index in range(ZONES):
        zone = await directory.create_zone(session, name=f"dc{index:02d}", parent=parent)
        site = await site_service.create_site(session, name=f"dc{index:02d}{tag}", zone=zone)
        block = await network.create_address_block(
            session, site=site, name="hosts", subnet=f"10.{index}.0.0/16"
        )
        count = min(per_zone, hosts - index * per_zone)
        ids = range(next_id, next_id + count)
        next_id += count
        await session.execute(
            insert(Foundation.__table__),
            [
                {
                    "id": i,
                    "locator": f"n{tag}-{i}",
                    "type": "manual",
                    "site_id": site.id,
                    "blueprint_id": fbp.id,
                    "created": now,
                    "updated": now,
                }
                for i in ids
            ],
        )
        await session.execute(insert(ManualFoundation.__table__), [{"id": i} for i in ids])
        await session.execute(
            insert(Structure.__table__),
            [
                {
                    "id": i,
                    "hostname": f"h{n}",
                    "site_id": site.id,
                    "blueprint_id": sbp.id,
                    "foundation_id": i,
                    "config_uuid": str(uuid.uuid4()),
                    "config_values": {},
                    "created": now,
                    "updated": now,
                }
                for n, i in enumerate(ids)
            ],
        )
        await session.execute(
            insert(BaseAddress.__table__),
            [
                {
                    "kind": "address",
                    "address_block_id": block.id,
                    "offset": n + 1,
                    "structure_id": i,
                    "interface_name": "eth0",
                    "alias_index": 0,
                    "is_primary": True,
                    "created": now,
                    "updated": now,
                }
                for n, i in enumerate(ids)
            ],
        )


async def move_one_address(session: AsyncSession, back: bool = False) -> None:
    """Move the most recently created address one offset up (past every other one), or
    ``back`` where it was: through the ORM, as the services change it, so the outbox writes
    its event (what tells a publish something changed)."""
    address = (
        await session.execute(select(Address).order_by(Address.id.desc()).limit(1))
    ).scalar_one()
    address.offset = (address.offset or 0) + (-60000 if back else 60000)
    await session.flush()


def _cpu() -> float:
    """CPU seconds used by this process and its finished children: on a busy machine the
    wall-clock figures include waiting for a core, these do not."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, seconds: float, target: float | None = None) -> None:
    verdict = ""
    if target is not None:
        verdict = f"  (target < {target:.1f} s: {'met' if seconds < target else 'MISSED'})"
    print(f"{label:<52} {seconds:8.3f} s{verdict}")


async def export_bench(settings: Settings, hosts: int, out: Path, processes: int | None) -> None:
    foundation_types()
    migrate.upgrade(settings)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    tag = uuid.uuid4().hex[:6]
    try:
        start = time.perf_counter()
        async with transaction(sessions) as session:
            await populate(session, hosts, tag)
        timed(
            f"set-up: {hosts:,} hosts in {ZONES} zones (bulk insert)", time.perf_counter() - start
        )

        async def export_once(label: str, target: float | None) -> dns_service.ExportResult:
            cpu = _cpu()
            start = time.perf_counter()
            async with transaction(sessions) as session:
                zones = await dns_service.publish_zones(session)
            published = time.perf_counter()
            result = await asyncio.to_thread(
                functools.partial(dns_service.export_zones, processes=processes), zones, out
            )
            done = time.perf_counter()
            timed(f"{label}: publish (query, build, hash, serials)", published - start)
            timed(f"{label}: render + check + write {len(result.written)} zones", done - published)
            timed(f"{label}: total", done - start, target)
            print(f"{'':<52} {_cpu() - cpu:8.3f} s CPU (this process, workers, named-checkzone)")
            assert result.ok, result.invalid
            return result

        checker = dns_service.named_checkzone()
        print(f"named-checkzone: {checker or 'not installed (files are not checked)'}")
        full = await export_once("full export", 10.0)
        print(f"  {len(full.written)} zone files written")
        same = await export_once("re-export, nothing changed", 0.1)
        assert same.written == (), same.written
        async with transaction(sessions) as session:
            await move_one_address(session)
        one = await export_once("re-export after one changed address", 1.0)
        print(f"  rewritten: {', '.join(one.written)}")
        assert len(one.written) == 2, one.written
        assert [name for name in one.written if "in-addr" in name], one.written
    finally:
        await engine.dispose()


async def export_rounds(
    sessions: async_sessionmaker[AsyncSession], out: Path, rounds: int
) -> list[Figure]:
    """Per round: a full export into an empty directory; a publish with nothing changed
    beside its floor (reading the zones' stored rows), and a re-export with nothing changed;
    one after one changed address beside its floor (the rewritten zones written and checked
    again, with the export's own code)."""
    full = Figure("full export (publish, render, check, write)", target="< 10 s")
    publish = Figure("publish, nothing changed", target="< 0.1 s")
    publish.floor = Series("read the stored zone rows (serial, hash, text)")
    same = Figure("publish + export, nothing changed", target="< 0.1 s")
    one = Figure("re-export after one changed address", target="≤ 3x floor")
    one.floor = Series("write + named-checkzone the 2 changed zones")

    async def export(into: Path) -> tuple[list[dns_service.DnsZone], dns_service.ExportResult]:
        async with transaction(sessions) as session:
            zones = await dns_service.publish_zones(session)
        result = await asyncio.to_thread(dns_service.export_zones, zones, into)
        assert result.ok, result.invalid
        return zones, result

    program = dns_service.named_checkzone()
    for index in range(rounds):
        into = out / f"round{index}"
        with Clock() as clock:
            _, written = await export(into)
        full.add(clock.wall, clock.wall, clock.cpu)
        # (a name of its own: rebinding ``zones`` would free the last round's records,
        # 300,000 of them, inside the clock)
        with Clock() as clock:
            async with transaction(sessions) as session:
                unchanged = await dns_service.publish_zones(session)
        assert all(zone.data is None for zone in unchanged)  # answered from the stored rows
        publish.add(clock.wall, clock.wall, clock.cpu)
        with Clock() as clock:
            async with transaction(sessions) as session:
                stored = (await session.execute(STORED_ROWS)).all()
        assert len(stored) == len(unchanged)
        publish.floor.add(clock.wall, clock.wall, clock.cpu)
        with Clock() as clock:
            _, written = await export(into)
        assert written.written == (), written.written
        same.add(clock.wall, clock.wall, clock.cpu)
        async with transaction(sessions) as session:
            await move_one_address(session, back=index % 2 == 1)
        with Clock() as clock:
            zones, written = await export(into)
        assert len(written.written) == 2, written.written
        one.add(clock.wall, clock.wall, clock.cpu)
        changed = [zone for zone in zones if zone.name in written.written]
        texts = [(into / zone.file_name).read_text() for zone in changed]
        with Clock() as clock:
            for zone, text in zip(changed, texts, strict=True):
                problem = dns_service._write_and_check(program, zone, into / zone.file_name, text)
                assert problem is None, problem
        one.floor.add(clock.wall, clock.wall, clock.cpu)
    return [full, publish, same, one]


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py, on the embedded SQLite default (a temporary file)."""
    hosts = 1_000 if quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="bindgen-bench-"))
    try:
        settings = Settings(database_url=f"sqlite:///{work / 'bench.sqlite3'}")

        async def run() -> list[Figure]:
            foundation_types()
            migrate.upgrade(settings)
            engine = create_engine(settings)
            try:
                sessions = create_session_factory(engine)
                async with transaction(sessions) as session:
                    await populate(session, hosts, uuid.uuid4().hex[:6])
                return await export_rounds(sessions, work / "zones", rounds)
            finally:
                await engine.dispose()

        figures = asyncio.run(run())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figure in figures:
        figure.note = f"{hosts:,} hosts, 41 zones" if not figure.note else figure.note
    return figures


def plain_zones(hosts: int) -> list[bindgen.ZoneData]:
    soa = bindgen.SOA(NS + ".", "hostmaster.example.net.", 86400, 7200, 36000, 3600)
    per_zone = -(-hosts // ZONES)
    zones = []
    for index in range(ZONES):
        records: list[bindgen.Record] = []
        for n in range(min(per_zone, hosts - index * per_zone)):
            ip = f"10.{index}.{(n + 1) >> 8}.{(n + 1) & 255}"
            records.append(bindgen.Record(f"h{n}", "A", ip))
            records.append(bindgen.Record(f"eth0.h{n}", "A", ip))
        zones.append(bindgen.ZoneData(f"dc{index:02d}.bench", soa, (NS + ".",), tuple(records)))
    return zones


def raw_from_text(zone: bindgen.ZoneData) -> str:
    """The same zone through dnspython as its documentation builds one."""
    origin = dns.name.from_text(zone.origin + ".")
    built = dns.zone.Zone(origin)
    soa = zone.soa
    built.find_rdataset("@", "SOA", create=True).add(
        dns.rdata.from_text(
            "IN",
            "SOA",
            f"{soa.mname} {soa.rname} 1 {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}",
        ),
        zone.ttl,
    )
    for server in zone.nameservers:
        built.find_rdataset("@", "NS", create=True).add(
            dns.rdata.from_text("IN", "NS", server), zone.ttl
        )
    for record in zone.records:
        rdataset = built.find_rdataset(record.name, record.type, create=True)
        rdataset.add(dns.rdata.from_text("IN", record.type, record.data, origin=origin), zone.ttl)
    return built.to_text(sorted=True, relativize=True, want_origin=True)


def raw_constructors(zone: bindgen.ZoneData) -> str:
    """The same zone through dnspython's rdata constructors and its node map (fastest)."""
    origin = dns.name.from_text(zone.origin + ".")
    built = dns.zone.Zone(origin)
    soa = zone.soa
    built.find_rdataset("@", "SOA", create=True).add(
        dns.rdata.from_text(
            "IN",
            "SOA",
            f"{soa.mname} {soa.rname} 1 {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}",
        ),
        zone.ttl,
    )
    for server in zone.nameservers:
        built.find_rdataset("@", "NS", create=True).add(
            dns.rdata.from_text("IN", "NS", server), zone.ttl
        )
    a_type, in_class = dns.rdatatype.A, dns.rdataclass.IN
    for record in zone.records:
        name = dns.name.Name(record.name.encode().split(b"."))
        node = built.nodes.get(name)
        if node is None:
            node = built.nodes[name] = dns.node.Node()
        rdataset = node.find_rdataset(in_class, a_type, create=True)
        rdataset.add(dns.rdtypes.IN.A.A(in_class, a_type, record.data), zone.ttl)
    return built.to_text(sorted=True, relativize=True, want_origin=True)


def best_of(rounds: int, work: Any) -> float:
    """The fastest of ``rounds`` runs, the cyclic collector paused for every contender
    (bindgen pauses it itself; the dnspython baselines get the same advantage)."""
    times = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times)


def render_bench(hosts: int, rounds: int) -> None:
    zones = plain_zones(hosts)
    records = sum(len(z.records) for z in zones)
    ours = best_of(rounds, lambda: [bindgen.render_zone(z, 1) for z in zones])
    documented = best_of(rounds, lambda: [raw_from_text(z) for z in zones])
    fastest = best_of(rounds, lambda: [raw_constructors(z) for z in zones])
    assert bindgen.render_zone(zones[0], 1).count(" IN A ") == raw_from_text(zones[0]).count(
        " IN A "
    )
    print(f"render {ZONES} forward zones, {records:,} A records (best of {rounds}):")
    timed("  bindgen.render_zone (checks, sorting, hashing-free)", ours)
    timed("  dnspython, rdata.from_text + Zone.to_text", documented)
    timed("  dnspython, rdata constructors + Zone.to_text", fastest)
    ratio_doc, ratio_fast = ours / documented, ours / fastest
    print(f"  ratio bindgen / dnspython from_text:     {ratio_doc:5.2f}x")
    verdict = "met" if ratio_fast <= 1.5 else "MISSED"
    print(
        f"  ratio bindgen / dnspython constructors:  {ratio_fast:5.2f}x  (target <= 1.5x: ", end=""
    )
    print(f"{verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=3, help="render rounds (best counts)")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument(
        "--processes", type=int, default=None, help="render processes (default: automatic)"
    )
    arguments = parser.parse_args()
    if not arguments.skip_render:
        render_bench(arguments.hosts, arguments.rounds)
    if arguments.skip_export:
        return
    work = Path(tempfile.mkdtemp(prefix="bindgen-bench-"))
    try:
        url = arguments.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
        print(f"export ({url.split(':', 1)[0]}):")
        settings = Settings(database_url=url)
        asyncio.run(export_bench(settings, arguments.hosts, work / "zones", arguments.processes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
