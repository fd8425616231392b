"""Shared fixtures: real databases (a throwaway PostgreSQL from scripts/test, and SQLite),
migrated once per run, and one transaction per test, rolled back at teardown."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contractor import migrate
from contractor.db import create_engine, create_session_factory
from contractor.plugins import foundation_types
from contractor.settings import Settings
from tests.registering import registering

PG_ENV = "CONTRACTOR_TEST_PG_URL"

# scripts/test runs the suite on several pytest-xdist workers with ``--dist loadgroup``: each
# test module stays on one worker (its module-scoped servers and databases are made once),
# and the modules that boot virtual machines under software emulation share one worker, so
# that no two of them fight for the cores at once.
_ROOT = Path(__file__).resolve().parent.parent
_VM_MODULES = frozenset(
    {
        "tests/e2e/test_libvirt_pxe.py",
        "tests/e2e/test_vm_boot.py",
        "tests/rigs/test_boot_chain.py",
        "tests/subcontractor/boot/test_boot_qemu.py",
        "tests/subcontractor/boot/test_kea_vm.py",
        "tests/subcontractor/test_libvirt_qemu.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.path.resolve().relative_to(_ROOT).as_posix()
            group = "vm" if module in _VM_MODULES else module
            item.add_marker(pytest.mark.xdist_group(group))


def _pg_server_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set: run the suite through scripts/test")
        pytest.skip(f"{PG_ENV} not set (scripts/test starts a throwaway PostgreSQL)")
    return url


def make_pg_database(prefix: str = "contractor_test", template: str | None = None) -> str:
    """A new database on the test cluster (empty, or a copy of ``template``, a database
    URL with no open connections); returns its URL."""
    server = _pg_server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{copy}')
    return server.rsplit("/", 1)[0] + f"/{name}"


# Cheap argon2 for tests: the cost parameters are production knobs, not behaviour.
FAST_HASHING = {"argon2_memory_kib": 64, "argon2_time_cost": 1}


def test_settings(url: str, **overrides: object) -> Settings:
    """Settings for an app under test; its foreman worker is off unless a test turns it on
    (its queries would disturb statement counts)."""
    overrides.setdefault("foreman_enabled", False)
    return Settings(database_url=url, auto_migrate=False, **{**FAST_HASHING, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A PostgreSQL database migrated to head, shared by the whole run."""
    foundation_types()
    url = make_pg_database()
    migrate.upgrade(Settings(database_url=url))
    return Settings(database_url=url).database_url


@pytest.fixture(scope="module")
def own_pg_url(request: pytest.FixtureRequest) -> str:
    """A PostgreSQL database of the test module's own, migrated to head: for tests that
    commit (``pg_url`` is shared, and other tests count its rows)."""
    foundation_types()
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    url = make_pg_database(f"contractor_{module}"[:40])
    migrate.upgrade(Settings(database_url=url))
    return Settings(database_url=url).database_url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "contractor.sqlite3"
    settings = Settings(database_url=f"sqlite:///{path}")
    migrate.upgrade(settings)
    return settings.database_url


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each database test runs on PostgreSQL and on the embedded SQLite default."""
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


@pytest.fixture
async def session(db_url: str) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test; services' own
    ``begin_nested`` savepoints work inside it."""
    engine = create_engine(Settings(database_url=db_url))
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            factory = create_session_factory(connection, join_transaction_mode="create_savepoint")
            db_session = factory()
            try:
                yield db_session
            finally:
                await db_session.close()
                await transaction.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
def install_amt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Call it to register a foundation type plugin called ``amt`` (``tests/registering``);
    it is gone again after the test."""
    with registering(tmp_path, monkeypatch, "amt", "tests.registering:AmtType") as register:
        yield register
