"""A GraphQL client against the real ASGI app on a fresh database (copied from a migrated
template holding one user per role), on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
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
from contractor.services import auth
from contractor.settings import Settings
from tests.conftest import make_pg_database, test_settings

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


@pytest.fixture(params=["postgresql", "sqlite"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    if request.param == "postgresql":
        template, tokens = request.getfixturevalue("pg_template")
        url = make_pg_database("contractor_graphql", template=template)
    else:
        template_path, tokens = request.getfixturevalue("sqlite_template")
        shutil.copy(template_path, tmp_path / "graphql.sqlite3")
        url = f"sqlite:///{tmp_path / 'graphql.sqlite3'}"
    settings = test_settings(url)
    app = create_app(settings)
    statements: list[str] = []
    event.listen(
        app_state(app).engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: statements.append(statement),
    )
    transport = httpx.ASGITransport(app=app)
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
