"""``/config`` over HTTP: httpx against the ASGI app on PostgreSQL and SQLite, and once
against a real ``contractor serve`` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from contractor import migrate
from contractor.app import create_app
from contractor.child_process import free_port
from contractor.db import create_engine, create_session_factory
from contractor.rest.state import app_state
from contractor.services import addresses, auth, interfaces
from contractor.services import blueprint as bp_service
from contractor.services import site as site_service
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.factories import (
    make_block,
    make_foundation,
    make_foundation_blueprint,
    make_site,
    make_structure,
    make_structure_blueprint,
    unique,
)

BOOT_SCRIPT = (
    "kernel {{ __pxe_location }}vmlinuz host={{ _fqdn }} ip={{ _primary_address.address }}"
)
TEMPLATE = "d-i passwd/root {{ root_pw }} bmc={{ __connection_paramaters }}.\n"


@dataclass
class World:
    app: Starlette
    client: httpx.AsyncClient
    config_uuid: str
    bare_uuid: str  # a structure whose provisioning interface has no PXE
    hostname: str
    site_name: str
    locator: str
    root_id: int
    token: str


async def populate(session: AsyncSession) -> dict[str, Any]:
    root = await make_site(
        session, unique("root"), config_values={"root_pw": "$6$hash", "motd": "hi {{ _hostname }}"}
    )
    site = await make_site(session, unique("dc"), parent=root)
    fbp = await make_foundation_blueprint(session)
    sbp = await make_structure_blueprint(session, foundation_blueprints=[fbp])
    pxe = await bp_service.create_pxe(
        session, name=unique("installer"), boot_script=BOOT_SCRIPT, template=TEMPLATE
    )
    foundation = await make_foundation(session, site, fbp)
    await interfaces.add_interface(
        session, foundation=foundation, physical_location="eth0", is_provisioning=True, pxe=pxe
    )
    structure = await make_structure(session, site, foundation, sbp, unique("web"))
    block = await make_block(session, site, "10.7.0.0/24")
    await addresses.create_address(
        session, structure=structure, block=block, offset=5, interface_name="eth0", is_primary=True
    )
    bare_foundation = await make_foundation(session, site, fbp)
    await interfaces.add_interface(
        session, foundation=bare_foundation, physical_location="eth0", is_provisioning=True
    )
    bare = await make_structure(session, site, bare_foundation, sbp)
    user = await auth.create_user(session, username=unique("reader"), role="reader")
    cheap = PasswordHasher(memory_cost=64, time_cost=1)  # hashing cost is not under test
    token = await auth.create_token(session, user=user, hasher=cheap)
    return {
        "config_uuid": structure.config_uuid,
        "bare_uuid": bare.config_uuid,
        "hostname": structure.hostname,
        "site_name": site.name,
        "locator": foundation.locator,
        "root_id": root.id,
        "token": token.text,
    }


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def app_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgresql":
        url = make_pg_database("contractor_config_http")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('http') / 'contractor.sqlite3'}"
    settings = Settings(database_url=url)
    migrate.upgrade(settings)
    return settings.database_url


@pytest.fixture
async def world(app_url: str) -> AsyncIterator[World]:
    settings = Settings(database_url=app_url, auto_migrate=False, pxe_location="http://pxe/")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app_state(app).sessions() as session, session.begin():
            data = await populate(session)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contractor") as client:
            yield World(app=app, client=client, **data)


async def test_config_by_uuid_is_rendered_json(world: World) -> None:
    response = await world.client.get(f"/config/{world.config_uuid}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    config = response.json()
    assert config["_structure_config_uuid"] == world.config_uuid
    assert config["_hostname"] == world.hostname
    assert config["motd"] == f"hi {world.hostname}"
    assert config["__pxe_location"] == "http://pxe/"
    assert "T" in config["__last_modified"]  # ISO strings on the JSON path
    assert isinstance(config["__timestamp"], str)
    upper = await world.client.get(f"/config/{world.config_uuid.upper()}")
    assert upper.status_code == 200
    assert upper.json()["_hostname"] == world.hostname


@pytest.mark.parametrize("suffix", ["", "/boot_script", "/pxe_template"])
@pytest.mark.parametrize(
    "config_uuid", ["0b6f4b8e-0000-4000-8000-000000000000", "not-a-uuid", "1" * 36]
)
async def test_unknown_uuid_is_404_with_a_json_error(
    world: World, config_uuid: str, suffix: str
) -> None:
    response = await world.client.get(f"/config/{config_uuid}{suffix}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "NOT_FOUND"
    assert config_uuid in error["message"]


async def test_boot_script_and_pxe_template(world: World) -> None:
    script = await world.client.get(f"/config/{world.config_uuid}/boot_script")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/plain")
    assert script.text == (f"#!ipxe\n\nkernel http://pxe/vmlinuz host={world.hostname} ip=10.7.0.5")
    template = await world.client.get(f"/config/{world.config_uuid}/pxe_template")
    assert template.status_code == 200
    # No BMC credentials: the original's __connection_paramaters renders empty.
    assert template.text == "d-i passwd/root $6$hash bmc=."


async def test_the_original_urls_still_work(world: World) -> None:
    """iPXE images built for the original chain to /config/boot_script/c/<option 210>."""
    for kind, suffix in (
        ("config", ""),
        ("boot_script", "/boot_script"),
        ("pxe_template", "/pxe_template"),
    ):
        old = await world.client.get(f"/config/{kind}/c/{world.config_uuid.upper()}")
        new = await world.client.get(f"/config/{world.config_uuid}{suffix}")
        assert old.status_code == new.status_code == 200
        if kind == "config":
            assert without_timestamp(old.json()) == without_timestamp(new.json())
        else:
            assert old.text == new.text
    assert (await world.client.get(f"/config/boot_script/c/{'0' * 36}")).status_code == 404


def without_timestamp(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key != "__timestamp"}


async def test_no_pxe_is_an_empty_200(world: World) -> None:
    for part in ("boot_script", "pxe_template"):
        response = await world.client.get(f"/config/{world.bare_uuid}/{part}")
        assert response.status_code == 200
        assert response.content == b""


async def test_listing_needs_a_user(world: World) -> None:
    for headers in ({}, {"Authorization": "Bearer ctr_0000000000000000.nope-nope-nope-nope-nope"}):
        response = await world.client.get("/config/", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"].startswith("Bearer")
    denied = await world.client.get(f"/config/foundation/{world.locator}")
    assert denied.status_code == 401

    headers = {"Authorization": f"Bearer {world.token}"}
    listing = await world.client.get(
        "/config/", params={"hostname": world.hostname}, headers=headers
    )
    assert listing.status_code == 200
    assert listing.json() == {
        "configs": [
            {
                "config_uuid": world.config_uuid,
                "hostname": world.hostname,
                "site": world.site_name,
                "url": f"/config/{world.config_uuid}",
            }
        ]
    }
    bad = await world.client.get("/config/", params={"limit": "lots"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_INPUT"
    foundation = await world.client.get(f"/config/foundation/{world.locator}", headers=headers)
    assert foundation.status_code == 200
    assert foundation.json()["_foundation_locator"] == world.locator
    missing = await world.client.get("/config/foundation/nowhere", headers=headers)
    assert missing.status_code == 404


async def test_a_committed_change_reaches_the_next_request(world: World) -> None:
    first = (await world.client.get(f"/config/{world.config_uuid}")).json()
    cache = app_state(world.app).config_cache
    hits = cache.hits
    assert (await world.client.get(f"/config/{world.config_uuid}")).status_code == 200
    assert cache.hits == hits + 1
    async with app_state(world.app).sessions() as session, session.begin():
        root = await session.get_one(site_service.Site, world.root_id)
        await site_service.update_site(
            session, root, config_values={"root_pw": "$6$new", "motd": "bye {{ _hostname }}"}
        )
    changed = (await world.client.get(f"/config/{world.config_uuid}")).json()
    assert changed["motd"] == f"bye {world.hostname}"
    assert changed["__last_modified"] > first["__last_modified"]
    template = await world.client.get(f"/config/{world.config_uuid}/pxe_template")
    assert template.text.startswith("d-i passwd/root $6$new ")


async def test_values_that_do_not_render_are_a_500_naming_the_key(world: World) -> None:
    async with app_state(world.app).sessions() as session, session.begin():
        root = await session.get_one(site_service.Site, world.root_id)
        await site_service.update_site(session, root, config_values={"broken": "{{ 1 + }}"})
    response = await world.client.get(f"/config/{world.config_uuid}")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "CONFIG_ERROR"
    assert "broken" in error["message"]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_contractor_serve_answers_and_sees_another_process_change(
    tmp_path: Path, backend: str
) -> None:
    """curl-like requests against a real server process, whose warm cache must notice a
    change committed by this (another) process."""
    if backend == "postgresql":
        url = make_pg_database("contractor_config_serve")
    else:
        url = f"sqlite:///{tmp_path / 'contractor.sqlite3'}"
    settings = Settings(database_url=url)
    migrate.upgrade(settings)

    async def in_database(work: Any) -> Any:
        engine = create_engine(settings)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    async def change_root(session: AsyncSession) -> None:
        root = await session.get_one(site_service.Site, data["root_id"])
        await site_service.update_site(
            session, root, config_values={"root_pw": "$6$other", "motd": "changed"}
        )

    data = asyncio.run(in_database(populate))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACTOR_")}
    env.update(CONTRACTOR_DATABASE_URL=url, CONTRACTOR_PXE_LOCATION="http://pxe/")
    # The checkout first, as pytest's own pythonpath has it.
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    server = subprocess.Popen(
        [sys.executable, "-m", "contractor", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    pytest.fail(f"contractor serve did not come up:\n{output}")
                time.sleep(0.1)
        config = httpx.get(f"{base}/config/{data['config_uuid']}", timeout=10)
        assert config.status_code == 200
        assert config.json()["_hostname"] == data["hostname"]
        assert config.json()["motd"] == f"hi {data['hostname']}"
        asyncio.run(in_database(change_root))
        changed = httpx.get(f"{base}/config/{data['config_uuid']}", timeout=10)
        assert changed.json()["motd"] == "changed"
        template = httpx.get(f"{base}/config/pxe_template/c/{data['config_uuid']}", timeout=10)
        assert template.text.startswith("d-i passwd/root $6$other ")
        script = httpx.get(f"{base}/config/{data['config_uuid']}/boot_script", timeout=10)
        assert script.text.startswith("#!ipxe\n\nkernel http://pxe/vmlinuz")
        assert httpx.get(f"{base}/config/", timeout=10).status_code == 401
        assert httpx.get(f"{base}/config/{'0' * 36}", timeout=10).status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=15)
        if server.stdout:
            server.stdout.close()


async def test_authenticated_reads_succeed_while_another_writer_commits(world: World) -> None:
    """Noting a token's use is a write; on SQLite a read transaction that writes late fails
    ('database is locked') when another writer committed since it began. Authentication
    therefore writes in a transaction of its own."""
    headers = {"Authorization": f"Bearer {world.token}"}
    holding = asyncio.Event()

    async def writer() -> None:
        async with app_state(world.app).writer_sessions() as session, session.begin():
            await site_service.create_site(session, name=unique("busy"))
            await session.flush()
            holding.set()
            await asyncio.sleep(0.5)

    busy = asyncio.create_task(writer())
    await holding.wait()
    answers = await asyncio.gather(
        *(world.client.get("/config/", params={"limit": "5"}, headers=headers) for _ in range(4))
    )
    await busy
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
