"""Real parts: `contractor serve` processes, a WebSocket client speaking graphql-transport-ws,
and HTTP receivers for webhooks, all on loopback ports the kernel chose."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from tests.events.realparts import (
    Receiver,
    Subscription,
    graphql,
    prepared_database,
    wait_for,
)
from tests.serving import clean_env, contractor_serve, free_port

SITES = """
subscription ($after: String) {
  events(filter: {objectTypes: ["site"]}, after: $after) { cursor kind objectName actor }
}"""
CREATE_SITE = "mutation ($name: String!) { createSite(name: $name) { __typename } }"
UPDATE_SITE = """
mutation ($name: String!, $d: String!) { updateSite(name: $name, description: $d) { __typename } }
"""


def _env(url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        CONTRACTOR_DATABASE_URL=url,
        CONTRACTOR_AUTO_MIGRATE="false",
        CONTRACTOR_LOG_LEVEL="warning",
        CONTRACTOR_FOREMAN_ENABLED="false",
        **extra,
    )


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_subscribers_resume_from_their_cursor(backend: str, tmp_path: Path) -> None:
    """Events arrive in order; after a disconnect, the last cursor brings exactly the rest.
    On PostgreSQL the changes go through a second process (woken by LISTEN/NOTIFY)."""
    url, token = await prepared_database(backend, tmp_path)
    env = _env(url, CONTRACTOR_WEBHOOKS_ENABLED="false")
    with ExitStack() as stack:
        reader = stack.enter_context(contractor_serve(env, tmp_path))
        writer = reader
        if backend == "postgresql":
            writer = stack.enter_context(contractor_serve(env, tmp_path))
        received: list[dict[str, str]] = []
        async with asyncio.timeout(60):
            async with Subscription(reader, token, SITES) as subscription:
                await asyncio.sleep(0.3)  # the subscription is live once its first read is done
                for index in range(5):
                    await graphql(writer, token, CREATE_SITE, name=f"s{index}")
                while len(received) < 3:
                    received.append((await subscription.next())["events"])
            last = received[-1]["cursor"]
            for index in range(5, 8):  # while nobody listens
                await graphql(writer, token, CREATE_SITE, name=f"s{index}")
            await graphql(writer, token, UPDATE_SITE, name="s0", d="changed")
            async with Subscription(reader, token, SITES, after=last) as subscription:
                for index in range(8, 10):  # and live again
                    await graphql(writer, token, CREATE_SITE, name=f"s{index}")
                while len(received) < 11:
                    received.append((await subscription.next())["events"])
    assert [(e["kind"], e["objectName"]) for e in received] == [
        *(("created", f"s{i}") for i in range(8)),
        ("updated", "s0"),
        ("created", "s8"),
        ("created", "s9"),
    ]
    cursors = [int(e["cursor"]) for e in received]
    assert cursors == sorted(set(cursors))
    assert {e["actor"] for e in received} == {"root"}


async def test_websockets_need_credentials(tmp_path: Path) -> None:
    url, _token = await prepared_database("sqlite", tmp_path)
    with contractor_serve(_env(url, CONTRACTOR_WEBHOOKS_ENABLED="false"), tmp_path) as base:
        async with asyncio.timeout(20):
            for payload in ({}, {"Authorization": "Bearer wrong"}):
                async with websockets.connect(
                    base.replace("http", "ws") + "/graphql",
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                ) as socket:
                    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await socket.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 4403


def _signature_ok(secret: str, body: bytes, header: str) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_webhooks_survive_a_receiver_that_is_down(backend: str, tmp_path: Path) -> None:
    """A receiver down at first gets every event once it is up, once per delivery id, in
    order per object, signed; a slow receiver does not hold up a fast one."""
    url, token = await prepared_database(backend, tmp_path)
    env = _env(
        url,
        CONTRACTOR_WEBHOOK_RETRY_BASE_SECONDS="0.2",
        CONTRACTOR_WEBHOOK_RETRY_MAX_SECONDS="0.5",
        CONTRACTOR_WEBHOOK_TIMEOUT_SECONDS="5",
    )
    late = Receiver(free_port())
    fast = Receiver(free_port())
    slow = Receiver(free_port(), delay=1.0)
    fast.start()
    slow.start()
    try:
        with contractor_serve(env, tmp_path) as base:
            secrets = {}
            for name, receiver in (("late", late), ("fast", fast), ("slow", slow)):
                created = await graphql(
                    base,
                    token,
                    """mutation ($name: String!, $url: String!) {
                      createWebhookTarget(name: $name, url: $url,
                                          filter: {objectTypes: ["site"]}) {
                        ... on CreatedWebhookTarget { secret target { name } }
                        ... on Error { message }
                      }
                    }""",
                    name=name,
                    url=receiver.url,
                )
                secrets[name] = created["createWebhookTarget"]["secret"]
            expected = []
            for index in range(4):
                await graphql(base, token, CREATE_SITE, name=f"w{index}")
                expected.append(("created", f"w{index}"))
            for round_ in range(3):
                for index in range(4):
                    await graphql(base, token, UPDATE_SITE, name=f"w{index}", d=f"r{round_}")
                    expected.append(("updated", f"w{index}"))
            async with asyncio.timeout(60):
                await wait_for(lambda: len(fast.unique()) == 16, 20, "the fast receiver")
                assert len(slow.unique()) < 16  # still working through its share
                await asyncio.sleep(1.0)  # the late receiver is down: attempts fail
                late.start()
                await wait_for(lambda: len(late.unique()) == 16, 30, "the late receiver")
                await wait_for(lambda: len(slow.unique()) == 16, 30, "the slow receiver")
                log = await graphql(
                    base,
                    token,
                    """{ webhookDeliveries(target: "late", first: 100) {
                           id state attempts responseCode error } }""",
                )
    finally:
        for receiver in (late, fast, slow):
            receiver.stop()

    for name, receiver in (("late", late), ("fast", fast), ("slow", slow)):
        unique = receiver.unique()
        got = sorted(unique.values(), key=lambda r: int(r.event["cursor"]))
        assert sorted((r.event["kind"], r.event["objectName"]) for r in got) == sorted(expected)
        assert len({r.event["cursor"] for r in got}) == 16  # one delivery id per event
        for r in receiver.received:
            assert r.headers["X-Contractor-Delivery"] == r.delivery
            assert _signature_ok(secrets[name], r.body, r.headers["X-Contractor-Signature"])
        # in order per object: each site's events arrived in cursor order
        with receiver.lock:
            arrivals = list(receiver.received)
        for site in {r.event["objectName"] for r in arrivals}:
            firsts: dict[str, float] = {}
            for r in arrivals:
                if r.event["objectName"] == site:
                    firsts.setdefault(r.event["cursor"], r.at)
            order = sorted(firsts, key=lambda cursor: firsts[cursor])
            assert order == sorted(order, key=int), (name, site)
    deliveries = log["webhookDeliveries"]
    assert {d["state"] for d in deliveries} == {"DELIVERED"}
    assert {d["responseCode"] for d in deliveries} == {204}
    assert max(d["attempts"] for d in deliveries) >= 2  # it was down at first


@contextmanager
def _killable_serve(
    env: dict[str, str], cwd: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "contractor serve exited"
                assert time.monotonic() < deadline, "contractor serve did not come up"
                time.sleep(0.1)
        yield base, server
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=15)


async def test_sigkill_during_deliveries_loses_nothing(tmp_path: Path) -> None:
    """PostgreSQL: `contractor serve` killed with SIGKILL while posting; after a restart every
    event still arrives (a request cut short may come again, with the same delivery id)."""
    url, token = await prepared_database("postgresql", tmp_path)
    env = _env(url, CONTRACTOR_WEBHOOK_TIMEOUT_SECONDS="1", CONTRACTOR_WEBHOOK_PER_TARGET="2")
    receiver = Receiver(free_port(), delay=0.2)
    receiver.start()
    try:
        with _killable_serve(env, tmp_path) as (base, server):
            await graphql(
                base,
                token,
                'mutation ($u: String!) { createWebhookTarget(name: "k", url: $u) { __typename } }',
                u=receiver.url,
            )
            for index in range(20):
                await graphql(base, token, CREATE_SITE, name=f"k{index}")
            async with asyncio.timeout(30):
                await wait_for(lambda: len(receiver.unique()) >= 4, 20, "the first deliveries")
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
        assert len(receiver.unique()) < 20
        with _killable_serve(env, tmp_path):
            async with asyncio.timeout(60):
                await wait_for(lambda: len(receiver.unique()) == 20, 45, "every delivery")
    finally:
        receiver.stop()
    names = sorted(r.event["objectName"] for r in receiver.unique().values())
    assert names == sorted(f"k{index}" for index in range(20))
