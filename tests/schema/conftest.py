"""A GraphQL client against the real ASGI app on a fresh database (copied from a migrated
template holding one user per role), on PostgreSQL and SQLite; and an inventory to query."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contractor import migrate
from contractor.app import create_app
from contractor.db import create_engine, create_session_factory, transaction
from contractor.rest.state import app_state
from contractor.services import addresses, auth, building, interfaces, network
from contractor.services import blueprint as bps
from contractor.services import site as sites
from contractor.settings import Settings
from tests.conftest import make_pg_database, test_settings
from tests.serving import serving_in_thread

ROLES = ("reader", "operator", "admin")


@dataclass
class Client:
    http: httpx.AsyncClient
    tokens: dict[str, str]
    statements: list[str]
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    writer_sessions: async_sessionmaker[AsyncSession]

    async def query(
        self, document: str, variables: dict[str, Any] | None = None, *, role: str | None = "admin"
    ) -> dict[str, Any]:
        """POST a document as ``role`` (None: anonymous); the JSON body and ``_status``."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        response = await self.http.post(
            "/graphql", json={"query": document, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        body["_status"] = response.status_code
        return body

    async def data(self, document: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = await self.query(document, variables, **kw)
        assert "errors" not in body, body
        return body["data"]


def _prepare(settings: Settings) -> dict[str, str]:
    """Migrate and add a user and token per role; returns the tokens."""
    migrate.upgrade(settings)

    async def users() -> dict[str, str]:
        engine = create_engine(settings)
        tokens = {}
        try:
            async with transaction(create_session_factory(engine)) as session:
                for role in ROLES:
                    user = await auth.create_user(
                        session, username=role, role=role, hasher=settings.password_hasher()
                    )
                    new = await auth.create_token(
                        session, user=user, hasher=settings.password_hasher()
                    )
                    tokens[role] = new.text
        finally:
            await engine.dispose()
        return tokens

    # Fixtures may be set up inside a running loop: run this one on a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(users())).result()


@pytest.fixture(scope="session")
def pg_template() -> tuple[str, dict[str, str]]:
    url = make_pg_database("contractor_graphql_template")
    return url, _prepare(test_settings(url))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("graphql") / "template.sqlite3"
    return path, _prepare(test_settings(f"sqlite:///{path}"))


def fresh_database(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> tuple[str, dict[str, str]]:
    """A copy of the template database of ``backend``: its URL and the tokens per role."""
    if backend == "postgresql":
        template, tokens = request.getfixturevalue("pg_template")
        return make_pg_database("contractor_graphql", template=template), dict(tokens)
    template_path, tokens = request.getfixturevalue("sqlite_template")
    shutil.copy(template_path, tmp_path / "graphql.sqlite3")
    return f"sqlite:///{tmp_path / 'graphql.sqlite3'}", dict(tokens)


@asynccontextmanager
async def serving(
    url: str, tokens: dict[str, str], *, address: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[Client]:
    """An app on ``url`` (``overrides`` to its test settings) and a client of it whose
    requests come from ``address``."""
    settings = test_settings(url, **overrides)
    app = create_app(settings)
    statements: list[str] = []
    event.listen(
        app_state(app).engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: statements.append(statement),
    )
    transport = httpx.ASGITransport(app=app, client=(address, 51234))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://contractor") as http,
    ):
        yield Client(
            http=http,
            tokens=dict(tokens),
            statements=statements,
            settings=settings,
            sessions=app_state(app).sessions,
            writer_sessions=app_state(app).writer_sessions,
        )


@pytest.fixture(params=["postgresql", "sqlite"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    url, tokens = fresh_database(request, request.param, tmp_path)
    async with serving(url, tokens) as running:
        yield running


async def build_inventory(client: Client, hosts: int, *, prefix: str = "web") -> dict[str, Any]:
    """A site tree, blueprints with parents, foundations with interfaces, structures with
    addresses, a complex and a dependency."""
    async with transaction(client.writer_sessions) as session:
        existing = {s.name for s in (await session.execute(sites.Site.__table__.select())).all()}  # type: ignore[attr-defined]
        if "world" not in existing:
            world = await sites.create_site(session, name="world")
            region = await sites.create_site(session, name="eu", parent=world)
            await sites.create_site(session, name="dc1", parent=region)
            metal = await bps.create_foundation_blueprint(
                session, name="metal", foundation_types=["manual", "simulated"]
            )
            base = await bps.create_structure_blueprint(
                session, name="linux", foundation_blueprints=[metal]
            )
            await bps.create_structure_blueprint(session, name="web", parents=[base])
            dc1 = await sites.get_site(session, "dc1")
            await network.create_network(session, site=dc1, name="prov")
            await network.create_address_block(
                session, site=dc1, name="prov", subnet="10.1.0.0/16", gateway_offset=1
            )
        dc1 = await sites.get_site(session, "dc1")
        metal = await bps.get_foundation_blueprint(session, "metal")
        web = await bps.get_structure_blueprint(session, "web")
        block = await network.get_address_block(session, dc1, "prov")
        prov = await network.get_network(session, dc1, "prov")
        made = []
        for index in range(hosts):
            foundation = await building.create_foundation(
                session,
                locator=f"{prefix}-node{index:04d}",
                site=dc1,
                blueprint=metal,
                type="manual" if index % 2 else "simulated",
            )
            await interfaces.add_interface(
                session,
                foundation=foundation,
                physical_location="eth0",
                is_provisioning=True,
                network=prov,
            )
            await interfaces.add_interface(session, foundation=foundation, physical_location="eth1")
            structure = await building.create_structure(
                session,
                hostname=f"{prefix}{index:04d}",
                site=dc1,
                blueprint=web,
                foundation=foundation,
            )
            await addresses.create_address(
                session, block=block, structure=structure, interface_name="eth0", is_primary=True
            )
            made.append(structure.id)
        return {"structures": made}


def queries(statements: list[str]) -> list[str]:
    """The statements that read data (SQLite's explicit BEGINs are transaction framing)."""
    return [s for s in statements if s.split()[0].upper() not in ("BEGIN", "PRAGMA")]


PAGE = """
query Page($first: Int, $after: String) {
  structures(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      hostname state
      site { name parent { name } }
      blueprint { name parents { name } }
      foundation { locator type state interfaces { physicalLocation mac network { name } } }
      addresses { interfaceName isPrimary ipAddress addressBlock { cidr } }
    } }
  }
}
"""


@pytest.fixture
def live(sqlite_template: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A real server (uvicorn, loopback) on a copy of the SQLite template; (URL, tokens)."""
    template, tokens = sqlite_template
    shutil.copy(template, tmp_path / "live.sqlite3")
    app = create_app(test_settings(f"sqlite:///{tmp_path / 'live.sqlite3'}"))
    with serving_in_thread(app) as base:
        yield base, tokens
