"""DNS live updates against a real ``named`` on loopback with a dynamic zone (update-policy
and allow-transfer for the test's own TSIG key): changes reach it within a second of their
commit, survive a restart of the server, a refused key is a clear error in the push log and
in GraphQL (and the secret is never logged), and a resync repairs what changed behind
Contractor's back."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.query
import dns.tsigkeyring
import dns.update
import httpx
import pytest
from click.testing import CliRunner

from contractor.app import create_app
from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.events.dns_updates import DnsPusher
from contractor.plugins import foundation_types
from contractor.settings import Settings
from tests.bindgen.bind import SOA_LINE, DynamicNamed, dynamic_named
from tests.bindgen.inventory import build_lab
from tests.conftest import test_settings as make_settings
from tests.events.realparts import graphql_on, prepared_database, wait_for

ZONE = "example"
# What the server starts with: its own SOA and name server, nothing of the inventory yet.
INITIAL = (
    "$ORIGIN example.\n" + SOA_LINE.format(zone=ZONE) + "\n@ 300 IN NS ns1\nns1 300 IN A 10.0.0.2\n"
)
ADD_TXT = """
mutation ($name: String!, $text: String!) {
  createZoneEntry(zone: "example", type: "TXT", name: $name, text: $text) {
    __typename ... on Error { message }
  }
}"""
PUSH_STATE = """
{ dnsPushZones { name mode state serial attempts lastError }
  dnsPushes(zone: "example", limit: 500) { id state kind rcode error serial added deleted } }
"""


@dataclass
class Rig:
    http: httpx.AsyncClient
    token: str
    server: DynamicNamed
    settings: Settings

    async def graphql(self, document: str, **variables: Any) -> Any:
        return await graphql_on(self.http, self.token, document, **variables)

    def txt(self, name: str) -> list[str]:
        return self.server.query(f"{name}.{ZONE}.", "TXT")


@asynccontextmanager
async def rig(backend: str, tmp_path: Path, *, secret: str | None = None) -> AsyncIterator[Rig]:
    """The lab inventory, a dynamic ``named`` serving ``example`` and an app (with its
    pusher) publishing ``example`` by updates; ``secret`` replaces the right key's."""
    foundation_types()
    url, token = await prepared_database(backend, tmp_path)
    engine = create_engine(Settings(database_url=url))
    try:
        async with transaction(create_session_factory(engine, writes=True)) as session:
            await build_lab(session)
    finally:
        await engine.dispose()
    with dynamic_named(tmp_path / "named", {ZONE: INITIAL}) as server:
        settings = make_settings(
            url,
            dns_zone_modes={ZONE: "updates"},
            dns_server_host="127.0.0.1",
            dns_server_port=server.port,
            dns_tsig_key_name=server.key_name,
            dns_tsig_secret=secret or server.secret,
            dns_update_timeout_seconds=1.0,
            dns_update_retry_base_seconds=0.1,
            dns_update_retry_max_seconds=0.5,
            events_poll_seconds=0.5,
            webhooks_enabled=False,
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://contractor") as http,
        ):
            yield Rig(http, token, server, settings)


async def until(check: Any, seconds: float, what: str) -> None:
    await wait_for(check, seconds, what)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_committed_change_is_answered_within_a_second(backend: str, tmp_path: Path) -> None:
    async with rig(backend, tmp_path) as r:
        # the first push reads the server's zone (AXFR) and brings the inventory to it
        await until(lambda: r.server.query("web1.example.", "A") == ["10.0.0.10"], 10, "push")
        assert r.server.query("eth1.web1.example.", "AAAA") == ["2001:db8:1::10"]
        assert r.server.query("lab.example.", "NS") == []  # a delegation: not an answer here
        state = await r.graphql(PUSH_STATE)
        assert state["dnsPushZones"][0] | {"serial": None} == {
            "name": "example",
            "mode": "updates",
            "state": "current",
            "serial": None,
            "attempts": 0,
            "lastError": None,
        }
        published = await r.graphql('{ publishedZones(name: "example") { serial } }')
        # the server carries Contractor's published serial
        assert r.server.serial("example.") == published["publishedZones"][0]["serial"]
        # only the zones published by updates are pushed
        assert [z["name"] for z in state["dnsPushZones"]] == ["example"]
        latencies = []
        for index in range(5):
            await r.graphql(ADD_TXT, name=f"fast{index}", text=f"v{index}")
            committed = time.monotonic()
            while r.txt(f"fast{index}") != [f'"v{index}"']:
                assert time.monotonic() - committed < 1.0, "not answered within 1 s of commit"
                await asyncio.sleep(0.01)
            latencies.append(time.monotonic() - committed)
        assert max(latencies) < 1.0
        # (the server may answer before its acknowledgement is recorded)
        for _ in range(100):
            pushes = (await r.graphql(PUSH_STATE))["dnsPushes"]
            if {p["state"] for p in pushes} == {"acknowledged"}:
                break
            await asyncio.sleep(0.05)
        assert {p["state"] for p in pushes} == {"acknowledged"}, pushes
        assert all(p["rcode"] == "NOERROR" for p in pushes)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_server_restart_mid_stream_loses_nothing(backend: str, tmp_path: Path) -> None:
    async with rig(backend, tmp_path) as r:
        await until(lambda: r.server.query("web1.example.", "A") == ["10.0.0.10"], 10, "push")
        for index in range(30):
            if index == 10:
                r.server.stop()
            await r.graphql(ADD_TXT, name=f"s{index}", text=f"n{index}")
            if index == 20:
                state = await r.graphql(PUSH_STATE)
                failing = state["dnsPushZones"][0]
                assert failing["state"] == "failing", failing
                assert "127.0.0.1" in failing["lastError"]
                r.server.start()
        await until(lambda: r.txt("s29") == ['"n29"'], 10, "the last change after the restart")
        for index in range(30):
            assert r.txt(f"s{index}") == [f'"n{index}"'], index
        # the server kept what it took in its journal, in the test's directory
        assert (r.server.directory / "example.db.jnl").exists()
        # and keeps it across another restart
        r.server.stop()
        r.server.start()
        assert r.txt("s5") == ['"n5"']
        pushes = (await r.graphql(PUSH_STATE))["dnsPushes"]
        failed = [p for p in pushes if p["state"] == "failed"]
        assert failed
        assert all(p["rcode"] is None for p in failed)
        done = [p["serial"] for p in reversed(pushes) if p["state"] == "acknowledged"]
        assert done == sorted(done)  # pushed in order: serials only grow


async def test_a_refused_key_is_a_clear_error_and_the_secret_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = base64.b64encode(b"not the server's secret at all!!").decode()
    caplog.set_level(logging.DEBUG)
    async with rig("sqlite", tmp_path, secret=wrong) as r:

        async def failing() -> dict[str, Any]:
            state = await r.graphql(PUSH_STATE)
            return state

        deadline = time.monotonic() + 10
        while True:
            state = await failing()
            zone = state["dnsPushZones"][0] if state["dnsPushZones"] else None
            if zone is not None and zone["attempts"] >= 3:
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.1)
        assert zone["state"] == "failing"
        assert "NOTAUTH (TSIG BADSIG)" in zone["lastError"]
        assert "contractor-test" in zone["lastError"]
        failed = [p for p in state["dnsPushes"] if p["state"] == "failed"]
        assert len(failed) >= 3  # still retried (with backoff), each attempt logged
        assert all(p["rcode"] == "NOTAUTH" and "BADSIG" in p["error"] for p in failed)
        assert r.server.query("web1.example.", "A") == []  # nothing reached the server
        # the error is logged once, clearly; the secret nowhere
        warnings = [m for m in caplog.messages if "DNS push of zone example failed" in m]
        assert len(warnings) == 1
        assert "BADSIG" in warnings[0]
        shown = str(state) + caplog.text + repr(r.settings)
        for secret in (wrong, r.server.secret):
            assert secret not in shown
            assert base64.b64decode(secret).hex() not in shown


RESYNC = """
mutation ($dry: Boolean!) {
  resyncDnsZones(zone: "example", dryRun: $dry) {
    __typename
    ... on DnsResync { zones { zone missing unexpected repaired error } }
    ... on Error { code message field }
  }
}"""


def _behind_our_back(server: DynamicNamed) -> None:
    keyring = dns.tsigkeyring.from_text({server.key_name: ("hmac-sha256", server.secret)})
    update = dns.update.UpdateMessage("example.", keyring=keyring)
    update.delete("web1", "A")
    update.add("intruder", 300, "A", "10.9.9.9")
    answer = dns.query.tcp(update, "127.0.0.1", port=server.port, timeout=5)
    assert answer.rcode() == 0


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_resync_repairs_what_changed_behind_our_back(backend: str, tmp_path: Path) -> None:
    async with rig(backend, tmp_path) as r:
        await until(lambda: r.server.query("web1.example.", "A") == ["10.0.0.10"], 10, "push")
        _behind_our_back(r.server)
        assert r.server.query("web1.example.", "A") == []
        found = (await r.graphql(RESYNC, dry=True))["resyncDnsZones"]["zones"]
        assert found == [
            {
                "zone": "example",
                "missing": ["web1.example. 3600 A 10.0.0.10"],
                "unexpected": ["intruder.example. 300 A 10.9.9.9"],
                "repaired": False,
                "error": None,
            }
        ]
        assert r.server.query("web1.example.", "A") == []  # a dry run changes nothing
        # the CLI reports the same, without repairing
        env = {
            "CONTRACTOR_DATABASE_URL": r.settings.database_url,
            "CONTRACTOR_DNS_ZONE_MODES": '{"example": "updates"}',
            "CONTRACTOR_DNS_SERVER_HOST": "127.0.0.1",
            "CONTRACTOR_DNS_SERVER_PORT": str(r.server.port),
            "CONTRACTOR_DNS_TSIG_KEY_NAME": r.server.key_name,
            "CONTRACTOR_DNS_TSIG_SECRET": r.server.secret,
        }
        result = await asyncio.to_thread(
            CliRunner().invoke, main, ["dns", "resync", "--dry-run"], env=env
        )
        assert result.exit_code == 0, result.output
        assert "example: + web1.example. 3600 A 10.0.0.10" in result.output
        assert "example: - intruder.example. 300 A 10.9.9.9" in result.output
        assert "example: differs (dry run: not repaired)" in result.output
        assert r.server.secret not in result.output
        repaired = (await r.graphql(RESYNC, dry=False))["resyncDnsZones"]["zones"]
        assert repaired[0]["repaired"] is True
        assert r.server.query("web1.example.", "A") == ["10.0.0.10"]
        assert r.server.query("intruder.example.", "A") == []
        again = (await r.graphql(RESYNC, dry=True))["resyncDnsZones"]["zones"]
        assert again[0]["missing"] == []
        assert again[0]["unexpected"] == []
        pushes = (await r.graphql(PUSH_STATE))["dnsPushes"]
        assert pushes[0]["kind"] == "resync"
        assert pushes[0]["state"] == "acknowledged"
        # a zone not published by updates is refused, naming it
        refused = await r.graphql(RESYNC.replace('"example"', '"0.0.10.in-addr.arpa"'), dry=True)
        assert refused["resyncDnsZones"]["__typename"] == "InvalidInputError"
        assert refused["resyncDnsZones"]["field"] == "zone"


async def test_two_pushers_share_the_work_and_lose_nothing(tmp_path: Path) -> None:
    async with rig("postgresql", tmp_path) as r:
        await until(lambda: r.server.query("web1.example.", "A") == ["10.0.0.10"], 10, "push")
        # a second process's pusher, on an engine of its own
        engine = create_engine(r.settings)
        other = DnsPusher(
            create_session_factory(engine, writes=True),
            readers=create_session_factory(engine),
            settings=r.settings,
            broadcaster=None,
        )
        task = asyncio.create_task(other.run())
        try:
            for index in range(20):
                await r.graphql(ADD_TXT, name=f"p{index}", text=f"p{index}")
            await until(lambda: r.txt("p19") == ['"p19"'], 10, "the last change")
            for index in range(20):
                assert r.txt(f"p{index}") == [f'"p{index}"'], index
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await engine.dispose()
        pushes = (await r.graphql(PUSH_STATE))["dnsPushes"]
        serials = [p["serial"] for p in reversed(pushes) if p["state"] == "acknowledged"]
        assert serials == sorted(serials)
