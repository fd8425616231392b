"""Foreman benchmark: jobs with 10 remote steps each, answered over real HTTP.

Starts `contractor serve` (uvicorn, one process, its foreman stepping jobs) on PostgreSQL,
creates JOBS simulated foundations with a create job of 10 remote ``power_state`` steps,
and lets N concurrent subcontractor clients long-poll the task API and answer at once.
Reports task round trips per second, job completions per second and the latency from
posting a result to receiving the job's next task (p50, p99).

    python bench/foreman_bench.py                      # starts a throwaway PostgreSQL
    python bench/foreman_bench.py --database-url URL   # an empty database you own
    python bench/foreman_bench.py --jobs 100 --clients 8
    python bench/foreman_bench.py --foreman-process    # jobs stepped by `contractor foreman`
    python bench/foreman_bench.py --workers 2          # `contractor serve --workers 2`

Targets (2 cores, PostgreSQL): at least 300 task round trips per second, and p99
result-to-next-task under 100 ms with long-poll.

``measure`` (what bench/run_all.py calls) gives the round trips per second round by round
beside their ceiling, measured right after in the same database: the same statements
replayed without the server (``floor_round_trips``: the task API's own claim and lock
statements, a step write of the same shape, the events this run's results inserted per
round trip, their NOTIFY and the COMMIT, pipelined as the server sends them), with the same
number of clients; and the result -> next task latency with 8 jobs at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Json
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.harness import Clock, Figure, Series, postgres, serve  # noqa: E402
from contractor import migrate  # noqa: E402
from contractor.db import (  # noqa: E402
    POSTGRESQL_OPTIONS,
    create_engine,
    create_session_factory,
    transaction,
)
from contractor.models import Job  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402
from contractor.services import blueprint as bps  # noqa: E402
from contractor.services import (  # noqa: E402
    building,
    hotpath,
    jobs,
    site,
)
from contractor.services import tasks as task_service  # noqa: E402
from contractor.services.events import outbox  # noqa: E402
from contractor.settings import Settings  # noqa: E402

STEPS = 10
SCRIPT = "foundation.power_state()\n" * STEPS


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User and system CPU time of process ``pid`` so far (Linux); with ``reaped``, also
    that of its children that have ended."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11 : 15 if reaped else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_seconds(pid: int) -> float:
    """CPU time of the server process and any processes it started."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in children)


def postgres_seconds(base_dir: str | None) -> float:
    """CPU time of the throwaway PostgreSQL's processes now running (0 for --database-url)."""
    if base_dir is None:
        return 0.0
    postmaster = int((Path(base_dir) / "data" / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    total = cpu_seconds(postmaster, reaped=True)
    for child in children:
        with contextlib.suppress(OSError):  # a backend that ended meanwhile
            total += cpu_seconds(int(child))
    return total


def wait_for_server(port: int) -> None:
    """Until `contractor serve` on ``port`` answers (at most 30 s)."""
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)


async def populate(settings: Settings, count: int) -> str:
    """A site, a blueprint whose create script makes 10 remote calls, ``count`` located
    simulated foundations; returns a subcontractor token."""
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            here = await site.create_site(session, name="bench")
            blueprint = await bps.create_foundation_blueprint(
                session, name="sim", foundation_types=["simulated"]
            )
            script = await bps.create_script(session, name="ten-steps", source=SCRIPT)
            await bps.link_script(session, blueprint=blueprint, role="create", script=script)
            for n in range(count):
                foundation = await building.create_foundation(
                    session, locator=f"sim{n}", site=here, blueprint=blueprint, type="simulated"
                )
                await building.set_located(session, foundation)
            new = await task_service.create_subcontractor_token(
                session, name="bench", sites=["bench"], modules=["simulated"]
            )
            return new.text
    finally:
        await engine.dispose()


async def start_jobs(settings: Settings, first: int, count: int) -> None:
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            for n in range(first, first + count):
                foundation = await building.get_foundation(session, f"sim{n}")
                await jobs.create_job(
                    session, target=foundation, script_name="create", creator="bench"
                )
    finally:
        await engine.dispose()


async def done_count(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            query = select(func.count()).select_from(Job).where(Job.state == "done")
            return int((await session.execute(query)).scalar_one())
    finally:
        await engine.dispose()


class Http:
    """A minimal HTTP/1.1 keep-alive JSON client on one connection: the bench clients share
    the server's 2 cores, so they should cost as little CPU as a subcontractor's would on its
    own machine (httpx spends about 1.5 ms per round trip here)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = json.loads(await self.reader.readexactly(length)) if length else None
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status} {payload}")
        return payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def drive(
    port: int, token: str, settings: Settings, first: int, count: int, clients: int
) -> dict[str, Any]:
    """Start ``count`` jobs and answer their tasks with ``clients`` long-polling clients."""
    total = count * STEPS
    answered = 0
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    finished = asyncio.Event()

    async def client(http: Http) -> None:
        nonlocal answered
        while not finished.is_set():
            polled = await http.post(
                "/api/v1/subcontractor/poll",
                {"site": "bench", "modules": ["simulated"], "max_tasks": 4, "wait": 2},
            )
            now = time.perf_counter()
            for task in polled["tasks"]:
                job_id = task["job_id"]
                if job_id in sent_at:
                    latencies.append(now - sent_at.pop(job_id))
                sent_at[job_id] = time.perf_counter()
                await http.post(
                    "/api/v1/subcontractor/result",
                    {
                        "task_id": task["task_id"],
                        "cookie": task["cookie"],
                        "lease": task["lease"],
                        "data": {"state": "off"},
                    },
                )
                answered += 1
                if answered >= total:
                    finished.set()

    connections = [Http("127.0.0.1", port, token) for _ in range(clients)]
    try:
        start = time.perf_counter()
        await start_jobs(settings, first, count)
        runners = [asyncio.create_task(client(http)) for http in connections]
        waiting = asyncio.create_task(finished.wait())
        done, _ = await asyncio.wait(
            {waiting, *runners}, timeout=600, return_when=asyncio.FIRST_COMPLETED
        )
        for runner in runners:
            if runner in done:
                runner.result()  # a client failed: show why
        if waiting not in done:
            raise TimeoutError("the round trips did not finish within 600 s")
        round_trips_done = time.perf_counter()
        while await done_count(settings) < first + count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        jobs_done = time.perf_counter()
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    finally:
        for http in connections:
            http.close()
    latencies.sort()
    return {
        "round_trips": total,
        "round_trips_per_second": total / (round_trips_done - start),
        "jobs_per_second": count / (jobs_done - start),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "seconds": jobs_done - start,
    }


_EVENT_SAMPLE = """SELECT kind, object_type, object_id, object_name, site_id, blueprint_id,
    actor, changed, payload FROM event ORDER BY id DESC LIMIT %s"""
_SEED = """INSERT INTO task (job_id, site_id, module, function, parameters, cookie, state,
        attempt, available_at, created)
    SELECT DISTINCT ON (job_id) job_id, site_id, module, function, parameters, cookie, 'open', 0,
        now(), now()
    FROM task WHERE job_id = ANY(%s) ORDER BY job_id, id DESC"""
_STEP = """WITH w0 AS (UPDATE job SET runner_state = %(runner_state)s, line = %(line)s,
        updated = %(now)s WHERE id = %(job)s),
    w1 AS (UPDATE task SET state = 'done', finished_at = %(now)s WHERE id = %(task)s) """
_NEXT = """INSERT INTO task (job_id, site_id, module, function, parameters, cookie, state,
        attempt, available_at, created)
    VALUES (%(job)s, %(site)s, %(module)s, %(function)s, %(parameters)s, %(cookie)s, 'open', 0,
        %(now)s, %(now)s) RETURNING id"""


async def floor_round_trips(
    url: str, job_ids: list[int], clients: int, events_per_trip: int
) -> float:
    """Round trips per second of the task API's statements without the server: per round
    trip a claim (autocommit, the server's statement), then in one transaction the lock of
    job and task (the server's statement), one statement writing the step (the job, the
    answered task, the next task), and the events, their order lock and NOTIFY pipelined
    with the COMMIT (the server's statement builder); ``clients`` at once, each job's 10
    steps in turn. The jobs are this run's finished ones, their tasks opened again."""
    plain = url.replace("+psycopg", "")
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as setup:
        await setup.execute(_SEED, (job_ids,))
        sample = await (await setup.execute(_EVENT_SAMPLE, (max(1, events_per_trip),))).fetchall()
    events = [dict(zip(_EVENT_FIELDS, row, strict=True)) for row in sample]
    claim, lock = hotpath._CLAIM.psycopg(), hotpath._LOCK.psycopg()
    runner_state = list(hotpath._JOB.c.keys()).index("runner_state")
    width = len(hotpath._JOB.c)
    steps = dict.fromkeys(job_ids, 1)
    total = len(job_ids) * STEPS
    answered = 0

    async def client() -> None:
        nonlocal answered
        # with the server's session settings (the same plans for the same statements)
        poller = await psycopg.AsyncConnection.connect(
            plain, autocommit=True, options=POSTGRESQL_OPTIONS
        )
        writer = await psycopg.AsyncConnection.connect(plain, options=POSTGRESQL_OPTIONS)
        try:
            while answered < total:
                now = dt.datetime.now(dt.UTC)
                parameters = {
                    **claim.defaults,
                    "prefix": "floor",
                    "holder": "bench",
                    "expires": now + dt.timedelta(minutes=5),
                    "site": "bench",
                    "modules": ["simulated"],
                    "now": now,
                    "limit": 4,
                }
                leased = await (await poller.execute(claim.sql, parameters)).fetchall()
                if not leased:
                    await asyncio.sleep(0.002)
                    continue
                for task in leased:
                    await answer(writer, task)
                    answered += 1
        finally:
            await poller.close()
            await writer.close()

    async def answer(writer: Any, task: Any) -> None:
        task_id, job_id = task[0], task[1]
        row = await (
            await writer.execute(lock.sql, {**lock.defaults, "task_id": task_id})
        ).fetchone()
        now = dt.datetime.now(dt.UTC)
        values = {"runner_state": row[runner_state], "line": steps[job_id], "now": now}
        values.update(job=job_id, task=task_id, site=row[width + 2], module=task[2])
        values.update(function=task[3], parameters=Json(task[4]), cookie=task[5])
        steps[job_id] += 1
        final = _NEXT if steps[job_id] <= STEPS else "SELECT NULL"
        await writer.execute(_STEP + final, values)
        rows = [{**event, "at": now, "object_id": job_id} for event in events]
        statement = outbox._postgresql_statement([], rows)
        async with writer.pipeline():
            await writer.execute(*statement)
            await writer.execute("COMMIT")

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return total / (time.perf_counter() - start)


_EVENT_FIELDS = (
    "kind",
    "object_type",
    "object_id",
    "object_name",
    "site_id",
    "blueprint_id",
    "actor",
    "changed",
    "payload",
)


async def scalar(url: str, sql: str, *parameters: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(url.replace("+psycopg", "")) as connection:
        row = await (await connection.execute(sql, parameters or None)).fetchone()
        assert row is not None
        return row[0]


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py: one `contractor serve` on a fresh PostgreSQL
    database, per round ``jobs`` jobs (round trips/s, then its floor) and 8 jobs (latency)."""
    count, clients, few = (6, 2, 2) if quick else (200, 8, 8)
    trips = Figure(
        f"task round trips, {count} jobs x {STEPS} steps",
        unit="/s",
        better="higher",
        note=f"{clients} clients, long-poll",
        target="≥ 25% of floor",
    )
    trips.floor = Series("same statements, psycopg, no server", note=f"{clients} clients")
    latency = Figure(f"result -> next task p99, {few} jobs", unit="ms", target="< 100 ms every run")
    median = Figure(f"result -> next task p50, {few} jobs", unit="ms")
    with postgres() as url:
        settings = Settings(database_url=url, auto_migrate=False)
        foundation_types()
        migrate.upgrade(settings)
        token = asyncio.run(populate(settings, rounds * (count + few)))
        with serve({"CONTRACTOR_DATABASE_URL": url}) as (base, server):
            port = int(base.rsplit(":", 1)[1])
            first = 0
            for _ in range(rounds):
                events = asyncio.run(scalar(url, "SELECT count(*) FROM event"))
                with Clock([server.pid]) as clock:
                    figures = asyncio.run(drive(port, token, settings, first, count, clients))
                trips.add(figures["round_trips_per_second"], clock.wall, clock.cpu)
                events = asyncio.run(scalar(url, "SELECT count(*) FROM event")) - events
                ids = asyncio.run(
                    scalar(
                        url,
                        "SELECT array_agg(id) FROM (SELECT id FROM job ORDER BY id DESC"
                        " LIMIT %s) AS j",
                        count,
                    )
                )
                per_trip = round(events / (count * STEPS))
                with Clock() as clock:
                    ceiling = asyncio.run(floor_round_trips(url, ids, clients, per_trip))
                trips.floor.add(ceiling, clock.wall, clock.cpu)
                trips.floor.note = f"{clients} clients, {per_trip} event rows per round trip"
                first += count
                with Clock([server.pid]) as clock:
                    figures = asyncio.run(drive(port, token, settings, first, few, clients))
                latency.add(figures["p99_ms"], clock.wall, clock.cpu)
                median.add(figures["p50_ms"], clock.wall, clock.cpu)
                first += few
    return [trips, latency, median]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: a throwaway one)"
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="`contractor serve --workers`")
    parser.add_argument(
        "--foreman-process",
        action="store_true",
        help="step jobs and deliver webhooks in a separate `contractor foreman` (serve only "
        "answers HTTP); its CPU counts as the server's",
    )
    args = parser.parse_args()
    base_dir = None
    url = args.database_url
    if url is None:
        url, base_dir = harness.start_cluster()
    server = None
    foreman = None
    try:
        settings = Settings(database_url=url, auto_migrate=False)
        foundation_types()
        migrate.upgrade(settings)
        token = asyncio.run(populate(settings, args.jobs))
        port = harness.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
        env.update(
            CONTRACTOR_DATABASE_URL=url,
            CONTRACTOR_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
        )
        if args.foreman_process:
            foreman = subprocess.Popen([sys.executable, "-m", "contractor", "foreman"], env=env)
            env.update(CONTRACTOR_FOREMAN_ENABLED="false", CONTRACTOR_WEBHOOKS_ENABLED="false")
        server = subprocess.Popen(
            [
                sys.executable,
                *("-m", "contractor", "serve", "--port", str(port)),
                *("--workers", str(args.workers)),
            ],
            env=env,
        )
        processes = [server] if foreman is None else [server, foreman]
        wait_for_server(port)
        server_cpu = sum(server_seconds(process.pid) for process in processes)
        database_cpu = postgres_seconds(base_dir)
        client_cpu = time.process_time()
        figures = asyncio.run(drive(port, token, settings, 0, args.jobs, args.clients))
        server_cpu = sum(server_seconds(process.pid) for process in processes) - server_cpu
        client_cpu = time.process_time() - client_cpu
        # PostgreSQL's backends stay open until the server stops: count them while they run
        database_cpu = postgres_seconds(base_dir) - database_cpu
    finally:
        for process in (server, foreman):
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
        if base_dir:
            harness.stop_cluster(base_dir)
    print(
        f"{args.jobs} jobs x {STEPS} remote steps, {args.clients} clients (long-poll), "
        f"`contractor serve --workers {args.workers}`"
        f"{' and `contractor foreman`' if args.foreman_process else ''} on PostgreSQL, "
        f"{figures['seconds']:.1f} s"
    )
    print(f"task round trips/s  {figures['round_trips_per_second']:7.0f}   (target >= 300)")
    print(f"job completions/s   {figures['jobs_per_second']:7.1f}")
    trips = figures["round_trips"]
    database = f"PostgreSQL {1000 * database_cpu / trips:.2f} ms, " if base_dir else ""
    print(
        f"CPU per round trip  server {1000 * server_cpu / trips:.2f} ms, {database}"
        f"bench clients {1000 * client_cpu / trips:.2f} ms "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"result -> next task ({args.jobs} jobs at once) p50 {figures['p50_ms']:.1f} ms  "
        f"p99 {figures['p99_ms']:.1f} ms   (target p99 < 100 ms; with more jobs than the "
        "server steps per second this is queueing: run --jobs 4 for the unsaturated figure)"
    )


if __name__ == "__main__":
    main()
