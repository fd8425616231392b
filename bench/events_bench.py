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
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contractor import migrate  # noqa: E402
from contractor.db import create_engine, create_session_factory, transaction  # noqa: E402
from contractor.plugins import foundation_types  # noqa: E402
from contractor.services import auth, events  # noqa: E402
from contractor.services import site as sites  # noqa: E402
from contractor.settings import Settings  # noqa: E402

SUBSCRIBE = 'subscription { events(filter: {objectTypes: ["site"]}) { objectName } }'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
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


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(settings: Settings, token: str, base: str, args: argparse.Namespace) -> None:
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

    try:
        # latency: one change per transaction, at a steady pace
        for index in range(args.latency_events):
            await commit([f"lat{index}"])
            await asyncio.sleep(args.pace)
        await wait_all(ws_arrivals, hook_arrivals, "lat", args.latency_events)
        for label, arrivals in (("subscription", ws_arrivals), ("webhook", hook_arrivals)):
            lat = [(arrivals.at[n] - committed[n]) * 1000 for n in committed if n.startswith("lat")]
            print(
                f"{label:12} latency over {len(lat)} commits: "
                f"p50 {statistics.median(lat):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, "
                f"max {max(lat):.1f} ms"
            )
        # throughput: concurrent writers, several changes per transaction
        total = args.events
        batch = args.batch
        names = [f"tp{i}" for i in range(total)]
        chunks = [names[i : i + batch] for i in range(0, total, batch)]
        queue: asyncio.Queue[list[str]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)

        async def writer() -> None:
            while not queue.empty():
                await commit(queue.get_nowait())

        start = time.monotonic()
        await asyncio.gather(*(writer() for _ in range(args.writers)))
        written = time.monotonic()
        done = await wait_all(ws_arrivals, hook_arrivals, "tp", total)
        print(
            f"throughput: {total} events in {len(chunks)} transactions "
            f"({args.writers} writers) committed in {written - start:.2f} s "
            f"({total / (written - start):.0f}/s)"
        )
        for label, finished in done.items():
            print(
                f"{label:12} all {total} received after {finished - start:.2f} s: "
                f"{total / (finished - start):.0f} events/s"
            )
    finally:
        listening.cancel()
        server.shutdown()
        await engine.dispose()


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="an empty PostgreSQL database")
    parser.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    parser.add_argument("--latency-events", type=int, default=300)
    parser.add_argument("--pace", type=float, default=0.01, help="seconds between commits")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10, help="changes per transaction")
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    pg_base = None
    scratch = tempfile.mkdtemp(prefix="events-bench-")
    url = args.database_url
    if args.sqlite:
        url = f"sqlite:///{scratch}/bench.sqlite3"
    elif url is None:
        out = subprocess.run(
            [str(ROOT / "scripts" / "pg-throwaway"), "start"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        env = dict(line.split("=", 1) for line in out.split())
        url, pg_base = env["PG_URL"], env["PGBASE"]
    server = None
    try:
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
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
        env.update(
            CONTRACTOR_DATABASE_URL=settings.database_url,
            CONTRACTOR_AUTO_MIGRATE="false",
            CONTRACTOR_LOG_LEVEL="warning",
            CONTRACTOR_FOREMAN_ENABLED="false",
            PYTHONPATH=str(ROOT),
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
            cwd=scratch,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("contractor serve did not start") from None
                time.sleep(0.1)
        print(f"database: {'SQLite' if args.sqlite else 'PostgreSQL'}; cores: {os.cpu_count()}")
        asyncio.run(run(settings, token, base, args))
        usage = os.times()
        print(f"bench process CPU: {usage.user + usage.system:.1f} s")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        if pg_base:
            subprocess.run([str(ROOT / "scripts" / "pg-throwaway"), "stop", pg_base], check=False)


if __name__ == "__main__":
    main()
