"""``/dns/zones`` over HTTP (httpx against the ASGI app), and the bearer-token helper of
``contractor.rest.auth`` that every plain REST route can reuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contractor import migrate
from contractor.app import build_state, create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.errors import InvalidInput, NotFound
from contractor.models import User
from contractor.rest.auth import authenticated
from contractor.rest.errors import exception_handlers
from contractor.rest.state import app_state, set_app_state
from contractor.services import auth, directory, dns
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
