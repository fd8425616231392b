"""Events benchmark: commit-to-subscriber latency and events per second, through a GraphQL
subscription (WebSocket) and through a webhook, against a real `contractor serve`.

The bench process commits inventory changes straight through the services (its own engine),
a WebSocket client subscribes to them, and a local HTTP server receives the webhook
deliveries. Latency is measured from the moment each commit returns to the moment the event
arrives (one clock: everything but the server runs in this process).

    python bench/events_bench.py                      # starts a throwaway PostgreSQL
    python bench/events_bench.py --database-url URL   # an empty PostgreSQL database you own
    python bench/events_bench.py --sqlite             # the embedded default

Targets (2 cores, PostgreSQL): p99 under 1 s; at least 500 events per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import event_writers, harness  # noqa: E402
from bench.harness import Clock, Figure, Series, percentile, postgres, serve  # noqa: E402
from contractor import migrate  # noqa: E402
from contractor.db import create_engine, create_session_factory, transaction  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402
from contractor.services import auth, events  # noqa: E402
from contractor.services import site as sites  # noqa: E402
from contractor.settings import Settings  # noqa: E402

# The throughput phase's writers: a busy Contractor's many clients, each committing a few
# changes per transaction, spread over processes of their own (bench/event_writers.py).
WRITERS = 8
WRITER_PROCESSES = 2
BATCH = 20

SUBSCRIBE = 'subscription { events(filter: {objectTypes: ["site"]}) { objectName } }'


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def note(self, name: str) -> None:
        with self.lock:
            self.at.setdefault(name, time.monotonic())

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for name in self.at if name.startswith(prefix))


def start_receiver(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.note(json.loads(body)["event"]["objectName"])
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", harness.free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


async def subscriber(base: str, token: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    url = base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        ready.set()
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "next":
                arrivals.note(message["payload"]["data"]["events"]["objectName"])


async def raw_notify(url: str, count: int, pace: float) -> list[float]:
    """The floor of a commit's latency: milliseconds from a ``NOTIFY`` (autocommitted) to its
    arrival at a ``LISTEN``ing connection, ``count`` at ``pace``, on plain psycopg."""
    plain = url.replace("+psycopg", "")
    listener = await psycopg.AsyncConnection.connect(plain, autocommit=True)
    sender = await psycopg.AsyncConnection.connect(plain, autocommit=True)
    try:
        await listener.execute("LISTEN bench_floor")
        arrived: dict[str, float] = {}
        sent: dict[str, float] = {}

        async def listen() -> None:
            async for notify in listener.notifies():
                arrived[notify.payload] = time.monotonic()
                if len(arrived) >= count:
                    return

        listening = asyncio.create_task(listen())
        for index in range(count):
            await sender.execute("SELECT pg_notify('bench_floor', %s)", (str(index),))
            sent[str(index)] = time.monotonic()
            await asyncio.sleep(pace)
        await asyncio.wait_for(listening, 30)
        return [(arrived[name] - sent[name]) * 1000 for name in sent]
    finally:
        await listener.close()
        await sender.close()


async def run(
    settings: Settings,
    token: str,
    base: str,
    args: argparse.Namespace,
    rounds: int = 1,
    server_pid: int | None = None,
) -> list[dict[str, Any]]:
    """``rounds`` rounds of latency (one change per commit, paced) and throughput
    (concurrent writers) through one subscription and one webhook target; per round the
    latencies, the writers' commit rate, the rates each pipeline delivered, and the floor
    of the latency (``raw_notify``)."""
    ws_arrivals, hook_arrivals = Arrivals(), Arrivals()
    server, hook_url = start_receiver(hook_arrivals)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await http.post(
            "/graphql",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "query": 'mutation ($u: String!) { createWebhookTarget(name: "bench", url: $u, '
                'filter: {objectTypes: ["site"]}) { __typename } }',
                "variables": {"u": hook_url},
            },
        )
        assert created.json()["data"]["createWebhookTarget"]["__typename"] == "CreatedWebhookTarget"
    ready = asyncio.Event()
    listening = asyncio.create_task(subscriber(base, token, ws_arrivals, ready))
    await ready.wait()
    await asyncio.sleep(0.5)
    engine = create_engine(settings)
    writers = create_session_factory(engine, writes=True)
    committed: dict[str, float] = {}

    async def commit(names: list[str]) -> None:
        async with transaction(writers) as session:
            events.set_actor(session, "bench")
            for name in names:
                await sites.create_site(session, name=name)
        now = time.monotonic()
        for name in names:
            committed[name] = now

    results: list[dict[str, Any]] = []
    pool = event_writers.pool(args.writer_processes)
    try:
        # started and imported before the first round's clock
        loop = asyncio.get_running_loop()
        warming = [
            loop.run_in_executor(pool, event_writers.warm) for _ in range(args.writer_processes)
        ]
        await asyncio.gather(*warming)
        for round_ in range(rounds):
            result: dict[str, Any] = {}
            lat_prefix, tp_prefix = f"r{round_}lat", f"r{round_}tp"
            # latency: one change per transaction, at a steady pace
            for index in range(args.latency_events):
                await commit([f"{lat_prefix}{index}"])
                await asyncio.sleep(args.pace)
            await wait_all(ws_arrivals, hook_arrivals, lat_prefix, args.latency_events)
            for label, arrivals in (("subscription", ws_arrivals), ("webhook", hook_arrivals)):
                lat = [
                    (arrivals.at[n] - committed[n]) * 1000
                    for n in committed
                    if n.startswith(lat_prefix)
                ]
                result[f"{label} latency"] = lat
                print(
                    f"{label:12} latency over {len(lat)} commits: "
                    f"p50 {statistics.median(lat):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, "
                    f"max {max(lat):.1f} ms"
                )
            if settings.database_url.startswith("postgresql"):
                result["notify latency"] = await raw_notify(
                    settings.database_url, args.latency_events, args.pace
                )
            # throughput: concurrent writers in processes of their own, several changes per
            # transaction
            total = args.events
            batch = args.batch
            names = [f"{tp_prefix}{i}" for i in range(total)]
            chunks = [names[i : i + batch] for i in range(0, total, batch)]
            shares = [chunks[p :: args.writer_processes] for p in range(args.writer_processes)]
            per_process = max(1, args.writers // args.writer_processes)
            # CPU: the server's and the writers' (as when they ran in this process)
            measured = [*([server_pid] if server_pid else []), *event_writers.pids(pool)]
            with Clock(measured) as clock:
                serve_cpu = harness.process_tree_seconds(server_pid) if server_pid else 0.0
                written_by = await asyncio.gather(
                    *(
                        loop.run_in_executor(
                            pool, event_writers.write, settings.database_url, share, per_process
                        )
                        for share in shares
                    )
                )
                start = min(w[0] for w in written_by)
                written = max(w[1] for w in written_by)
                for w in written_by:
                    committed.update(w[2])
                done = await wait_all(ws_arrivals, hook_arrivals, tp_prefix, total)
                if server_pid:
                    serve_cpu = harness.process_tree_seconds(server_pid) - serve_cpu
            result["throughput seconds"] = (clock.wall, clock.cpu)
            result["committed per second"] = total / (written - start)
            print(
                f"throughput: {total} events in {len(chunks)} transactions "
                f"({args.writers} writers in {args.writer_processes} processes) committed in "
                f"{written - start:.2f} s ({total / (written - start):.0f}/s); the server's CPU "
                f"{serve_cpu:.1f} s ({serve_cpu / total * 1000:.2f} ms per event)"
            )
            for label, finished in done.items():
                result[f"{label} per second"] = total / (finished - start)
                print(
                    f"{label:12} all {total} received after {finished - start:.2f} s: "
                    f"{total / (finished - start):.0f} events/s"
                )
            results.append(result)
    finally:
        listening.cancel()
        server.shutdown()
        pool.shutdown()
        await engine.dispose()
    return results


async def wait_all(
    ws: Arrivals, hooks: Arrivals, prefix: str, count: int, limit: float = 300.0
) -> dict[str, float]:
    done: dict[str, float] = {}
    deadline = time.monotonic() + limit
    while len(done) < 2:
        for label, arrivals in (("subscription", ws), ("webhook", hooks)):
            if label not in done and arrivals.count(prefix) >= count:
                done[label] = time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {ws.count(prefix)} / {hooks.count(prefix)} of {count}")
        await asyncio.sleep(0.005)
    return done


def against_server(url: str, args: argparse.Namespace, rounds: int = 1) -> list[dict[str, Any]]:
    """``run`` against a `contractor serve` (no foreman) on the empty database ``url``."""
    scratch = tempfile.mkdtemp(prefix="events-bench-")
    settings = Settings(
        database_url=url, auto_migrate=False, argon2_memory_kib=64, argon2_time_cost=1
    )
    foundation_types()
    migrate.upgrade(settings)

    async def admin() -> str:
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine)) as session:
                hasher = settings.password_hasher()
                user = await auth.create_user(
                    session, username="bench", role="admin", hasher=hasher
                )
                return (await auth.create_token(session, user=user, hasher=hasher)).text
        finally:
            await engine.dispose()

    token = asyncio.run(admin())
    environment = {
        "CONTRACTOR_DATABASE_URL": settings.database_url,
        "CONTRACTOR_AUTO_MIGRATE": "false",
        "CONTRACTOR_FOREMAN_ENABLED": "false",
    }
    with serve(environment, cwd=scratch) as (base, server):
        backend = "SQLite" if settings.is_sqlite else "PostgreSQL"
        print(f"database: {backend}; cores: {os.cpu_count()}")
        return asyncio.run(run(settings, token, base, args, rounds, server.pid))


def measure(rounds: int, quick: bool) -> list[Figure]:
    """The figures for bench/run_all.py (a fresh PostgreSQL database): per round each
    pipeline's p99 beside a raw NOTIFY -> LISTEN round trip's, and each pipeline's rate
    beside the rate the bench's writers committed at (the pipeline can go no faster)."""
    args = argparse.Namespace(
        latency_events=30 if quick else 300,
        pace=0.01,
        events=300 if quick else 5000,
        batch=BATCH,
        writers=WRITERS,
        writer_processes=WRITER_PROCESSES,
    )
    with postgres() as url:
        results = against_server(url, args, rounds)
    figures: list[Figure] = []
    for label in ("subscription", "webhook"):
        latency = Figure(
            f"commit -> {label} p99",
            unit="ms",
            note=f"{args.latency_events} paced commits",
            target="< 100 ms",
        )
        latency.floor = Series("NOTIFY -> LISTEN p99", note="psycopg")
        rate = Figure(
            f"{label} events/s",
            unit="/s",
            better="higher",
            note=f"{args.events} events, {args.writers} writers in {args.writer_processes} "
            f"processes, {args.batch} per commit",
            target="≥ 1,000/s when the writers commit that fast",
        )
        rate.floor = Series("the writers' own commit rate")
        for result in results:
            latency.add(percentile(result[f"{label} latency"], 0.99))
            latency.floor.add(percentile(result["notify latency"], 0.99))
            rate.add(result[f"{label} per second"], *result["throughput seconds"])
            rate.floor.add(result["committed per second"])
        figures += [latency, rate]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database")
    parser.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    parser.add_argument("--latency-events", type=int, default=300)
    parser.add_argument("--pace", type=float, default=0.01, help="seconds between commits")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=BATCH, help="changes per transaction")
    parser.add_argument("--writers", type=int, default=WRITERS, help="concurrent transactions")
    parser.add_argument(
        "--writer-processes", type=int, default=WRITER_PROCESSES, help="the writers' processes"
    )
    args = parser.parse_args()
    if args.sqlite:
        scratch = tempfile.mkdtemp(prefix="events-bench-")
        against_server(f"sqlite:///{scratch}/bench.sqlite3", args)
    else:
        with postgres(args.database_url) as url:
            against_server(url, args)
    usage = os.times()
    print(f"bench process CPU: {usage.user + usage.system:.1f} s")


if __name__ == "__main__":
    main()
