"""Migration 0010 turns integer offsets into exact ones, keeping every value (and its order),
on PostgreSQL and SQLite; going back refuses offsets an integer column cannot hold."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url

from contractor import migrate
from contractor.models import AddressBlock, BaseAddress
from contractor.settings import Settings
from tests.conftest import make_pg_database

OFFSETS = [1, 2, 9, 10, 100, 254]
NETWORK = ipaddress.IPv6Network("2001:db8::/32")
STAMP = "'2026-12-01 00:00:00'"


@pytest.fixture(params=["postgresql", "sqlite"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgresql":
        return Settings(database_url=make_pg_database("contractor_offsets"))
    return Settings(database_url=f"sqlite:///{tmp_path / 'offsets.sqlite3'}")


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    """A plain (synchronous) engine on the same database."""
    url = make_url(settings.database_url)
    sync = url.set(drivername="sqlite" if settings.is_sqlite else "postgresql+psycopg")
    engine = sa.create_engine(sync)
    try:
        yield engine
    finally:
        engine.dispose()


def _held(engine: sa.Engine) -> list[int]:
    """The offsets seeded: SQLite's integer column also held 64-bit ones."""
    return OFFSETS + ([2**62, 2**62 + 5, 2**63 - 1] if engine.dialect.name == "sqlite" else [])


def _seed(engine: sa.Engine) -> None:
    """A block with a gateway and addresses, written as revision 0009 keeps them."""
    with engine.begin() as connection:
        run = connection.exec_driver_sql
        run(
            "INSERT INTO site (id, name, description, config_values, created, updated) "
            f"VALUES (1, 'lab', '', '{{}}', {STAMP}, {STAMP})"
        )
        run(
            "INSERT INTO address_block (id, site_id, name, version, subnet, prefix, "
            "gateway_offset, first_bin, last_bin, created, updated) VALUES (1, 1, 'lan', 6, "
            f"'2001:db8::', 32, 253, {_bytes(engine, NETWORK.network_address)}, "
            f"{_bytes(engine, NETWORK.broadcast_address)}, {STAMP}, {STAMP})"
        )
        for offset in _held(engine):
            run(
                'INSERT INTO address (kind, address_block_id, "offset", reason, is_primary, '
                f"created, updated) VALUES ('reserved', 1, {offset}, 'r', false, {STAMP}, {STAMP})"
            )


def _bytes(engine: sa.Engine, address: ipaddress.IPv6Address) -> str:
    value = address.packed.hex()
    return f"x'{value}'" if engine.dialect.name == "sqlite" else f"'\\x{value}'::bytea"


def _offsets(engine: sa.Engine) -> tuple[list[int], int]:
    """The offsets in the database's order, and the gateway offset, as the models read them."""
    with engine.connect() as connection:
        offsets = connection.execute(
            sa.select(BaseAddress.offset).order_by(BaseAddress.offset)
        ).scalars()
        gateway = connection.execute(sa.select(AddressBlock.gateway_offset)).scalar_one()
        return [int(o) for o in offsets], gateway


def test_offsets_survive_the_round_trip(settings: Settings, engine: sa.Engine) -> None:
    migrate.upgrade(settings, "0009")
    _seed(engine)
    migrate.upgrade(settings)
    migrate.check(settings)
    held = _held(engine)
    assert _offsets(engine) == (held, 253)  # numeric order: 9 before 10 before 100

    big = 2**64 + 5
    with engine.begin() as connection:
        connection.execute(sa.update(BaseAddress).where(BaseAddress.offset == 1).values(offset=big))
    assert _offsets(engine) == (sorted([*held[1:], big]), 253)
    config = migrate.alembic_config(settings)
    with pytest.raises(RuntimeError, match=r"1 rows of address.offset hold offsets above"):
        command.downgrade(config, "0009")
    with engine.begin() as connection:
        connection.execute(sa.update(BaseAddress).where(BaseAddress.offset == big).values(offset=1))

    command.downgrade(config, "0009")
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            'SELECT "offset" FROM address ORDER BY "offset"'
        ).scalars()
        assert list(stored) == held  # integers again
    migrate.upgrade(settings)
    assert _offsets(engine) == (held, 253)
