"""The real ``contractor`` command on a first run and on a broken environment: every command
makes the database ready as `serve` does, and every problem is one line on stderr with exit
status 2, naming it (the traceback only with ``--debug``), leaving no file behind."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from contractor.migrate import alembic_config, upgrade
from contractor.settings import Settings
from tests.conftest import make_pg_database
from tests.serving import clean_env

SCRIPT = ScriptDirectory.from_config(alembic_config(Settings()))
HEAD = SCRIPT.get_current_head()
assert HEAD is not None
BEFORE_HEAD = SCRIPT.get_revision(HEAD).down_revision
assert isinstance(BEFORE_HEAD, str)
FAST = {"CONTRACTOR_ARGON2_MEMORY_KIB": "64", "CONTRACTOR_ARGON2_TIME_COST": "1"}


def contractor(
    cwd: Path, *args: str, input: str = "", **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contractor", *args],
        cwd=cwd,
        env=clean_env(**FAST, **settings),
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


def failed(done: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The one line a failed command printed (without "Error: "), checking the rest."""
    assert done.returncode == status, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0].removeprefix("Error: ")


def revision(path: Path) -> str | None:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    connection.close()
    return rows[0][0] if rows else None


def closed_port() -> int:
    """A loopback port nothing listens on (the kernel's choice, bound and closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "input", "says"),
    [
        (["user", "add", "alice", "--role", "admin"], "correct horse\n", "added with role"),
        (["blueprint", "dump"], "", ""),
        (["dns", "export", "--out", "zones"], "", "0 zones: 0 written"),
        (["events", "prune", "--retention-days", "1"], "", "removed 0 events"),
    ],
    ids=["user-add", "blueprint-dump", "dns-export", "events-prune"],
)
def test_a_first_command_creates_and_migrates_the_sqlite_default(
    tmp_path: Path, args: list[str], input: str, says: str
) -> None:
    done = contractor(tmp_path, *args, input=input)
    assert done.returncode == 0, done.stdout + done.stderr
    assert says in done.stdout
    assert "Traceback" not in done.stderr
    assert revision(tmp_path / "contractor.sqlite3") == HEAD


def test_the_next_commands_use_it(tmp_path: Path) -> None:
    added = contractor(tmp_path, "user", "add", "bob", "--role", "admin", input="password1\n")
    assert added.returncode == 0, added.stderr
    created = contractor(tmp_path, "token", "create", "bob")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().splitlines()[-1].startswith("ctr_")


def test_a_failed_first_command_leaves_no_database(tmp_path: Path) -> None:
    assert failed(contractor(tmp_path, "token", "create", "nobody"), 1) == (
        "user 'nobody' does not exist"
    )
    assert list(tmp_path.iterdir()) == []
    short = failed(contractor(tmp_path, "user", "add", "bob", "--role", "admin"), 1)
    assert short.startswith("password must be at least 8 characters")
    assert list(tmp_path.iterdir()) == []


def test_a_database_behind_is_migrated_as_serve_does(tmp_path: Path) -> None:
    path = tmp_path / "contractor.sqlite3"
    upgrade(Settings(database_url=f"sqlite:///{path}"), BEFORE_HEAD)
    assert contractor(tmp_path, "blueprint", "dump").returncode == 0
    assert revision(path) == HEAD


def test_an_empty_leftover_file_is_migrated(tmp_path: Path) -> None:
    (tmp_path / "contractor.sqlite3").touch()  # what earlier versions left after a failure
    assert contractor(tmp_path, "blueprint", "dump").returncode == 0
    assert revision(tmp_path / "contractor.sqlite3") == HEAD


def test_without_migrating_on_start_it_names_db_upgrade(tmp_path: Path) -> None:
    off = {"CONTRACTOR_AUTO_MIGRATE": "false"}
    line = failed(contractor(tmp_path, "blueprint", "dump", **off))
    assert line == (
        f"no database at {tmp_path / 'contractor.sqlite3'}: run `contractor db upgrade` to "
        "create it"
    )
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "contractor.sqlite3"
    upgrade(Settings(database_url=f"sqlite:///{path}"), BEFORE_HEAD)
    for args in (["blueprint", "dump"], ["serve", "--port", "0"], ["foreman"]):
        line = failed(contractor(tmp_path, *args, **off))
        assert line == (
            f"the database sqlite+aiosqlite:///./contractor.sqlite3 is at revision {BEFORE_HEAD}, "
            f"not at the latest schema ({HEAD}): run `contractor db upgrade`"
        )
    assert revision(path) == BEFORE_HEAD
    assert contractor(tmp_path, "db", "upgrade", **off).returncode == 0
    assert revision(path) == HEAD


def test_an_unreachable_postgresql_is_one_line_with_the_password_hidden(tmp_path: Path) -> None:
    port = closed_port()
    url = f"postgresql://contractor:s3cret-pw@127.0.0.1:{port}/inventory"
    expected = (
        f"cannot reach database postgresql+psycopg://contractor:***@127.0.0.1:{port}/inventory"
        ": connection refused"
    )
    for args in (
        ["user", "add", "alice", "--role", "admin"],
        ["token", "create", "alice"],
        ["blueprint", "dump"],
        ["dns", "export", "--out", "zones"],
        ["db", "upgrade"],
        ["serve", "--port", "0"],
        ["foreman"],
        ["demo", "--port", "0"],
    ):
        done = contractor(tmp_path, *args, input="password1\n", CONTRACTOR_DATABASE_URL=url)
        assert failed(done) == expected, args
        assert "s3cret-pw" not in done.stdout + done.stderr
    debug = contractor(tmp_path, "--debug", "--database-url", url, "token", "create", "alice")
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "psycopg.OperationalError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == f"Error: {expected}"
    assert "s3cret-pw" not in debug.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zones"]  # made before the database


def test_a_postgresql_database_not_migrated_names_db_upgrade(tmp_path: Path) -> None:
    url = make_pg_database("contractor_first_run")
    shown = Settings(database_url=url).database_url
    for args in (["token", "create", "alice"], ["serve", "--port", "0"]):
        line = failed(contractor(tmp_path, *args, CONTRACTOR_DATABASE_URL=url))
        assert line == (
            f"the database {shown} is empty, not at the latest schema ({HEAD}): run "
            "`contractor db upgrade`"
        )
    upgraded = contractor(tmp_path, "db", "upgrade", CONTRACTOR_DATABASE_URL=url)
    assert upgraded.returncode == 0, upgraded.stderr
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00d'")
    line = failed(contractor(tmp_path, "blueprint", "dump", CONTRACTOR_DATABASE_URL=url))
    assert line == (
        f"the database {shown} is at revision f00d, which this Contractor does not know (was "
        "it made by a newer one?)"
    )


def test_sqlite_problems_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    url = f"sqlite:///{missing}/x.db"
    done = contractor(tmp_path, "blueprint", "dump", CONTRACTOR_DATABASE_URL=url)
    assert failed(done) == (
        f"cannot open database sqlite+aiosqlite:///{missing}/x.db: directory {missing} does "
        "not exist"
    )
    debug = contractor(tmp_path, "--debug", "--database-url", url, "foreman")
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "contractor.errors.DatabaseNotReady" in debug.stderr
    assert not (tmp_path / "no").exists()
    (tmp_path / "junk.db").write_bytes(b"not a database at all, just some bytes" * 100)
    junk = {"CONTRACTOR_DATABASE_URL": "sqlite:///junk.db"}
    done = contractor(tmp_path, "user", "add", "x", "--role", "admin", **junk)
    assert failed(done) == (
        "cannot open database sqlite+aiosqlite:///junk.db: file is not a database"
    )


def test_files_and_flags_are_checked_before_the_database(tmp_path: Path) -> None:
    assert failed(contractor(tmp_path, "dns", "export", "--out", "/proc/nope")) == (
        "cannot create the --out directory /proc/nope: No such file or directory"
    )
    assert failed(contractor(tmp_path, "blueprint", "dump", "--out", "gone/dump.toml")) == (
        "cannot write the --out file gone/dump.toml: directory gone does not exist"
    )
    assert failed(contractor(tmp_path, "blueprint", "load", "missing.toml")) == (
        "cannot read resource file missing.toml: No such file or directory"
    )
    bad_url = "postgresql://u:pw@db:port/x"
    assert failed(contractor(tmp_path, "--database-url", bad_url, "blueprint", "dump")).startswith(
        "the database URL is not valid: "
    )
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_after_the_work_leaves_no_database(tmp_path: Path) -> None:
    line = failed(contractor(tmp_path, "blueprint", "dump", "--out", "/proc/dump.toml"))
    assert line.startswith("cannot write the --out file /proc/dump.toml: ")
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_stay_usage_errors(tmp_path: Path) -> None:
    on_pg = {"CONTRACTOR_DATABASE_URL": "postgresql://db/x"}
    for args, settings, says in (
        (["serve", "--port", "70000"], {}, "70000 is not in the range 0<=x<=65535"),
        (["serve", "--workers", "2", "--port", "0"], on_pg, "--workers needs a port to share"),
        (["blueprint", "dump"], {"CONTRACTOR_PORT": "eighty"}, "bad settings: port:"),
    ):
        done = contractor(tmp_path, *args, **settings)
        assert done.returncode == 2, done.stderr
        assert "Usage: " in done.stderr
        assert says in done.stderr
        assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
