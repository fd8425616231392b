"""``contractor demo`` run headless as a subprocess, to the end: everything it creates is
built, a second run reuses the inventory, a job in error makes it exit 1 naming the job, and
bad flags are refused clearly."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from sqlalchemy import select

from contractor import migrate
from contractor.cli import main
from contractor.db import create_engine, create_session_factory, transaction
from contractor.demo import DemoOptions, prepare
from contractor.models import Foundation, Job, Structure
from contractor.plugins import foundation_types
from contractor.services import directory, jobs, site
from contractor.settings import Settings
from tests.bindgen.bind import checkzone, named
from tests.bindgen.inventory import ptr_name
from tests.serving import CHECKOUT, clean_env

TIMEOUT = 180  # seconds for one demo run (each takes about 15 s alone)


def demo(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contractor", "--database-url", url, "demo", "--port", "0", *flags],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=CHECKOUT,
        env=clean_env(),
        check=False,
    )


def states(url: str) -> tuple[list[str], list[str]]:
    async def read() -> tuple[list[str], list[str]]:
        foundation_types()
        engine = create_engine(Settings(database_url=url))
        try:
            async with transaction(create_session_factory(engine)) as session:
                found = (await session.execute(select(Foundation))).scalars()
                built = (await session.execute(select(Structure))).scalars()
                return [f.state for f in found], [s.state for s in built]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_demo_builds_everything_then_reuses_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    first = demo(url, "--foundations", "3", "--delay", "0", "--exit-when-built")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    out = first.stdout
    assert "with a subcontractor for demo-east, demo-west" in out
    assert "building 16 targets" in out  # 3 web hosts, 2 hypervisors, 3 VMs with their apps
    assert "structure west-web01: DONE" in out
    assert "structure east-www03: DONE" in out  # on a VM placed on a simulated hypervisor
    assert "16 of 16 targets built" in out
    # the example queries ran and answered the inventory questions
    assert '"structureCounts":[{"site":"demo-east","state":"BUILT","count":7}' in out
    assert '"ipAddress":"10.20.1.2","isPrimary":true' in out
    assert '"publishedZones":[{"name":"demo.test","serial":' in out
    assert '"problems":[]}]' in out
    assert '{"hostname":"east-xen02","capacity":{"cpus":8,"memoryMb":32768},' in out
    assert '"allocated":{"cpus":12,"memoryMb":24576}' in out  # vm01 and vm03 on xen01
    assert '"cpus":14,"memoryMb":28672,"diskGb":140,"foundations":3}' in out
    assert "DNS: contractor dns export --out DIR writes the zone demo.test" in out
    assert "/graphql  (paste the token below" in out
    assert re.search(r"^Console: http://127\.0\.0\.1:\d+/ui/#token=ctr_\S+  \(", out, re.M)
    assert "API token for user 'demo': ctr_" in out
    assert states(url) == (["built"] * 8, ["built"] * 8)

    again = demo(url, "--foundations", "4", "--delay", "0", "--exit-when-built")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "site 'demo' exists: reusing the demo inventory" in again.stdout
    assert "1 new foundations (the demo has 4 in all)" in again.stdout
    assert "building 2 targets (16 built earlier)" in again.stdout
    assert "18 of 18 targets built" in again.stdout
    assert states(url) == (["built"] * 9, ["built"] * 9)


def test_it_serves_until_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    command = [sys.executable, "-m", "contractor", "--database-url", url, "demo", "--port", "0"]
    flags = ["--foundations", "1", "--delay", "0"]
    with subprocess.Popen(
        [*command, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=CHECKOUT,
        env=clean_env(),
    ) as process:
        try:
            assert process.stdout is not None
            lines = []
            deadline = time.monotonic() + TIMEOUT
            while not lines or lines[-1] != "serving until interrupted (Ctrl-C)\n":
                assert time.monotonic() < deadline, "".join(lines)
                line = process.stdout.readline()
                assert line, "".join(lines) + (process.stderr.read() if process.stderr else "")
                lines.append(line)
            explorer = next(line for line in lines if line.startswith("Explorer: "))
            base = explorer.split()[1].removesuffix("/graphql")
            health = httpx.get(f"{base}/healthz", timeout=10, trust_env=False)
            assert health.json() == {"status": "ok", "database": "ok"}
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
            assert process.stdout.read() == "stopping\n"
        finally:
            if process.poll() is None:
                process.kill()


def test_a_job_in_error_fails_the_run_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    settings = Settings(database_url=url)
    migrate.upgrade(settings)

    async def break_one() -> int:
        foundation_types()
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine, writes=True)) as session:
                prepared = await prepare(session, settings, DemoOptions(foundations=1))
                job = await session.get_one(Job, prepared.tracked[0].job_id)
                jobs.set_state(
                    session, job, "error", actor="test", action="error", message="BMC on fire"
                )
                return job.id
        finally:
            await engine.dispose()

    job_id = asyncio.run(break_one())
    result = demo(url, "--delay", "0", "--exit-when-built")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"job {job_id} (foundation east-sim01) is ERROR: BMC on fire" in result.stdout
    assert f"Error: 1 job(s) did not finish: job {job_id} (foundation east-sim01)" in (
        result.stderr
    )


def test_bad_flags_are_refused(tmp_path: Path) -> None:
    env = {"CONTRACTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    runner = CliRunner()
    for flags, message in (
        (["--foundations", "0"], "Invalid value for '--foundations': 0 is not in the range"),
        (["--port", "70000"], "Invalid value for '--port': 70000 is not in the range"),
        (["--fail-percent", "101"], "Invalid value for '--fail-percent'"),
        (["--bogus"], "No such option '--bogus'"),
    ):
        result = runner.invoke(main, ["demo", *flags], env=env)
        assert result.exit_code == 2, result.output
        assert message in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["demo", "--port", str(port)], env=env)
    assert result.exit_code == 1, result.output
    assert f"port {port} on 127.0.0.1 is in use; pick another with --port" in result.output


def test_the_demo_publishes_a_zone_for_its_sites(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    settings = Settings(database_url=url)
    migrate.upgrade(settings)

    async def inventory(options: DemoOptions) -> list[str]:
        foundation_types()
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine, writes=True)) as session:
                return (await prepare(session, settings, options)).notes
        finally:
            await engine.dispose()

    asyncio.run(inventory(DemoOptions(foundations=2)))
    env = {"CONTRACTOR_DATABASE_URL": url}
    out = tmp_path / "zones"
    exported = CliRunner().invoke(main, ["dns", "export", "--out", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    assert "4 zones: 4 written, 0 unchanged, 0 invalid" in exported.output
    zones = {
        "demo.test": out / "demo.test.zone",
        "test": out / "test.zone",
        "1.20.10.in-addr.arpa": out / "1.20.10.in-addr.arpa.zone",
        "2.20.10.in-addr.arpa": out / "2.20.10.in-addr.arpa.zone",
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(p.name for p in zones.values()), "named.conf"]
    )
    for origin, path in zones.items():
        checkzone(origin, path.read_text())  # as named loads a primary zone
    with named(out / "named.conf", "demo.test") as server:
        assert server.query("east-web01.demo.test.", "A") == ["10.20.1.2"]
        assert server.query("eth0.west-web01.demo.test.", "A") == ["10.20.2.2"]
        assert server.query(ptr_name("10.20.1.2"), "PTR") == ["east-web01.demo.test."]
        assert server.query("demo.test.", "NS") == ["ns1.example.net."]

    # an inventory from before the demo had a zone gets it on the next run
    async def forget_the_zone() -> None:
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine, writes=True)) as session:
                for name in ("demo", "demo-east", "demo-west"):
                    await site.update_site(session, await site.get_site(session, name), zone=None)
                for fqdn in ("demo.test", "test"):
                    await directory.delete_zone(session, await directory.find_zone(session, fqdn))
        finally:
            await engine.dispose()

    asyncio.run(forget_the_zone())
    notes = asyncio.run(inventory(DemoOptions(foundations=2)))
    assert "the demo sites now publish the DNS zone 'demo.test'" in notes
    again = CliRunner().invoke(main, ["dns", "export", "--out", str(out)], env=env)
    assert again.exit_code == 0, again.output
    assert "4 zones: 0 written, 4 unchanged, 0 invalid" in again.output
