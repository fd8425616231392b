"""``contractor dns export``: files, incremental rewrites, exit status, and named loading
the result and picking up a change."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.opcode
import dns.query
import dns.tsigkeyring
import dns.zone
import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession

from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.services import addresses, directory, network
from contractor.services.building import get_structure
from contractor.settings import Settings
from tests.bindgen.bind import named, program
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


def test_named_conf_takes_transfer_and_notify_settings(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """allow-transfer and also-notify reach every zone of the include: named-checkconf
    loads it, a real named refuses a transfer without the key, gives it with the key, and
    sends NOTIFY to the also-notify address."""
    in_db(db_env, build_lab)
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.5)
        notify_port = listener.getsockname()[1]
        env = {
            **db_env,
            "CONTRACTOR_DNS_ALLOW_TRANSFER": '["key xfr"]',
            "CONTRACTOR_DNS_ALSO_NOTIFY": f'["127.0.0.1  port {notify_port}"]',
        }
        out = tmp_path / "zones"
        code, output = export(env, out)
        assert code == 0, output
        conf = (out / "named.conf").read_text()
        zone_lines = [line for line in conf.splitlines() if line.startswith("zone ")]
        assert len(zone_lines) == 10
        options = (
            f'allow-transfer {{ key "xfr"; }}; also-notify {{ 127.0.0.1 port {notify_port}; }};'
        )
        for line in zone_lines:
            assert line.endswith(f"; {options} }};"), line
        key = f'key "xfr" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
        main_conf = tmp_path / "main.conf"
        main_conf.write_text(key + f'include "{out / "named.conf"}";\n')
        checked = subprocess.run(
            [program("named-checkconf"), "-z", str(main_conf)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "zone example/IN: loaded serial" in checked.stdout

        with named(out / "named.conf", "example", before=key, notify=True) as server:
            notified: set[str] = set()
            deadline = time.monotonic() + 15
            while "example." not in notified and time.monotonic() < deadline:
                try:
                    wire, _peer = listener.recvfrom(65535)
                except TimeoutError:
                    continue
                message = dns.message.from_wire(wire)
                assert message.opcode() == dns.opcode.NOTIFY
                notified.add(message.question[0].name.to_text())
            assert "example." in notified

            with pytest.raises(dns.exception.DNSException):
                dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.", port=server.port))
            keyring = dns.tsigkeyring.from_text({"xfr": secret})
            zone = dns.zone.from_xfr(
                dns.query.xfr(
                    "127.0.0.1", "example.", port=server.port, keyring=keyring, keyname="xfr"
                )
            )
            assert zone.find_rdataset("web1", "A")[0].to_text() == "10.0.0.10"


def test_bad_transfer_and_notify_settings_are_refused(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    for name, value, message in [
        ("CONTRACTOR_DNS_ALLOW_TRANSFER", '["10.0.0.5/24"]', "has host bits set"),
        ("CONTRACTOR_DNS_ALLOW_TRANSFER", '["key bad key"]', "is not a key name"),
        ("CONTRACTOR_DNS_ALSO_NOTIFY", '["ns1.example"]', "'ns1.example' is not an IP address"),
        ("CONTRACTOR_DNS_ALSO_NOTIFY", '["10.0.0.1 port 70000"]', "port 70000 is not from 1"),
    ]:
        code, output = export({**db_env, name: value}, tmp_path / "never")
        assert code == 2, output
        assert name.removeprefix("CONTRACTOR_").lower() in output
        assert message in output, output
        assert not (tmp_path / "never").exists()
