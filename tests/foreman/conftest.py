"""An app with its foreman running on a fresh database (PostgreSQL or SQLite), an HTTP client
for it, and helpers to set up an inventory and subcontractor tokens."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from contractor import migrate
from contractor.app import create_app
from contractor.db import transaction
from contractor.rest.state import app_state
from contractor.services import auth
from contractor.services import tasks as task_service
from contractor.settings import Settings
from tests.conftest import make_pg_database, test_settings

T = TypeVar("T")


@dataclass
class Env:
    app: Starlette
    http: httpx.AsyncClient
    settings: Settings
    writer_sessions: async_sessionmaker[AsyncSession]

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with transaction(self.writer_sessions) as session:
            return await work(session)

    async def token(self, site: str, modules: list[str], name: str = "sub1") -> str:
        async def work(session: AsyncSession) -> str:
            new = await task_service.create_subcontractor_token(
                session, name=name, sites=[site], modules=modules
            )
            return new.text

        return await self.run(work)

    async def user_token(self, role: str) -> str:
        async def work(session: AsyncSession) -> str:
            hasher = self.settings.password_hasher()
            user = await auth.create_user(session, username=f"{role}1", role=role, hasher=hasher)
            return (await auth.create_token(session, user=user, hasher=hasher)).text

        return await self.run(work)

    async def graphql(
        self, token: str, document: str, variables: dict[str, Any] | None = None
    ) -> Any:
        response = await self.http.post(
            "/graphql",
            json={"query": document, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def call(self, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/subcontractor/{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture(scope="session")
def foreman_pg_template() -> str:
    url = make_pg_database("contractor_foreman_template")
    migrate.upgrade(Settings(database_url=url))
    return url


@pytest.fixture(scope="session")
def foreman_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("foreman") / "template.sqlite3"
    migrate.upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


def fresh_database(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        template = request.getfixturevalue("foreman_pg_template")
        return make_pg_database("contractor_foreman", template=template)
    template_path = request.getfixturevalue("foreman_sqlite_template")
    shutil.copy(template_path, tmp_path / "foreman.sqlite3")
    return f"sqlite:///{tmp_path / 'foreman.sqlite3'}"


FAST = {
    "foreman_enabled": True,
    "foreman_idle_seconds": 0.2,
    "foreman_waiting_recheck_seconds": 0.2,
    "task_lease_seconds": 30.0,
}


@pytest.fixture(params=["postgresql", "sqlite"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    url = fresh_database(request, request.param, tmp_path)
    overrides = dict(FAST)
    overrides.update(getattr(request, "param_overrides", {}))
    settings = test_settings(url, **overrides)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://contractor", timeout=30) as http,
    ):
        yield Env(
            app=app, http=http, settings=settings, writer_sessions=app_state(app).writer_sessions
        )
