"""``/dns/zones`` over HTTP (httpx against the ASGI app), and the bearer-token helper of
``contractor.rest.auth`` that every plain REST route can reuse."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor import migrate
from contractor.app import build_state, create_app
from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.errors import InvalidInput, NotFound
from contractor.models import User, Zone
from contractor.rest.auth import authenticated
from contractor.rest.errors import exception_handlers
from contractor.rest.state import app_state, set_app_state
from contractor.services import auth, directory, dns, dns_push
from contractor.settings import Settings
from tests.bindgen.bind import checkzone
from tests.bindgen.inventory import build_lab


@dataclass
class Served:
    client: httpx.AsyncClient
    settings: Settings
    reader: str
    headers: dict[str, str]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rest.sqlite3'}", auto_migrate=False)
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            await build_lab(session)
            await directory.create_zone(session, name="broken")  # no name servers anywhere
            user = await auth.create_user(session, username="reader", role="reader")
            token = (await auth.create_token(session, user=user)).text
    finally:
        await engine.dispose()
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://contractor") as client:
        yield Served(client, settings, token, {"Authorization": f"Bearer {token}"})
    await app_state(app).engine.dispose()


async def test_zone_list(served: Served) -> None:
    response = await served.client.get("/dns/zones", headers=served.headers)
    assert response.status_code == 200
    zones = {zone["name"]: zone for zone in response.json()["zones"]}
    assert zones["example"]["kind"] == "forward"
    assert zones["example"]["valid"] is True
    assert zones["example"]["file"] == "example.zone"
    assert isinstance(zones["example"]["serial"], int)
    assert zones["64-26.2.0.192.in-addr.arpa"]["kind"] == "reverse"
    assert zones["broken"] == {
        "name": "broken",
        "kind": "forward",
        "serial": None,
        "file": "broken.zone",
        "valid": False,
        "problems": [
            "zone 'broken' has no name servers: set nameservers on it or on a parent zone"
        ],
        "details": [
            {
                "code": "NO_NAMESERVERS",
                "message": "zone 'broken' has no name servers: set nameservers on it or on a "
                "parent zone",
                "record": "broken.",
            }
        ],
    }
    again = await served.client.get("/dns/zones", headers=served.headers)
    assert again.json() == response.json()  # reading twice changes no serial


async def test_zone_text_is_what_export_writes(served: Served, tmp_path: Path) -> None:
    response = await served.client.get("/dns/zones/example", headers=served.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/dns; charset=utf-8"
    text = response.text
    checkzone("example", text)
    assert "\nweb1 3600 IN A 10.0.0.10\n" in text
    engine = create_engine(served.settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            zones = await dns.publish_zones(session)
    finally:
        await engine.dispose()
    dns.export_zones(zones, tmp_path)
    assert (tmp_path / "example.zone").read_text() == text
    serial = next(z.serial for z in zones if z.name == "example")
    assert response.headers["etag"].startswith(f'"{serial}-')
    reverse = await served.client.get(
        "/dns/zones/64-26.2.0.192.in-addr.arpa.", headers=served.headers
    )
    assert reverse.status_code == 200
    assert "\n70 3600 IN PTR ipmi-0.db1.lab.example.\n" in reverse.text


async def test_zone_errors(served: Served) -> None:
    missing = await served.client.get("/dns/zones/nowhere.example", headers=served.headers)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "NOT_FOUND",
            "message": "zone 'nowhere.example' does not exist",
            "field": "name",
            "request_id": missing.headers["x-request-id"],
        }
    }
    broken = await served.client.get("/dns/zones/broken", headers=served.headers)
    assert broken.status_code == 409
    assert broken.json()["error"]["code"] == "INVALID_STATE"
    assert broken.json()["error"]["message"] == (
        "zone broken cannot be generated: zone 'broken' has no name servers: set nameservers "
        "on it or on a parent zone"
    )


UNAUTHORIZED = [
    ({}, "this needs an API token: send 'Authorization: Bearer <token>'"),
    ({"Authorization": "Basic cmVhZGVyOng="}, "the Authorization header must read"),
    ({"Authorization": "Bearer "}, "the Authorization header must read"),
    ({"Authorization": "Bearer nonsense"}, "malformed API token"),
    ({"Authorization": "Bearer ctr_0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAA"}, "invalid"),
]


async def test_authentication_is_required(served: Served) -> None:
    for headers, message in UNAUTHORIZED:
        for path in ("/dns/zones", "/dns/zones/example"):
            response = await served.client.get(path, headers=headers)
            assert response.status_code == 401, (headers, path)
            assert response.headers["www-authenticate"] == 'Bearer realm="contractor"'
            body = response.json()["error"]
            assert body["code"] == "UNAUTHORIZED"
            assert body["message"].startswith(message)


async def test_authenticated_helper_roles_and_errors(served: Served) -> None:
    """The helper on another route: the role is checked, the session commits, domain errors
    become their HTTP status."""

    @authenticated("admin")
    async def admin_only(request: Request, session: AsyncSession, user: User) -> Response:
        return JSONResponse({"user": user.username})

    @authenticated()
    async def who(request: Request, session: AsyncSession, user: User) -> Response:
        if request.query_params.get("fail"):
            raise NotFound("nothing here", field="fail")
        return JSONResponse({"user": user.username, "role": user.role})

    app = Starlette(
        routes=[Route("/admin", admin_only), Route("/who", who)],
        exception_handlers=exception_handlers({}),
    )
    set_app_state(app, build_state(served.settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        forbidden = await client.get("/admin", headers=served.headers)
        assert forbidden.status_code == 403
        error = forbidden.json()["error"]
        assert len(error.pop("request_id")) == 32  # made here: this app has no middleware
        assert error == {
            "code": "FORBIDDEN",
            "message": "this needs the admin role; user 'reader' is a reader",
            "field": None,
        }
        ok = await client.get("/who", headers=served.headers)
        assert ok.json() == {"user": "reader", "role": "reader"}
        failed = await client.get("/who?fail=1", headers=served.headers)
        assert failed.status_code == 404
        assert failed.json()["error"]["field"] == "fail"
    await app_state(app).engine.dispose()
    with pytest.raises(InvalidInput, match="role 'root' is not one of"):
        authenticated("root")


# -- one broken zone, every view -----------------------------------------------------------
# GraphQL publishedZones, GET /dns/zones, GET /dns/zones/<name>, contractor dns export and
# the RFC 2136 pusher all read services.dns.publish_zones, so they agree that a zone is
# invalid and why, serve its last good serial and text, and publish every other zone.

PROBLEM = {
    "code": "NAMESERVER_WITHOUT_ADDRESS",
    "message": "name server ns1.solo. (NS of solo.) is inside the zone but has no A or AAAA record",
    "record": "ns1.solo.",
}


async def in_db(served: Served, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    engine = create_engine(served.settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


async def graphql(served: Served, query: str) -> Any:
    response = await served.client.post("/graphql", json={"query": query}, headers=served.headers)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def export(served: Served, out: Path) -> tuple[int, str]:
    """``contractor dns export`` (in a thread: the command runs its own event loop)."""
    env = {"CONTRACTOR_DATABASE_URL": served.settings.database_url}
    command = ["dns", "export", "--out", str(out)]
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, command, env=env))
    return result.exit_code, result.output


async def _solo(session: AsyncSession) -> None:
    solo = await directory.create_zone(session, name="solo", nameservers=["ns.elsewhere.net"])
    await directory.create_entry(session, zone=solo, type="TXT", name="hello", text="hi")


async def _break_solo(session: AsyncSession) -> None:
    """A name server inside the zone with no address (written past the services, which may
    refuse it): the inventory still makes the zone's records, BIND would refuse the file."""
    zone = await directory.find_zone(session, "solo")
    zone.nameservers = ["ns1.solo"]
    await session.flush()


async def _add_txt(session: AsyncSession) -> None:
    example = await directory.find_zone(session, "example")
    await directory.create_entry(session, zone=example, type="TXT", name="news", text="moved")


ALL = "{ publishedZones { name serial valid problems { code message record } text } }"


async def test_every_view_agrees_on_a_broken_zone(served: Served, tmp_path: Path) -> None:
    await in_db(served, _solo)
    code, output = await export(served, tmp_path / "before")
    assert code == 1, output  # the fixture's zone "broken" never had name servers
    assert output.endswith(
        "invalid zones (previous files kept): broken: zone 'broken' has no "
        "name servers: set nameservers on it or on a parent zone\n"
    )
    before = {zone["name"]: zone for zone in (await graphql(served, ALL))["publishedZones"]}
    assert [name for name, zone in before.items() if not zone["valid"]] == ["broken"]
    old_text = before["solo"]["text"]
    assert old_text == (tmp_path / "before" / "solo.zone").read_text()
    old_serial = before["solo"]["serial"]

    await in_db(served, _break_solo)
    await in_db(served, _add_txt)  # another zone changes meanwhile: it must still publish

    # GraphQL: every zone answered, the broken one with its problem as data.
    zones = {zone["name"]: zone for zone in (await graphql(served, ALL))["publishedZones"]}
    assert set(zones) == set(before)
    solo = zones["solo"]
    assert solo == {
        "name": "solo",
        "serial": old_serial,
        "valid": False,
        "problems": [PROBLEM],
        "text": old_text,
    }
    assert zones["example"]["valid"] is True
    assert zones["example"]["serial"] != before["example"]["serial"]
    assert '\nnews 3600 IN TXT "moved"\n' in zones["example"]["text"]
    for name, zone in zones.items():
        if name not in ("solo", "broken"):
            assert zone["valid"], zone
            assert zone["problems"] == [], zone

    # GET /dns/zones: the same verdict, serial and problems.
    listed = (await served.client.get("/dns/zones", headers=served.headers)).json()["zones"]
    by_name = {zone["name"]: zone for zone in listed}
    assert {name: (z["valid"], z["serial"]) for name, z in by_name.items()} == {
        name: (z["valid"], z["serial"]) for name, z in zones.items()
    }
    assert by_name["solo"]["problems"] == [PROBLEM["message"]]
    assert by_name["solo"]["details"] == [PROBLEM]

    # GET /dns/zones/solo: the last good file, its ETag, and the problems reported.
    kept = await served.client.get("/dns/zones/solo", headers=served.headers)
    assert kept.status_code == 200
    assert kept.text == old_text
    checkzone("solo", kept.text)
    assert kept.headers["etag"].startswith(f'"{old_serial}-')
    assert kept.headers["contractor-zone-valid"] == "false"
    assert json.loads(kept.headers["contractor-zone-problems"]) == [PROBLEM]
    fine = await served.client.get("/dns/zones/example", headers=served.headers)
    assert fine.headers["contractor-zone-valid"] == "true"
    assert "contractor-zone-problems" not in fine.headers
    assert fine.text == zones["example"]["text"]

    # The export: exit 1 naming the problem; the old file kept, the other zone rewritten;
    # into an empty directory the last good file is written from the stored text.
    for out in (tmp_path / "before", tmp_path / "fresh"):
        code, output = await export(served, out)
        assert code == 1, output
        assert output.endswith(f"; solo: {PROBLEM['message']}\n")
        assert (out / "solo.zone").read_text() == old_text
        assert (out / "example.zone").read_text() == zones["example"]["text"]
        assert 'zone "solo." { type primary;' in (out / dns.CONF_NAME).read_text()

    # The pusher: the zone is not pushed, and says why.
    async def plan(session: AsyncSession) -> tuple[list[str], str, str | None]:
        planned = await dns_push.plan_pushes(
            session, wanted=lambda n: n in {"solo", "example"}, lease_seconds=30
        )
        rows = await dns_push.zone_rows(session)
        return [p.zone for p in planned], rows["solo"].state, rows["solo"].last_error

    pushed, state, error = await in_db(served, plan)
    assert pushed == ["example"]
    assert state == "invalid"
    assert error is not None
    assert PROBLEM["message"] in error

    # Serials did not move while the zone stayed broken, whoever read it.
    assert (await graphql(served, '{ publishedZones(name: "solo") { serial } }'))[
        "publishedZones"
    ] == [{"serial": old_serial}]

    # Mended: published again, with a newer serial.
    async def mend(session: AsyncSession) -> None:
        zone = await directory.find_zone(session, "solo")
        await directory.update_zone(
            session, zone, nameservers=["ns.elsewhere.net", "ns2.elsewhere.net"]
        )

    await in_db(served, mend)
    (again,) = (await graphql(served, '{ publishedZones(name: "solo") { serial valid text } }'))[
        "publishedZones"
    ]
    assert again["valid"] is True
    assert again["serial"] > old_serial
    assert "ns2.elsewhere.net." in again["text"]


async def test_a_zone_never_valid_has_no_text_and_answers_409(served: Served) -> None:
    async def never(session: AsyncSession) -> None:
        session.add(Zone(name="never", nameservers=["ns1.never"]))
        await session.flush()

    await in_db(served, never)
    (zone,) = (
        await graphql(
            served, '{ publishedZones(name: "never") { serial valid problems { code } text } }'
        )
    )["publishedZones"]
    assert zone == {
        "serial": None,
        "valid": False,
        "problems": [{"code": "NAMESERVER_WITHOUT_ADDRESS"}],
        "text": None,
    }
    response = await served.client.get("/dns/zones/never", headers=served.headers)
    assert response.status_code == 409
    assert (
        "name server ns1.never. (NS of never.) is inside the zone"
        in response.json()["error"]["message"]
    )
