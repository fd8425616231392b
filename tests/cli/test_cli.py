"""The contractor command: database, users, tokens, and serve on the SQLite default."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from contractor.cli import main
from contractor.db import create_engine, create_session_factory
from contractor.services import auth
from contractor.settings import Settings
from tests.serving import clean_env, contractor_serve


@pytest.fixture
def db_env(tmp_path: Path) -> dict[str, str]:
    return {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}


def invoke(args: list[str], env: dict[str, str], input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env, input=input)
    return result.exit_code, result.output


def test_db_upgrade_user_and_token(db_env: dict[str, str]) -> None:
    code, out = invoke(["db", "upgrade"], db_env)
    assert (code, out.strip()) == (0, "database is at the latest schema")
    code, out = invoke(["user", "add", "alice", "--role", "admin"], db_env, "correct horse\n")
    assert code == 0, out
    assert "user 'alice' added with role admin" in out
    code, out = invoke(["token", "create", "alice"], db_env)
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    assert token.startswith("ctr_")

    async def check() -> str:
        engine = create_engine(Settings(database_url=db_env["CONTRACTOR_DATABASE_URL"]))
        try:
            async with create_session_factory(engine)() as session:
                return (await auth.authenticate_token(session, token)).username
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == "alice"


def test_bad_input_is_refused(db_env: dict[str, str]) -> None:
    invoke(["db", "upgrade"], db_env)
    code, out = invoke(["user", "add", "bob", "--role", "root"], db_env, "password1\n")
    assert code == 2
    assert "'root' is not one of 'reader', 'operator', 'admin'" in out
    code, out = invoke(["user", "add", "bob", "--role", "reader"], db_env, "short\n")
    assert code == 1
    assert "password must be at least 8 characters" in out
    code, out = invoke(["user", "add", "b b", "--role", "reader"], db_env, "password1\n")
    assert code == 1
    assert "username 'b b'" in out
    code, out = invoke(["token", "create", "nobody"], db_env)
    assert code == 1
    assert "user 'nobody' does not exist" in out
    code, out = invoke(["serve", "--port", "70000"], db_env)
    assert code == 2
    assert "70000 is not in the range 0<=x<=65535" in out
    code, out = invoke(["serve", "--workers", "0"], db_env)
    assert code == 2
    assert "0 is not in the range 1<=x<=64" in out
    code, out = invoke(["serve", "--workers", "2"], db_env)
    assert code == 2
    assert "--workers needs PostgreSQL" in out
    code, out = invoke(["--database-url", "mysql://x/y", "db", "upgrade"], db_env)
    assert code == 2
    assert "unsupported database URL 'mysql'" in out


def test_duplicate_user(db_env: dict[str, str]) -> None:
    invoke(["db", "upgrade"], db_env)
    assert invoke(["user", "add", "carol", "--role", "operator"], db_env, "password1\n")[0] == 0
    code, out = invoke(["user", "add", "carol", "--role", "operator"], db_env, "password1\n")
    assert code == 1
    assert "user 'carol' already exists" in out


def test_serve_creates_the_sqlite_database_and_answers_healthz(tmp_path: Path) -> None:
    with contractor_serve(clean_env(), tmp_path) as base:
        response = httpx.get(f"{base}/healthz", timeout=5)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}
        assert (tmp_path / "contractor.sqlite3").exists()
