"""``contractor dns export``: files, incremental rewrites, exit status, and named loading
the result and picking up a change."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import addresses, directory, network
from contractor.services.building import get_structure
from contractor.settings import Settings
from tests.bindgen.bind import named
from tests.bindgen.inventory import Lab, build_lab, ptr_name


@pytest.fixture
def db_env(tmp_path: Path) -> dict[str, str]:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'dns.sqlite3'}"}
    assert CliRunner().invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    return env


def in_db(env: dict[str, str], work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        engine = create_engine(Settings(database_url=env["CONTRACTOR_DATABASE_URL"]))
        try:
            async with transaction(create_session_factory(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def export(env: dict[str, str], out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["dns", "export", "--out", str(out), *extra], env=env)
    return result.exit_code, result.output


def test_export_is_incremental_and_named_serves_it(db_env: dict[str, str], tmp_path: Path) -> None:
    lab: Lab = in_db(db_env, build_lab)
    out = tmp_path / "zones"
    code, output = export(db_env, out)
    assert code == 0, output
    assert "wrote example (serial " in output
    assert "10 zones: 10 written, 0 unchanged, 0 invalid; include " in output
    assert f"{out.absolute() / 'named.conf'} in named.conf" in output
    assert sorted(p.name for p in out.iterdir())[:3] == [
        "0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.zone",
        "0.0.10.in-addr.arpa.zone",
        "0.1.10.in-addr.arpa.zone",
    ]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    code, output = export(db_env, out)
    assert (code, output.splitlines()[-1].split(";")[0]) == (
        0,
        "10 zones: 0 written, 10 unchanged, 0 invalid",
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes

    with named(out / "named.conf", "example") as server:
        assert server.query("web1.example.", "A") == ["10.0.0.10"]
        assert server.query(ptr_name("10.0.0.20"), "PTR") == ["eth0.nopri.example."]
        before = server.serial("example")

        async def move(session: AsyncSession) -> None:
            old = await addresses.lookup_address(session, "10.0.0.20")
            await addresses.delete_address(session, old)
            block = await network.get_address_block(session, lab.dc1, "v4")
            nopri = await get_structure(session, lab.dc1, "nopri")
            await addresses.create_address(
                session, structure=nopri, block=block, offset=21, interface_name="eth0"
            )

        in_db(db_env, move)
        code, output = export(db_env, out, "--json")
        assert code == 0, output
        outcome = json.loads(output)
        assert sorted(outcome["written"]) == ["0.0.10.in-addr.arpa", "example"]
        assert outcome["invalid"] == {}
        assert len(outcome["unchanged"]) == 8
        changed = {n for n in mtimes if n.removesuffix(".zone") in outcome["written"]}
        for path in out.iterdir():
            if path.name not in changed and path.name != "named.conf":
                assert path.stat().st_mtime_ns == mtimes[path.name], path.name
        server.reload()
        deadline = time.monotonic() + 10
        while server.serial("example") == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.serial("example") == outcome["written"]["example"] > before
        assert server.query("eth0.nopri.example.", "A") == ["10.0.0.21"]
        assert server.query(ptr_name("10.0.0.21"), "PTR") == ["eth0.nopri.example."]
        assert server.query(ptr_name("10.0.0.20"), "PTR") == []


def test_invalid_zone_fails_the_export_and_is_named(db_env: dict[str, str], tmp_path: Path) -> None:
    async def zones(session: AsyncSession) -> None:
        await directory.create_zone(session, name="good", nameservers=["ns.elsewhere.net"])
        await directory.create_zone(session, name="nons")

    in_db(db_env, zones)
    code, output = export(db_env, tmp_path)
    assert code == 1
    assert "wrote good (serial " in output
    assert (
        "Error: invalid zones (previous files kept): nons: zone 'nons' has no name servers: "
        "set nameservers on it or on a parent zone"
    ) in output
    conf = (tmp_path / "named.conf").read_text()
    assert '"good."' in conf
    assert '"nons."' not in conf


def test_export_options(db_env: dict[str, str], tmp_path: Path) -> None:
    async def zones(session: AsyncSession) -> None:
        await directory.create_zone(session, name="one", nameservers=["ns.elsewhere.net"])

    in_db(db_env, zones)
    code, output = export(db_env, tmp_path, "--no-check", "--conf-dir", "/etc/bind/contractor")
    assert code == 0, output
    assert 'file "/etc/bind/contractor/one.zone"' in (tmp_path / "named.conf").read_text()
    code, output = export(db_env, tmp_path / "x", "--bogus")
    assert code == 2
    assert "No such option '--bogus'" in output
    result = CliRunner().invoke(main, ["dns", "export"], env=db_env)
    assert result.exit_code == 2
    assert "Missing option '--out'" in result.output


def test_zones_published_by_updates_alone_are_not_exported(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    in_db(db_env, build_lab)
    out = tmp_path / "zones"
    env = {
        **db_env,
        "CONTRACTOR_DNS_ZONE_MODES": '{"example": "updates", "lab.example": "both"}',
        "CONTRACTOR_DNS_SERVER_HOST": "127.0.0.1",
        "CONTRACTOR_DNS_TSIG_KEY_NAME": "k",
        "CONTRACTOR_DNS_TSIG_SECRET": "c2VjcmV0",
    }
    code, output = export(env, out)
    assert code == 0, output
    assert "9 zones: 9 written" in output
    assert not (out / "example.zone").exists()  # the server's own file and journal
    assert (out / "lab.example.zone").exists()
    assert '"example."' not in (out / "named.conf").read_text()
    code, output = export({**env, "CONTRACTOR_DNS_TSIG_SECRET": ""}, out)
    assert code != 0
    assert "CONTRACTOR_DNS_TSIG_SECRET" in output
