"""`contractor user list|set-role|disable|enable|delete` and `contractor token list|revoke`,
run as a user runs them: a real process on a SQLite file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contractor import migrate
from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import auth, tasks
from contractor.services import site as sites
from tests.conftest import test_settings as settings_for
from tests.serving import clean_env

FAST = {"CONTRACTOR_ARGON2_MEMORY_KIB": "64", "CONTRACTOR_ARGON2_TIME_COST": "1"}


class Cli:
    """The command on one database: each command once as a real process (``process=True``),
    its other cases in this process through click's runner (a process start costs seconds
    on a loaded machine)."""

    def __init__(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
        self.env = clean_env(CONTRACTOR_DATABASE_URL=url, **FAST)
        self.settings = {"CONTRACTOR_DATABASE_URL": url, **FAST}
        self.cwd = tmp_path

    def __call__(self, *args: str, input: str = "", code: int = 0, process: bool = False) -> str:
        if process:
            done = subprocess.run(
                [sys.executable, "-m", "contractor", *args],
                cwd=self.cwd,
                env=self.env,
                input=input,
                capture_output=True,
                text=True,
                timeout=120,
            )
            output, status = done.stdout + done.stderr, done.returncode
        else:
            result = CliRunner().invoke(main, list(args), env=self.settings, input=input)
            output, status = result.output, result.exit_code
        assert status == code, output
        return output

    def json(self, *args: str, process: bool = False) -> Any:
        return json.loads(self(*args, "--json", process=process))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with two admins, an operator and a reader, a token each, and a
    subcontractor token (made in this process: the commands under test run as processes)."""
    path = tmp_path_factory.mktemp("cli")
    settings = settings_for(f"sqlite:///{path / 'cli.sqlite3'}")
    migrate.upgrade(settings)

    async def seed() -> None:
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine, writes=True)) as session:
                hasher = settings.password_hasher()
                for name, role in (
                    ("ada", "admin"),
                    ("bea", "admin"),
                    ("cy", "operator"),
                    ("di", "reader"),
                ):
                    user = await auth.create_user(
                        session, username=name, role=role, password="long-password", hasher=hasher
                    )
                    await auth.create_token(
                        session, user=user, description=f"{name}'s laptop", hasher=hasher
                    )
                await sites.create_site(session, name="dc1")
                await tasks.create_subcontractor_token(
                    session, name="sc1", sites=["dc1"], modules=["ipmi"]
                )
        finally:
            await engine.dispose()

    asyncio.run(seed())
    return path


@pytest.fixture
def cli(seeded: Path, tmp_path: Path) -> Cli:
    (tmp_path / "cli.sqlite3").write_bytes((seeded / "cli.sqlite3").read_bytes())
    return Cli(tmp_path)


def test_user_list(cli: Cli) -> None:
    users = cli.json("user", "list", process=True)
    assert [(u["username"], u["role"], u["is_active"]) for u in users] == [
        ("ada", "admin", True),
        ("bea", "admin", True),
        ("cy", "operator", True),
        ("di", "reader", True),
    ]
    assert all("password" not in key for user in users for key in user)
    lines = cli("user", "list").splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "ACTIVE", "CREATED"]
    assert lines[1].split()[:3] == ["ada", "admin", "yes"]


def test_user_set_role(cli: Cli) -> None:
    assert (
        cli("user", "set-role", "di", "operator", process=True).strip()
        == "user 'di' now has role operator"
    )
    assert {u["username"]: u["role"] for u in cli.json("user", "list")}["di"] == "operator"
    out = cli("user", "set-role", "di", "root", code=2)
    assert "'root' is not one of 'reader', 'operator', 'admin'" in out
    out = cli("user", "set-role", "nobody", "reader", code=1)
    assert "user 'nobody' does not exist" in out


def test_user_disable_enable_and_the_last_admin(cli: Cli) -> None:
    assert "user 'bea' disabled" in cli("user", "disable", "bea", process=True)
    assert not {u["username"]: u["is_active"] for u in cli.json("user", "list")}["bea"]
    out = cli("user", "disable", "ada", code=1)
    assert "cannot disable 'ada': it is the last active admin (make another admin first)" in out
    out = cli("user", "set-role", "ada", "reader", code=1)
    assert "cannot re-role 'ada': it is the last active admin" in out
    assert "user 'bea' enabled" in cli("user", "enable", "bea", process=True)
    assert "user 'ada' now has role reader" in cli("user", "set-role", "ada", "reader")


def test_user_delete(cli: Cli) -> None:
    out = cli("user", "delete", "cy", code=1, input="n\n")
    assert "Aborted" in out
    out = cli("user", "delete", "cy", "--yes", process=True)
    assert "user 'cy' deleted, with their tokens" in out
    assert "cy" not in {u["username"] for u in cli.json("user", "list")}
    assert "cy" not in {t["owner"] for t in cli.json("token", "list", "--all")}
    out = cli("user", "delete", "cy", "--yes", code=1)
    assert "user 'cy' does not exist" in out
    cli("user", "delete", "bea", "--yes")
    out = cli("user", "delete", "ada", "--yes", code=1)
    assert "cannot delete 'ada': it is the last active admin" in out


def test_token_list(cli: Cli) -> None:
    tokens = cli.json("token", "list", process=True)
    assert [(t["kind"], t["name"], t["owner"]) for t in tokens] == [
        ("api", "ada's laptop", "ada"),
        ("api", "bea's laptop", "bea"),
        ("api", "cy's laptop", "cy"),
        ("api", "di's laptop", "di"),
        ("subcontractor", "sc1", None),
    ]
    assert set(tokens[0]) == {
        "key",
        "kind",
        "name",
        "owner",
        "created",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "active",
    }
    assert all(len(t["key"]) == 16 for t in tokens)
    lines = cli("token", "list").splitlines()
    assert lines[0].split() == ["KEY", "KIND", "NAME", "OWNER", "CREATED", "LAST", "USED"]
    assert len(lines) == 6


def test_token_revoke(cli: Cli) -> None:
    api, *_, sub = cli.json("token", "list")
    out = cli("token", "revoke", api["key"], process=True)
    assert f"API token {api['key']!r} revoked; it is refused at once" in out
    out = cli("token", "revoke", f"sct_{sub['key']}")
    assert "subcontractor token" in out
    assert "within 5 s" in out
    assert {t["key"] for t in cli.json("token", "list")}.isdisjoint({api["key"], sub["key"]})
    revoked = {t["key"]: t for t in cli.json("token", "list", "--all")}
    assert revoked[api["key"]]["revoked_at"] is not None
    assert not revoked[sub["key"]]["active"]
    out = cli("token", "revoke", api["key"], code=1)
    assert "was revoked already" in out
    out = cli("token", "revoke", "0000000000000000", code=1)
    assert "token '0000000000000000' does not exist" in out
    out = cli("token", "revoke", f"ctr_{sub['key']}", "--kind", "subcontractor", code=1)
    assert f"'ctr_{sub['key']}' is the key of an api token, not of a subcontractor token" in out
